"""A small actor runtime on Trio: typed refs, bounded mailboxes, ask/tell, OTP-style supervisors, pub/sub.

It knows nothing of orch's domain and could be published on its own.
"""

from ._actor import Actor
from ._builders import positional_builder
from ._errors import (
    ActorCrashed,
    ActorError,
    ActorStopped,
    DomainError,
    Escalated,
    MailboxFull,
    StartFailed,
)
from ._mailbox import MailboxStats
from ._ref import ActorRef
from ._reply import Reply
from ._spec import (
    Backoff,
    ChildSpec,
    Intensity,
    Restart,
    Strategy,
    SupervisorSpec,
    WorkerSpec,
    supervisor,
    worker,
)
from ._standalone import ActorFailed, open_actor
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
from ._supervisor import Supervisor
from .broadcast import Broadcast, BroadcastStats, Lagged, Sequenced, Subscription

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorError",
    "ActorFailed",
    "ActorRef",
    "ActorStopped",
    "Backoff",
    "Broadcast",
    "BroadcastStats",
    "ChildCrashed",
    "ChildRestarted",
    "ChildSpec",
    "ChildState",
    "ChildStatus",
    "DomainError",
    "Escalated",
    "Failure",
    "Intensity",
    "Lagged",
    "MailboxFull",
    "MailboxStats",
    "Reply",
    "Restart",
    "RuntimeEvent",
    "Sequenced",
    "StartFailed",
    "Strategy",
    "Subscription",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorSpec",
    "SupervisorStatus",
    "WorkerSpec",
    "open_actor",
    "positional_builder",
    "supervisor",
    "worker",
]
