from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from orch.logs import REDACTED, JsonFormatter, configure_logging, redact, register_secret, use_correlation_id


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root, hypercorn = logging.getLogger(), logging.getLogger("hypercorn.error")
    levels = root.level, hypercorn.level
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(levels[0])
    hypercorn.setLevel(levels[1])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_a_json_object_with_the_standard_fields(captured: io.StringIO) -> None:
    logging.getLogger("orch.test").info("dispatched %s", "t-1", extra={"task_id": "t-1", "priority": 5})
    (line,) = lines(captured)
    assert line["level"] == "INFO"
    assert line["logger"] == "orch.test"
    assert line["message"] == "dispatched t-1"
    assert line["correlation_id"] is None
    assert line["timestamp"].endswith("+00:00")
    assert (line["task_id"], line["priority"]) == ("t-1", 5)


def test_correlation_id_comes_from_the_context(captured: io.StringIO) -> None:
    with use_correlation_id("req-42"):
        logging.getLogger("orch.test").warning("inside")
    logging.getLogger("orch.test").warning("outside")
    inside, outside = lines(captured)
    assert inside["correlation_id"] == "req-42"
    assert outside["correlation_id"] is None


def test_secret_keys_are_redacted_at_any_depth(captured: io.StringIO) -> None:
    logging.getLogger("orch.test").info(
        "login",
        extra={"user": "ann", "password": "pw-1", "headers": {"Authorization": "x", "Accept": "*/*"}},
    )
    (line,) = lines(captured)
    assert line["user"] == "ann"
    assert line["password"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "*/*"}


def test_tokens_inside_text_are_masked(captured: io.StringIO) -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLWJ5dGVz"
    log = logging.getLogger("orch.test")
    log.info("got header Bearer abc.def-ghi and token %s", jwt)
    log.info("url was /login?password=hunter22&x=1 with api_key: k-123")
    first, second = lines(captured)
    assert "abc.def-ghi" not in first["message"] and jwt not in first["message"]
    assert "Bearer " + REDACTED in first["message"]
    assert "hunter22" not in second["message"] and "k-123" not in second["message"]
    assert "&x=1" in second["message"]


def test_registered_secrets_never_appear(captured: io.StringIO) -> None:
    register_secret("s3cr3t-webhook-value")
    log = logging.getLogger("orch.test")
    log.error("signature mismatch for s3cr3t-webhook-value", extra={"note": ["x s3cr3t-webhook-value y"]})
    try:
        raise ValueError("boom s3cr3t-webhook-value")
    except ValueError:
        log.exception("failed")
    text = captured.getvalue()
    assert "s3cr3t-webhook-value" not in text
    failed = lines(captured)[1]
    assert failed["exc_type"] == "ValueError"
    assert "Traceback" in failed["exc"]


def test_redact_keeps_harmless_values_and_types() -> None:
    assert redact({"count": 3, "ok": True, "ratio": 0.5, "none": None, "items": (1, "a")}) == {
        "count": 3,
        "ok": True,
        "ratio": 0.5,
        "none": None,
        "items": [1, "a"],
    }
    assert redact({"bypass_cache": "yes", "session_id": "abc"}) == {
        "bypass_cache": "yes",
        "session_id": REDACTED,
    }


def test_secrets_in_text_are_masked_whatever_the_case_or_alphabet() -> None:
    assert redact("AUTH: BEARER abc.123") == "AUTH: BEARER " + REDACTED
    assert redact("PassWord=hunter22 ok") == "PassWord=" + REDACTED + " ok"
    # U+017F (long s) case-folds to "s": non-ASCII text must still trip the pre-check.
    long_s = "pa\u017f\u017fword=hunter22 caf\u00e9"
    assert "hunter22" not in redact(long_s)


def test_a_secret_registered_after_a_line_was_logged_is_masked_in_later_lines(
    captured: io.StringIO,
) -> None:
    log = logging.getLogger("orch.test")
    text = "late-registered-secret-4711"
    log.info(text, extra={"route": text})  # scrubbed (and remembered) before it was a secret
    register_secret(text)
    log.info(text, extra={"route": text})
    first, second = lines(captured)
    assert first["message"] == text
    assert (second["message"], second["route"]) == (REDACTED, REDACTED)


def test_timestamps_are_utc_with_milliseconds() -> None:
    formatter = JsonFormatter()
    stamps = []
    for created in (1_800_000_000.1239, 1_800_000_000.9996, 1_800_000_001.0):
        record = logging.LogRecord("orch.test", logging.INFO, "x", 1, "m", None, None)
        record.created = created
        stamps.append(json.loads(formatter.format(record))["timestamp"])
    assert stamps == [
        "2027-01-15T08:00:00.123+00:00",
        "2027-01-15T08:00:00.999+00:00",
        "2027-01-15T08:00:01.000+00:00",
    ]
