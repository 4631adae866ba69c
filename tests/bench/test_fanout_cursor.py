"""The fan-out scenario reads the feed's last seq only once it stopped moving: a publish call cancelled by
the load's deadline may still be published by the server after the load returned (the baseline's 'count
mismatch')."""

from __future__ import annotations

from bench.scenarios.fanout import settled_cursor


def test_cursor_is_read_again_until_two_reads_agree() -> None:
    reads = iter([151, 153, 155, 155, 999])
    calls: list[str] = []

    def cursor(url: str) -> int:
        calls.append(url)
        return next(reads)

    assert settled_cursor(cursor, "http://127.0.0.1:1", quiet=0.0) == 155
    assert len(calls) == 4


def test_a_cursor_that_never_settles_gives_up_at_the_limit_with_the_latest_value() -> None:
    counter = iter(range(1, 10_000))
    assert settled_cursor(lambda _: next(counter), "u", quiet=0.0, limit=0.0) == 1
