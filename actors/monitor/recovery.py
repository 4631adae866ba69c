"""Recovery rate limiting and escalation: pure, clock injected.

A `RecoveryGovernor` guards one `RecoveryPolicy`. Before acting on a target it answers `decide`; after an
attempt the caller `record`s it. Per target, like Kubernetes' CrashLoopBackOff: the n-th retry waits
``backoff_initial_s * 2**(n-1)`` capped at ``backoff_max_s`` (and never less than ``cooldown_s``); when a
target is still unhealthy once the backoff after its ``escalate_after``-th attempt has passed, the governor
stops allowing attempts and says *escalate* exactly once; the
count resets once the target has been healthy for ``reset_after_s``. Across targets, at most
``max_per_window`` attempts in any ``window_s``.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from .settings import RecoveryPolicy


class Denial(enum.StrEnum):
    """Why an attempt is not allowed now."""

    BACKOFF = "backoff"  # cooldown or restart backoff of this target not over yet
    WINDOW = "window"  # the policy's attempts-per-window budget is spent
    ESCALATED = "escalated"  # given up on this target until it is healthy again


@dataclass(frozen=True, slots=True)
class Decision:
    """The governor's answer. ``escalate`` is True once, on the call that crosses ``escalate_after``."""

    allowed: bool
    attempt: int  # the attempt number this would be (1-based), or the count so far when denied
    denial: Denial | None = None
    retry_at: float | None = None
    escalate: bool = False


@dataclass(slots=True)
class _Target:
    attempts: int = 0
    last_at: float | None = None
    escalated: bool = False
    healthy_since: float | None = None


@dataclass(slots=True)
class RecoveryGovernor:
    """Cooldown, window budget, backoff and escalation for one policy (see module doc)."""

    policy: RecoveryPolicy
    _targets: dict[str, _Target] = field(default_factory=dict)
    _recent: deque[float] = field(default_factory=deque)

    def decide(self, now: float, target: str) -> Decision:
        """May the policy act on ``target`` at ``now``?"""
        st = self._targets.setdefault(target, _Target())
        if st.escalated:
            return Decision(False, st.attempts, Denial.ESCALATED)
        if st.last_at is not None:
            ready = st.last_at + self.delay_after(st.attempts)
            if now < ready:
                return Decision(False, st.attempts, Denial.BACKOFF, retry_at=ready)
        if st.attempts >= self.policy.escalate_after:
            # Still unhealthy when the next attempt would be due: the last one got its full backoff too.
            st.escalated = True
            return Decision(False, st.attempts, Denial.ESCALATED, escalate=True)
        self._expire(now)
        if len(self._recent) >= self.policy.max_per_window:
            return Decision(
                False, st.attempts, Denial.WINDOW, retry_at=self._recent[0] + self.policy.window_s
            )
        return Decision(True, st.attempts + 1)

    def record(self, now: float, target: str) -> None:
        """An attempt on ``target`` was made at ``now`` (whatever its outcome)."""
        st = self._targets.setdefault(target, _Target())
        st.attempts += 1
        st.last_at = now
        st.healthy_since = None
        self._recent.append(now)

    def note_healthy(self, now: float, target: str) -> None:
        """``target`` looks healthy (its alert resolved); starts the reset clock if not already running."""
        st = self._targets.get(target)
        if st is not None and st.healthy_since is None:
            st.healthy_since = now

    def note_unhealthy(self, now: float, target: str) -> None:
        """``target`` is in trouble again; forget its history first if it was healthy long enough."""
        st = self._targets.get(target)
        if st is None or st.healthy_since is None:
            return
        if now - st.healthy_since >= self.policy.reset_after_s:
            del self._targets[target]
        else:
            st.healthy_since = None

    def delay_after(self, attempts: int) -> float:
        """Minimum wait after the ``attempts``-th attempt before the next one."""
        if attempts <= 0:
            return 0.0
        p = self.policy
        backoff = min(p.backoff_initial_s * 2.0 ** (attempts - 1), p.backoff_max_s)
        return max(backoff, p.cooldown_s)

    def attempts(self, target: str) -> int:
        """Attempts on ``target`` since its last reset."""
        st = self._targets.get(target)
        return 0 if st is None else st.attempts

    def _expire(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - self.policy.window_s:
            self._recent.popleft()
