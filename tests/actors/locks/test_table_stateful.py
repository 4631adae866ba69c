"""Hypothesis stateful test: the lock table against a naive reference model, with fake time."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.locks.messages import (
    LockError,
    LockExpired,
    LockMode,
    LockNotHeld,
    LockUnavailable,
    NotOwner,
    ReleaseOutcome,
)
from actors.locks.table import Granted, LockTable, Refused
from actors.locks.waitqueue import Waiter

RESOURCES = ("a", "b")
AGING = 1.0
MAX_TTL = 10.0


@dataclass
class MLease:
    fence: int
    owner: str
    mode: LockMode
    expires_at: float


@dataclass
class MWaiter:
    id: int
    owner: str
    mode: LockMode
    ttl: float
    priority: int
    enqueued_at: float


@dataclass
class Model:
    """The obvious, slow implementation: lists, sorting, linear scans."""

    now: float = 0.0
    held: dict[str, list[MLease]] = field(default_factory=dict)
    queue: dict[str, list[MWaiter]] = field(default_factory=dict)
    fences: dict[str, int] = field(default_factory=dict)
    ended: dict[tuple[str, int], ReleaseOutcome] = field(default_factory=dict)
    next_id: int = 1
    granted: dict[int, tuple[str, int]] = field(default_factory=dict)  # waiter id -> (resource, fence)

    def expire(self) -> None:
        touched = []
        for resource, leases in self.held.items():
            for lease in [x for x in leases if x.expires_at <= self.now]:
                leases.remove(lease)
                self.ended[(resource, lease.fence)] = ReleaseOutcome.EXPIRED
                touched.append(resource)
        for resource in touched:
            self.grant(resource)

    def grant(self, resource: str) -> None:
        waiting = self.queue.setdefault(resource, [])
        waiting.sort(key=lambda w: (w.enqueued_at - w.priority * AGING, w.id))
        leases = self.held.setdefault(resource, [])
        while waiting:
            head = waiting[0]
            ok = not leases or (head.mode is LockMode.SHARED and leases[0].mode is LockMode.SHARED)
            if not ok:
                return
            waiting.pop(0)
            self.fences[resource] = self.fences.get(resource, 0) + 1
            fence = self.fences[resource]
            leases.append(MLease(fence, head.owner, head.mode, self.now + head.ttl))
            self.granted[head.id] = (resource, fence)

    def find(self, resource: str, fence: int) -> MLease | None:
        return next((x for x in self.held.get(resource, []) if x.fence == fence), None)


class LockTableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        issued = itertools.count(1)
        # Deterministic tokens: Hypothesis replays must draw the same choices.
        self.table = LockTable(aging=AGING, max_ttl=MAX_TTL, token_factory=lambda: f"tok-{next(issued):06d}")
        self.model = Model()
        self.tokens: dict[str, tuple[str, int]] = {}  # token -> (resource, fence), every token ever issued
        self.waiting: set[int] = set()  # waiter ids the test saw queued and not yet granted/cancelled
        self.last_fence_seen: dict[str, int] = {}

    # --- rules --------------------------------------------------------------------------------------
    @rule(dt=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 5.0, 12.0]))
    def advance(self, dt: float) -> None:
        self.model.now += dt

    @rule()
    def tick(self) -> None:
        self.model.expire()
        self.table.expire_due(self.model.now)

    @rule(
        resource=st.sampled_from(RESOURCES),
        owner=st.sampled_from(["w1", "w2", "w3"]),
        ttl=st.sampled_from([0.5, 1.0, 3.0, 10.0, 11.0]),
        priority=st.integers(-3, 3),
        wait=st.booleans(),
        mode=st.sampled_from(LockMode),
    )
    def acquire(
        self, resource: str, owner: str, ttl: float, priority: int, wait: bool, mode: LockMode
    ) -> None:
        m = self.model
        if ttl > MAX_TTL:
            with pytest.raises(LockError):
                self.table.acquire(resource, owner, ttl, m.now, priority=priority, wait=wait, mode=mode)
            return
        m.expire()
        waiter = MWaiter(m.next_id, owner, mode, ttl, priority, m.now)
        m.next_id += 1
        m.queue.setdefault(resource, []).append(waiter)
        m.grant(resource)
        expect_granted = waiter.id in m.granted
        if not expect_granted and not wait:
            m.queue[resource].remove(waiter)
            m.grant(resource)
            with pytest.raises(LockUnavailable):
                self.table.acquire(resource, owner, ttl, m.now, priority=priority, wait=wait, mode=mode)
            return
        result = self.table.acquire(resource, owner, ttl, m.now, priority=priority, wait=wait, mode=mode)
        if expect_granted:
            assert not isinstance(result, Waiter)
            assert (result.resource, result.fence) == m.granted[waiter.id]
        else:
            assert isinstance(result, Waiter)
            assert result.id == waiter.id
            self.waiting.add(result.id)

    def _pick_token(self, data: st.DataObject) -> str:
        choices = [*self.tokens, "bogus-token"]
        return data.draw(st.sampled_from(choices))

    @rule(resource=st.sampled_from(RESOURCES), data=st.data())
    def release(self, resource: str, data: st.DataObject) -> None:
        token = self._pick_token(data)
        m = self.model
        m.expire()
        expected = self._expected_for(resource, token)
        if isinstance(expected, MLease):
            m.held[resource].remove(expected)
            m.ended[(resource, expected.fence)] = ReleaseOutcome.ALREADY_RELEASED
            m.grant(resource)
            assert self.table.release(resource, token, m.now) is ReleaseOutcome.RELEASED
        elif isinstance(expected, ReleaseOutcome):
            assert self.table.release(resource, token, m.now) is expected
        else:
            with pytest.raises(expected):
                self.table.release(resource, token, m.now)

    @rule(resource=st.sampled_from(RESOURCES), by=st.sampled_from([0.5, 2.0, 9.0]), data=st.data())
    def extend(self, resource: str, by: float, data: st.DataObject) -> None:
        token = self._pick_token(data)
        m = self.model
        m.expire()
        expected = self._expected_for(resource, token)
        if isinstance(expected, MLease):
            before = expected.expires_at
            expected.expires_at = max(before, min(before + by, m.now + MAX_TTL))
            lease = self.table.extend(resource, token, by, m.now)
            assert lease.expires_at == expected.expires_at >= before
        else:
            error: type[LockError]
            if expected is ReleaseOutcome.EXPIRED:
                error = LockExpired
            elif isinstance(expected, ReleaseOutcome):
                error = LockNotHeld
            else:
                error = expected
            with pytest.raises(error):
                self.table.extend(resource, token, by, m.now)

    def _expected_for(self, resource: str, token: str) -> MLease | ReleaseOutcome | type[LockError]:
        issued = self.tokens.get(token)
        if issued is not None and issued[0] == resource:
            lease = self.model.find(resource, issued[1])
            if lease is not None:
                return lease
            return self.model.ended[issued]
        return NotOwner if self.model.held.get(resource) else LockNotHeld

    @precondition(lambda self: bool(self.waiting))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        waiter_id = data.draw(st.sampled_from(sorted(self.waiting)))
        m = self.model
        m.expire()
        for resource, waiting in m.queue.items():
            for waiter in waiting:
                if waiter.id == waiter_id:
                    waiting.remove(waiter)
                    m.grant(resource)
                    assert self.table.cancel(waiter_id, m.now) is True
                    self.waiting.discard(waiter_id)
                    return
        assert self.table.cancel(waiter_id, m.now) is False

    # --- checks after every step ----------------------------------------------------------------------
    def teardown(self) -> None:
        self.check_changes()

    @invariant()
    def check_changes(self) -> None:
        for change in self.table.drain():
            if isinstance(change, Granted):
                lease = change.lease
                assert lease.fence > self.last_fence_seen.get(lease.resource, 0), "fence not increasing"
                self.last_fence_seen[lease.resource] = lease.fence
                self.tokens[lease.token] = (lease.resource, lease.fence)
                assert self.model.granted.get(change.waiter_id) == (lease.resource, lease.fence)
                self.waiting.discard(change.waiter_id)
            elif isinstance(change, Refused):
                assert self.model.held.get(change.resource), "refusal recorded for a free resource"

    @invariant()
    def same_state_as_model(self) -> None:
        m = self.model
        for resource in RESOURCES:
            holders = self.table.holders(resource)
            if any(h.mode is LockMode.EXCLUSIVE for h in holders):
                assert len(holders) == 1, "an exclusive lease shares its resource"
            got = sorted((h.fence, h.owner, h.mode, h.expires_at) for h in holders)
            want = sorted((x.fence, x.owner, x.mode, x.expires_at) for x in m.held.get(resource, []))
            assert got == want
            queue = sorted(
                m.queue.get(resource, []), key=lambda w: (w.enqueued_at - w.priority * AGING, w.id)
            )
            assert [w.id for w in self.table.waiters(resource)] == [w.id for w in queue]
            assert self.table.waiter_count(resource) == len(queue)
            assert self.table.last_fence(resource) == m.fences.get(resource, 0)

    @invariant()
    def no_lost_waiter(self) -> None:
        queued = {w.id for r in RESOURCES for w in self.table.waiters(r)}
        assert self.waiting <= queued | set(self.model.granted)
        assert self.table.waiter_count() == len(queued)


LockTableMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestLockTable = LockTableMachine.TestCase
