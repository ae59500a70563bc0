"""SQLAlchemy tables, one per file."""

from likeness.models.conversation import Conversation
from likeness.models.outbox import OutboxMessage
from likeness.models.persona import Persona
from likeness.models.replica import Replica
from likeness.models.upload import Upload
from likeness.models.video import Video
from likeness.models.webhook import WebhookAttempt, WebhookEvent

__all__ = [
    "Conversation",
    "OutboxMessage",
    "Persona",
    "Replica",
    "Upload",
    "Video",
    "WebhookAttempt",
    "WebhookEvent",
]
