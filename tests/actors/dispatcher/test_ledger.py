"""The ledger's bookkeeping from committed changes: queue depth, claimability, due times, rates."""

from __future__ import annotations

from actors.dispatcher.ledger import Ledger
from actors.dispatcher.messages import TaskStatus as S
from actors.dispatcher.store import Change

NOW = 1_000.0


def test_a_batch_of_changes_moves_queue_depth_and_feeds_the_rate_meters() -> None:
    ledger = Ledger()
    queued = [Change("A", p, None, S.QUEUED, NOW) for p in (1, 1, 5)] + [Change("B", 0, None, S.QUEUED, NOW)]
    assert ledger.apply(queued, NOW) == {"A", "B"}
    claimed = [Change("A", 1, S.QUEUED, S.CLAIMED, NOW), Change("A", 5, S.QUEUED, S.CLAIMED, NOW)]
    assert ledger.apply(claimed, NOW) == set()
    done = [Change("A", 1, S.CLAIMED, S.SUCCEEDED, NOW), Change("A", 5, S.RUNNING, S.FAILED, NOW)]
    assert ledger.apply(done, NOW) == set()
    assert ledger.ahead("A", 0) == 1 and ledger.ahead("A", 2) == 0 and ledger.ahead("B", 0) == 1
    assert ledger.claims["A"].rate(NOW) == 2 / 60
    assert ledger.completions["A"].rate(NOW) == 2 / 60
    assert ledger.generation["A"] == 1 and ledger.generation["B"] == 1


def test_delayed_and_retrying_changes_are_not_claimable_now_but_come_due() -> None:
    ledger = Ledger()
    changes = [
        Change("A", 0, None, S.QUEUED, NOW + 30),
        Change("B", 0, S.RUNNING, S.RETRYING, NOW + 10),
    ]
    assert ledger.apply(changes, NOW) == set()
    assert ledger.next_retry == NOW + 10 and ledger.next_wakeup() == NOW + 10
    assert ledger.completions["B"].rate(NOW) == 0  # a retry ends the attempt but is no completion
    assert ledger.pop_due(NOW + 30) == {"A"}
    assert ledger.ahead("A", 0) == 1
