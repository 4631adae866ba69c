from __future__ import annotations

import json
import random
from typing import Any

import pytest

from orch.http.body import JsonObject, _deeper_than_limit, _fast_parse, _too_deep, parse_json_object
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


@pytest.mark.parametrize(
    "raw",
    [
        b'{"tasks": [{"core_id": "A", "metadata": {"k": 1, "k": 2}}]}',
        b'{"a": "x:y", "a": "x:y"}',
        b'{"a": 1, "\\u0061": 2}',
        b'{"a:": 1, "a:": 1}',
    ],
)
def test_duplicate_members_are_refused_at_any_depth_and_in_any_spelling(raw: bytes) -> None:
    with pytest.raises(MalformedJson, match="duplicate member"):
        parse_json_object(raw)


def test_colons_and_escapes_inside_strings_are_not_members() -> None:
    raw = b'{"a": "b:c", "d\\"": "\\\\:", "e": ["f:", {"g": ":"}], "h": "\\u00e9:"}'
    assert parse_json_object(raw).data == {"a": "b:c", 'd"': "\\:", "e": ["f:", {"g": ":"}], "h": "\u00e9:"}


@pytest.mark.parametrize(
    "number", [2**64, -(2**63) - 1, 10**30, -(10**18) * 9, 12345678901234567890123, 2**63 - 1]
)
def test_big_integers_stay_exact_integers(number: int) -> None:
    value = parse_json_object(f'{{"n": {number}, "m": [{number}]}}'.encode()).data
    assert value == {"n": number, "m": [number]}
    assert type(value["n"]) is int


def test_long_digit_runs_inside_strings_keep_the_fast_parse_and_long_numbers_do_not() -> None:
    token = "1234567890123456789012abcdef"
    raw = f'{{"task_id": "{token}", "n": 12, "m": ["x{token}"]}}'.encode()
    assert _fast_parse(raw) == {"task_id": token, "n": 12, "m": [f"x{token}"]}
    assert _fast_parse(f'{{"s": "{token}", "n": 12345678901234567890}}'.encode()) is None
    assert _fast_parse(f'{{"s": "\\\\{token}"}}'.encode()) is None  # a backslash: the slow way decides
    value = parse_json_object(f'{{"s": "{token}", "n": 123456789012345678901}}'.encode()).data
    assert value == {"s": token, "n": 123456789012345678901}


def test_numbers_keep_their_json_type() -> None:
    value = parse_json_object(b'{"i": 1, "f": 1.0, "e": 1e2, "z": -0, "s": 0.1}').data
    assert [type(v) for v in value.values()] == [int, float, float, int, float]
    assert value == {"i": 1, "f": 1.0, "e": 100.0, "z": 0, "s": 0.1}


def test_nesting_exactly_at_the_limit_is_accepted_and_one_more_is_refused() -> None:
    ok = b'{"a":' + b"[" * 31 + b"]" * 31 + b"}"
    assert parse_json_object(ok).has("a")
    with pytest.raises(MalformedJson, match="deeper than"):
        parse_json_object(b'{"a":' + b"[" * 32 + b"]" * 32 + b"}")
    wide = b'{"t": [' + b",".join([b'{"m": {"k": [1]}}'] * 50) + b"]}"
    assert len(parse_json_object(wide).data["t"]) == 50


def test_integers_too_large_for_a_float_are_a_422_not_a_crash() -> None:
    body = JsonObject({"n": 10**400, "m": -(10**400)})
    assert fail(lambda: body.opt_number("n")).problem == "must be a finite number, this one is too large"
    assert fail(lambda: body.req_number("m")).field == "m"
    assert fail(lambda: body.opt_number("n", max=5.0)).problem.startswith("must be <= 5.0")
    assert body.opt_number("x", default=2.0) == 2.0


def _random_json(rng: random.Random, depth: int, texts: list[str]) -> Any:
    kind = rng.randrange(6) if depth < 40 else 0
    if kind == 0:
        return rng.choice([1, 2.5, None, True, *texts])
    if kind in (1, 2):
        return [_random_json(rng, depth + 1, texts) for _ in range(rng.randrange(3))]
    return {rng.choice(texts) + str(i): _random_json(rng, depth + 1, texts) for i in range(rng.randrange(3))}


def test_the_depth_limit_read_from_the_text_agrees_with_the_walk_of_the_value() -> None:
    rng = random.Random(11)
    plain, awkward = ["", "a", "k", "é"], ["[", "{}", "]]", '"', "\\", "[\\"]
    for _ in range(3000):
        texts = plain if rng.random() < 0.5 else plain + awkward  # awkward: strings the text check skips
        inner: Any = _random_json(rng, 2, texts)
        for _ in range(rng.randrange(26, 34)):  # around the limit of 32 levels
            inner = [inner] if rng.random() < 0.5 else {rng.choice(texts): inner}
        value = {"v": inner}
        raw = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
        assert _deeper_than_limit(raw, value) == _too_deep(value), raw
    batch = {"tasks": [{"core_id": "C", "metadata": {"n": i}} for i in range(1000)]}
    assert not _deeper_than_limit(json.dumps(batch).encode(), batch)
