"""Supervisors with OTP semantics: ordered start, restart strategies, intensity, backoff, escalation."""

from __future__ import annotations

import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ._actor import run_incarnation
from ._errors import ActorCrashed, ActorStopped, Escalated, StartFailed
from ._spec import ChildSpec, Restart, Strategy, SupervisorSpec, WorkerSpec
from ._status import (
    ChildCrashed,
    ChildRestarted,
    ChildState,
    ChildStatus,
    Failure,
    RuntimeEvent,
    SupervisorGaveUp,
    SupervisorStatus,
)

logger = logging.getLogger("runtime.supervisor")

_LIVE = (ChildState.STARTING, ChildState.RUNNING)


class _Killed:
    """Outcome of a child that was cancelled rather than exiting on its own."""


_KILLED = _Killed()
Outcome = BaseException | None | _Killed  # a crash, a normal exit, or a hard stop


@dataclass(eq=False)
class _Child:
    spec: ChildSpec
    state: ChildState = ChildState.STOPPED
    restarts: int = 0
    failures_in_a_row: int = 0
    last_failure: Failure | None = None
    started_at: float | None = None
    started_clock: float = 0.0
    generation: int = 0
    scope: trio.CancelScope | None = None
    done: trio.Event = field(default_factory=trio.Event)
    nested: Supervisor | None = None


@dataclass(eq=False)
class _StartSignal:
    event: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None
    fired: bool = False

    def fire(self, error: BaseException | None = None) -> None:
        if not self.fired:
            self.fired, self.error = True, error
            self.event.set()


@dataclass(frozen=True, slots=True)
class _Exited:
    child: _Child
    generation: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Stop:
    final: bool


@dataclass(eq=False)
class _RestartRequest:
    child: _Child
    done: trio.Event = field(default_factory=trio.Event)


_Inbox = _Exited | _Stop | _RestartRequest


class Supervisor:
    """Runs a ``SupervisorSpec``: starts children in order, restarts them per strategy, stops in reverse.

    ``run`` returns after a requested stop, raises ``StartFailed`` if a child fails to start, and raises
    ``Escalated`` when restarts exceed the intensity (after stopping every child in reverse order).
    """

    def __init__(
        self,
        spec: SupervisorSpec,
        *,
        on_event: Callable[[RuntimeEvent], None] | None = None,
        rng: random.Random | None = None,
        _is_root: bool = True,
    ) -> None:
        self.id = spec.id
        self._spec = spec
        self._on_event = on_event
        self._rng = rng or random.Random()
        self._is_root = _is_root
        self._children = [_Child(child) for child in spec.children]
        self._state = ChildState.STOPPED
        self._restart_clock: deque[float] = deque()
        self._inbox_send, self._inbox = trio.open_memory_channel[_Inbox](math.inf)
        self._nursery: trio.Nursery | None = None
        self._finished = trio.Event()
        self._stopping = False
        self._backoff_scope: trio.CancelScope | None = None

    # --- public API ------------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, signal started, then supervise until stopped."""
        await self._run(lambda: task_status.started())

    def request_stop(self) -> None:
        """Ask the supervisor to stop its children in reverse order and return from ``run``."""
        self._request_stop(final=True)

    def _request_stop(self, *, final: bool) -> None:
        self._stopping = True
        if self._backoff_scope is not None:
            self._backoff_scope.cancel()
        self._inbox_send.send_nowait(_Stop(final=final))

    async def stop(self) -> None:
        """Stop the tree (reverse start order, honouring grace periods) and wait until it is down."""
        self.request_stop()
        await self._finished.wait()

    async def restart_child(self, child_id: str) -> None:
        """Stop ``child_id`` (anywhere in the tree) gracefully and start it again."""
        for child in self._children:
            if child.spec.id == child_id:
                request = _RestartRequest(child)
                self._inbox_send.send_nowait(request)
                await request.done.wait()
                return
            if child.nested is not None and child.nested.knows(child_id):
                await child.nested.restart_child(child_id)
                return
        raise LookupError(f"no running child {child_id!r} under supervisor {self.id!r}")

    def knows(self, child_id: str) -> bool:
        """Whether ``child_id`` is this supervisor's child or below one of its running supervisors."""
        return any(
            c.spec.id == child_id or (c.nested is not None and c.nested.knows(child_id))
            for c in self._children
        )

    def status(self) -> SupervisorStatus:
        """An immutable snapshot of this supervisor and everything below it."""
        return SupervisorStatus(
            self.id, self._spec.strategy, self._state, tuple(_child_status(c) for c in self._children)
        )

    # --- the supervision loop --------------------------------------------------------------------------
    async def _run(self, on_started: Callable[[], None]) -> None:
        failure: StartFailed | Escalated | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._state = ChildState.STARTING
                failure = await self._start_all()
                if failure is None:
                    self._state = ChildState.RUNNING
                    on_started()
                    failure, final = await self._supervise()
                    await self._stop_all(final=final and failure is None)
        finally:
            self._state = ChildState.FAILED if failure else ChildState.STOPPED
            if self._is_root:
                _close_mailboxes(self._spec)
            self._finished.set()
        if failure is not None:
            raise failure

    async def _start_all(self) -> StartFailed | None:
        for child in self._children:
            error = await self._launch(child)
            if error is not None:
                await self._stop_all(final=False)
                return StartFailed(child.spec.id, error)
        return None

    async def _supervise(self) -> tuple[Escalated | None, bool]:
        while True:
            item = await self._inbox.receive()
            match item:
                case _Stop(final=final):
                    return None, final
                case _Exited(child=child, generation=generation, outcome=outcome):
                    if generation == child.generation:
                        escalation = await self._on_exit(child, outcome)
                        if escalation is not None:
                            return escalation, False
                case _RestartRequest():
                    await self._restart_manually(item)

    async def _on_exit(self, child: _Child, outcome: Outcome) -> Escalated | None:
        crash = outcome if isinstance(outcome, BaseException) else None
        self._count_failure(child, crash)
        if not _should_restart(child.spec.restart, crash):
            child.state = ChildState.FAILED if crash else ChildState.STOPPED
            _close_mailboxes(child.spec)
            return None
        if self._intensity_exceeded():
            self._emit(SupervisorGaveUp(self.id, child.spec.id, child.last_failure if crash else None))
            await self._stop_all(final=False)
            return Escalated(self.id, child.spec.id, crash)
        targets = self._restart_set(child)
        for sibling in reversed(targets):
            if sibling is not child:
                await self._stop_child(sibling, final=False)
        delay = self._spec.backoff.delay(child.failures_in_a_row, self._rng.random())
        if delay > 0:
            child.state = ChildState.BACKING_OFF
            with trio.move_on_after(delay) as self._backoff_scope:
                await trio.sleep_forever()
            self._backoff_scope = None
            if self._stopping:  # a stop came in during the backoff: the loop will act on it next
                return None
        await self._restart_all(targets, child, delay, "crash" if crash else "exit")
        return None

    async def _restart_all(self, targets: list[_Child], cause: _Child, delay: float, reason: str) -> None:
        for target in targets:
            target.restarts += 1
            error = await self._launch(target)
            self._emit(
                ChildRestarted(
                    self.id,
                    target.spec.id,
                    target.restarts,
                    delay if target is cause else 0.0,
                    reason if target is cause else "sibling",
                )
            )
            if error is not None:
                # A failed restart is an exit like any other: the loop applies intensity and backoff to it.
                self._inbox_send.send_nowait(_Exited(target, target.generation, error))
                return

    async def _restart_manually(self, request: _RestartRequest) -> None:
        child = request.child
        try:
            await self._stop_child(child, final=False)
            await self._restart_all([child], child, 0.0, "manual")
        finally:
            request.done.set()

    def _count_failure(self, child: _Child, crash: BaseException | None) -> None:
        if crash is not None:
            child.last_failure = Failure.of(crash)
            logger.error("child %s of %s crashed: %r", child.spec.id, self.id, crash)
            self._emit(ChildCrashed(self.id, child.spec.id, child.last_failure))
        healthy_for = trio.current_time() - child.started_clock
        if healthy_for >= self._spec.backoff.reset_after:
            child.failures_in_a_row = 0
        child.failures_in_a_row += 1

    def _intensity_exceeded(self) -> bool:
        now = trio.current_time()
        clock, intensity = self._restart_clock, self._spec.intensity
        clock.append(now)
        while clock and clock[0] <= now - intensity.within:
            clock.popleft()
        return len(clock) > intensity.max_restarts

    def _restart_set(self, child: _Child) -> list[_Child]:
        match self._spec.strategy:
            case Strategy.ONE_FOR_ONE:
                return [child]
            case Strategy.ONE_FOR_ALL:
                return list(self._children)
            case Strategy.REST_FOR_ONE:
                return self._children[self._children.index(child) :]

    # --- starting and stopping one child ---------------------------------------------------------------
    async def _launch(self, child: _Child) -> BaseException | None:
        """Start ``child`` and wait until it signals started; return its start failure, if any."""
        assert self._nursery is not None
        child.generation += 1
        child.state = ChildState.STARTING
        child.done = trio.Event()
        signal = _StartSignal()
        self._nursery.start_soon(self._child_main, child, child.generation, signal)
        await signal.event.wait()
        if signal.error is not None:
            child.state = ChildState.FAILED
            child.last_failure = Failure.of(signal.error)
            return signal.error
        return None

    @staticmethod
    def _mark_started(child: _Child, signal: _StartSignal) -> None:
        # Runs in the child's task the moment it is up, before it handles a message: status never lags.
        child.state = ChildState.RUNNING
        child.started_at, child.started_clock = time.time(), trio.current_time()
        signal.fire()

    async def _child_main(self, child: _Child, generation: int, signal: _StartSignal) -> None:
        outcome: Outcome = _KILLED
        try:
            outcome = await self._run_child(child, signal)
        finally:
            crash = outcome if isinstance(outcome, BaseException) else None
            if isinstance(child.spec, WorkerSpec):
                name = child.spec.id
                child.spec.mailbox.fail_held(
                    (lambda: ActorCrashed(name, crash)) if crash else (lambda: ActorStopped(name))
                )
            child.done.set()
            if not signal.fired:
                signal.fire(crash or ActorStopped(child.spec.id))
            elif generation == child.generation:
                self._inbox_send.send_nowait(_Exited(child, generation, outcome))

    async def _run_child(self, child: _Child, signal: _StartSignal) -> Outcome:
        spec = child.spec
        with trio.CancelScope() as scope:
            child.scope = scope
            try:
                if isinstance(spec, WorkerSpec):
                    spec.mailbox.begin_incarnation()
                    started = lambda: self._mark_started(child, signal)  # noqa: E731
                    await run_incarnation(spec.factory(), spec.mailbox, spec.ref, started)
                else:
                    child.nested = Supervisor(spec, on_event=self._on_event, rng=self._rng, _is_root=False)
                    await child.nested._run(lambda: self._mark_started(child, signal))
                return None
            except BaseException as error:
                crash = _crash_of(error)
                if crash is None:
                    raise
                return crash
        return _KILLED

    async def _stop_child(self, child: _Child, *, final: bool) -> None:
        if child.state not in _LIVE:
            child.state = ChildState.STOPPED if child.state is ChildState.BACKING_OFF else child.state
            return
        child.generation += 1  # its exit is ours, not news
        if isinstance(child.spec, WorkerSpec):
            child.spec.mailbox.request_stop()
        elif child.nested is not None:
            child.nested._request_stop(final=final)
        grace = math.inf if child.spec.shutdown is None else child.spec.shutdown
        with trio.move_on_after(grace):
            await child.done.wait()
        if not child.done.is_set():
            assert child.scope is not None
            child.scope.cancel()
            await child.done.wait()
        child.state = ChildState.STOPPED

    async def _stop_all(self, *, final: bool) -> None:
        for child in reversed(self._children):
            await self._stop_child(child, final=final)
            if final:
                _close_mailboxes(child.spec)

    def _emit(self, event: RuntimeEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            logger.exception("runtime event sink failed on %r", event)


def _should_restart(restart: Restart, crash: BaseException | None) -> bool:
    match restart:
        case Restart.PERMANENT:
            return True
        case Restart.TRANSIENT:
            return crash is not None
        case Restart.TEMPORARY:
            return False


def _crash_of(error: BaseException) -> BaseException | None:
    """The crash inside ``error``, or ``None`` if it is only cancellation (which must propagate)."""
    if isinstance(error, BaseExceptionGroup):
        _, rest = error.split(trio.Cancelled)
        if rest is None:
            return None
        error = rest
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
    if isinstance(error, trio.Cancelled) or not isinstance(error, Exception):
        return None
    return error


def _close_mailboxes(spec: ChildSpec) -> None:
    if isinstance(spec, WorkerSpec):
        spec.mailbox.close()
    else:
        for child in spec.children:
            _close_mailboxes(child)


def _child_status(child: _Child) -> ChildStatus:
    spec: Any = child.spec
    depth: int | None = None
    capacity: int | None = None
    handled: int | None = None
    nested: SupervisorStatus | None = None
    if isinstance(spec, WorkerSpec):
        stats = spec.mailbox.statistics()
        depth, capacity, handled = stats.depth, stats.capacity, stats.handled
    elif child.nested is not None:
        nested = child.nested.status()
    return ChildStatus(
        id=spec.id,
        kind="worker" if isinstance(spec, WorkerSpec) else "supervisor",
        state=child.state,
        restart=spec.restart,
        restarts=child.restarts,
        last_failure=child.last_failure,
        started_at=child.started_at,
        mailbox_depth=depth,
        mailbox_capacity=capacity,
        messages_handled=handled,
        supervisor=nested,
    )
