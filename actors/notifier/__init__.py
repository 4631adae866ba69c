"""The notifier actor: outbound delivery to Slack, signed webhooks and email, with retries.

    from actors.notifier import NotifierActor, NotifierSettings, SlackChannel, WebhookChannel, EmailChannel
    from actors.notifier.messages import Notify, Notification, ListChannels, EnableChannel, Flush

    worker("notifier", lambda: NotifierActor(settings), capacity=1000)
    notifier_ref.tell_nowait(Notify(notification))     # never blocks the sender; MailboxFull if flooded

Other actors import only `actors.notifier.messages`.
"""

from .actor import NotifierActor
from .settings import (
    Channel,
    EmailChannel,
    NotifierSettings,
    RetryPolicy,
    SlackChannel,
    SmtpSecurity,
    WebhookChannel,
)
from .signing import SigningKeyError, WebhookSigner

__all__ = [
    "Channel",
    "EmailChannel",
    "NotifierActor",
    "NotifierSettings",
    "RetryPolicy",
    "SigningKeyError",
    "SlackChannel",
    "SmtpSecurity",
    "WebhookChannel",
    "WebhookSigner",
]
