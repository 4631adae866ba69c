"""Task ids are time-ordered and unique; lease tokens are 128 random bits, never handed out twice."""

from __future__ import annotations

import re

from actors.dispatcher.ids import new_lease_token, new_task_id, new_task_ids


def test_task_ids_sort_by_creation_time_and_never_repeat() -> None:
    ids = [new_task_id(1_700_000_000.0 + i / 1000) for i in range(2_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_lease_tokens_are_32_hex_digits_and_unique_across_pool_refills() -> None:
    tokens = [new_lease_token() for _ in range(20_000)]  # more than one pool's worth of digits
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tokens)
    assert len(set(tokens)) == len(tokens)


def test_ids_drawn_together_are_like_ids_drawn_one_by_one() -> None:
    now = 1_700_000_000.25
    batch = new_task_ids(now, 2_500)  # more than one draw, and more than one pool's worth in all
    batch += new_task_ids(now, 5_000) + new_task_ids(now, 1) + new_task_ids(now, 0)
    single = new_task_id(now)
    assert len(batch) == 7_501
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in batch)
    assert {i[:14] for i in [*batch, single]} == {f"{int(now * 1_000_000):014x}"}
    assert len({*batch, single}) == len(batch) + 1
