"""Task ids are time-ordered and unique; lease tokens are 128 random bits, never handed out twice."""

from __future__ import annotations

import re

from actors.dispatcher.ids import new_lease_token, new_task_id


def test_task_ids_sort_by_creation_time_and_never_repeat() -> None:
    ids = [new_task_id(1_700_000_000.0 + i / 1000) for i in range(2_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_lease_tokens_are_32_hex_digits_and_unique_across_pool_refills() -> None:
    tokens = [new_lease_token() for _ in range(20_000)]  # more than one pool's worth of digits
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tokens)
    assert len(set(tokens)) == len(tokens)
