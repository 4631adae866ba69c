from __future__ import annotations

import pytest

from orch.http.body import JsonObject, parse_json_object
from orch.http.problems import MalformedJson, ValidationFailed


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"a": 1,}', b"\xff\xfe", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1, "a": 2}'],
)
def test_malformed_bodies_are_400(raw: bytes) -> None:
    with pytest.raises(MalformedJson):
        parse_json_object(raw)


def test_too_deep_nesting_is_400_not_a_crash() -> None:
    with pytest.raises(MalformedJson):
        parse_json_object(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(MalformedJson, match="deeper than"):
        parse_json_object(b'{"a":' + b"[" * 40 + b"]" * 40 + b"}")


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"x"', b"null"])
def test_non_object_top_level_is_422(raw: bytes) -> None:
    with pytest.raises(ValidationFailed, match="must be a JSON object"):
        parse_json_object(raw)


def fail(call: object) -> ValidationFailed:
    assert callable(call)
    with pytest.raises(ValidationFailed) as caught:
        call()
    return caught.value


def test_types_are_strict_and_errors_name_the_field() -> None:
    body = JsonObject({"n": "5", "b": 1, "f": True, "s": 3, "i": 1.0})
    assert fail(lambda: body.req_int("n")).field == "n"
    assert fail(lambda: body.opt_bool("b")).problem == "must be a boolean, got a number"
    assert fail(lambda: body.req_number("f")).problem == "must be a number, got a boolean"
    assert fail(lambda: body.req_str("s")).problem == "must be a string, got a number"
    assert fail(lambda: body.req_int("i")).problem == "must be an integer, got a number"
    assert fail(lambda: body.req_str("missing")).problem == "is required"


def test_ranges_lengths_patterns_and_choices() -> None:
    body = JsonObject({"p": 11, "s": "abc", "c": "red"})
    assert fail(lambda: body.req_int("p", max=10)).problem == "must be <= 10, got 11"
    assert fail(lambda: body.req_str("s", max_len=2)).problem == "must be 1..2 characters long, got 3"
    assert fail(lambda: body.req_str("s", pattern=r"[0-9]+")).problem == "must match [0-9]+"
    assert fail(lambda: body.req_str("c", choices=["blue"])).problem == "must be one of blue"
    assert body.opt_int("absent", default=7) == 7
    assert body.opt_str("absent") is None


def test_aliases_accept_either_spelling_but_not_a_disagreement() -> None:
    assert JsonObject({"coreId": "A"}).req_str("core_id", aliases=("coreId",)) == "A"
    assert JsonObject({"core_id": "A", "coreId": "A"}).req_str("core_id", aliases=("coreId",)) == "A"
    error = fail(lambda: JsonObject({"core_id": "A", "coreId": "B"}).req_str("core_id", aliases=("coreId",)))
    assert error.field == "core_id"
    assert "disagree" in error.problem


def test_nested_errors_carry_the_dotted_path_and_a_json_pointer() -> None:
    body = JsonObject({"meta": {"retries": "x"}})
    meta = body.opt_obj("meta")
    assert meta is not None
    error = fail(lambda: meta.req_int("retries"))
    assert error.field == "meta.retries"
    assert error.extensions["errors"][0]["pointer"] == "#/meta/retries"


def test_string_maps_and_lists() -> None:
    body = JsonObject({"labels": {"a": "1", "b": 2}, "items": [1, 2, 3]})
    assert fail(lambda: body.opt_str_map("labels")).field == "labels.b"
    assert body.opt_list("items") == [1, 2, 3]
    assert fail(lambda: body.opt_list("items", max_items=2)).problem == "must have at most 2 items, got 3"


def test_unknown_members_are_refused_only_when_asked() -> None:
    body = JsonObject({"core_id": "A", "prority": 5})
    body.req_str("core_id")
    error = fail(body.reject_unknown)
    assert error.field == "prority"
    body.reject_unknown("prority")
