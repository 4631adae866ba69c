"""The runtime's public surface is explicit: changing it must be a deliberate edit of this list."""

from __future__ import annotations

import runtime

EXPECTED = {
    "Actor", "ActorCrashed", "ActorError", "ActorFailed", "ActorRef", "ActorStopped", "Backoff", "Broadcast",
    "BroadcastStats", "ChildCrashed", "ChildRestarted", "ChildSpec", "ChildState", "ChildStatus",
    "DomainError", "Escalated", "Failure", "Intensity", "Lagged", "MailboxFull", "MailboxStats", "Reply",
    "Restart", "positional_builder",
    "RuntimeEvent", "Sequenced", "StartFailed", "Strategy", "Subscription", "Supervisor", "SupervisorGaveUp",
    "SupervisorSpec", "SupervisorStatus", "WorkerSpec", "open_actor", "supervisor", "worker",
}  # fmt: skip


def test_public_api_is_exactly_the_documented_names() -> None:
    assert set(runtime.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(runtime, name) is not None


def test_runtime_errors_share_one_base() -> None:
    for error in (
        runtime.ActorCrashed,
        runtime.ActorStopped,
        runtime.MailboxFull,
        runtime.StartFailed,
        runtime.Escalated,
    ):
        assert issubclass(error, runtime.ActorError)
    assert not issubclass(runtime.DomainError, runtime.ActorError)
