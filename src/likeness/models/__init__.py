"""SQLAlchemy tables, one per file."""

from likeness.models.replica import Replica
from likeness.models.upload import Upload
from likeness.models.video import Video
from likeness.models.webhook import WebhookAttempt, WebhookEvent

__all__ = ["Replica", "Upload", "Video", "WebhookAttempt", "WebhookEvent"]
