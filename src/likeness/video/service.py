"""Video use cases: create, read, list, rename, delete, and the state changes a render makes,
each with its flat Tavus callback recorded in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from likeness.config import Settings
from likeness.errors import BadRequest, NotFound
from likeness.jobs import outbox
from likeness.kit import ids, signed
from likeness.kit.clock import callback_time, rfc1123, utcnow
from likeness.kit.db import after_commit
from likeness.kit.safe_url import is_well_formed
from likeness.models import Replica, Video
from likeness.storage.base import BlobStore
from likeness.upload import service as uploads
from likeness.video import repository
from likeness.video.schemas import CreateVideo
from likeness.webhooks import repository as webhook_repository
from likeness.webhooks import service as webhooks

RENDER_JOB = "video.render"
MIN_AUDIO_S = 3.0
MAX_AUDIO_S = 600.0
# A script is refused at create when even a fast voice would speak it for over MAX_AUDIO_S.
# Piper's en_US joe voice (the one scripts are spoken with) said English prose at 17.2-18.0
# characters a second (whitespace runs counted once; 2.7-3.3 words/s) on LibriVox's Austen
# lines and 2,700-2,900 characters each of the GPL-3 and Apache-2.0 texts, and slower where
# it spells digits and symbols out (7.9 chars/s on dates, prices and phone numbers). 20 chars/s
# (the fastest, plus 10 %) refuses only what is surely too long; the render still measures
# the speech it makes (video/tasks.py) and stops synthesising past the limit.
SPEECH_CHARS_PER_S = 20.0
MAX_SCRIPT_CHARS = int(MAX_AUDIO_S * SPEECH_CHARS_PER_S)

READY = "Your request has processed successfully!"
QUEUED = "This request is currently queued. It should begin processing in a few minutes."
TRAINING = (
    "The training process for replica {} is still ongoing. Your request has been placed in "
    "the 'queued' status and will automatically proceed to the generation phase once training "
    "is complete."
)
REPLICA_ERROR = (
    "Request Failed: The replica {} is currently in an 'error' state and cannot process requests."
)
FAILED = (
    "An error occurred while generating this request. Please check your inputs or try your "
    "request again."
)


def create(session: Session, settings: Settings, body: CreateVideo) -> Video:
    replica_id = body.replica_id or body.face_id
    if not replica_id or repository.live_replica(session, replica_id) is None:
        raise BadRequest("Invalid replica_id")
    script = (body.script or "").strip()
    if bool(script) == bool(body.audio_url):
        raise BadRequest("Send exactly one of script or audio_url")
    if script:
        check_script(script)
    if body.audio_url and not is_well_formed(body.audio_url):
        raise BadRequest("Invalid audio_url")
    if body.callback_url and not is_well_formed(body.callback_url):
        raise BadRequest("Invalid callback_url")
    if body.background_url:
        raise BadRequest(
            "background_url (a recorded website) is not supported; send "
            "background_source_url (a video file)"
        )
    if body.background_source_url and not is_well_formed(body.background_source_url):
        raise BadRequest("Invalid background_source_url")
    if body.background_source_url and body.transparent_background:
        raise BadRequest("Send background_source_url or transparent_background, not both")
    uploads.refuse_private(session, settings, "audio_url", body.audio_url)
    uploads.refuse_private(session, settings, "background_source_url", body.background_source_url)
    uploads.refuse_private(session, settings, "callback_url", body.callback_url, own_ok=False)
    video_id = ids.video_id()
    video = Video(
        id=video_id,
        name=body.video_name,
        replica_id=replica_id,
        script=script or None,
        audio_url=body.audio_url,
        callback_url=body.callback_url,
        background_source_url=body.background_source_url,
        transparent_background=body.transparent_background,
        status="queued",
        status_details=QUEUED,
        generation_progress=0,
    )
    session.add(video)
    outbox.add(session, (RENDER_JOB, video.id))
    session.flush()
    if not video.name:
        video.name = f"replica_id: {replica_id} - {video.created_at:%B %d, %Y} - video: {video_id}"
    return video


def check_script(script: str) -> None:
    """Refuse a script the voice cannot say ("...") or could not say in MAX_AUDIO_S."""
    if not any(ch.isalnum() for ch in script):
        raise BadRequest("script has nothing to say: it needs at least one word or number")
    chars = len(" ".join(script.split()))
    if chars > MAX_SCRIPT_CHARS:
        raise BadRequest(
            f"script is too long: {chars} characters; at most {MAX_SCRIPT_CHARS} fit in "
            f"{MAX_AUDIO_S / 60:.0f} minutes of speech"
        )


def get(session: Session, video_id: str) -> Video:
    video = repository.get_live(session, video_id)
    if video is None:
        raise NotFound("Invalid video_id")
    return video


def read(connection: Connection, video_id: str) -> VideoRecord:
    """The video GET /v2/videos/{id} shows, read as a row (no ORM object)."""
    video = repository.read_live(connection, video_id)
    if video is None:
        raise NotFound("Invalid video_id")
    return video


def rename(session: Session, video_id: str, name: str | None) -> None:
    if not name:
        raise BadRequest("video_name is required")
    get(session, video_id).name = name


def delete(session: Session, storage: BlobStore, video_id: str, hard: bool) -> None:
    """Soft: hide it; its links die and its callbacks stop. Hard (soft-deleted or not): the
    row, its files and its callbacks go, irrevocably."""
    video = (
        repository.get_any(session, video_id) if hard else repository.get_live(session, video_id)
    )
    if video is None:
        raise NotFound("Invalid video_id")
    if hard:
        purge(session, storage, video)
    else:
        video.deleted_at = utcnow()
        webhook_repository.cancel_pending(session, video_id)


def purge_of_replica(session: Session, storage: BlobStore, replica_id: str) -> None:
    """Every video of a replica being hard-deleted goes too (runtime.py wires this)."""
    for video in repository.of_replica(session, replica_id):
        purge(session, storage, video)


def purge(session: Session, storage: BlobStore, video: Video) -> None:
    """Remove a video for good. A render still running notices the missing row and tidies
    whatever it writes after this (video/tasks.py)."""
    key = work_key(video.id)
    after_commit(session, lambda: storage.delete_tree(key))
    webhook_repository.forget(session, video.id)
    session.delete(video)


def work_key(video_id: str) -> str:
    return f"videos/{video_id}"


def media_base(public_url: str, api_key: str, video_id: str) -> str:
    """Browser-openable links carry a capability token in the path (so HLS segments, which
    a player resolves relative to the playlist, keep it)."""
    token = signed.token(api_key, f"video:{video_id}")
    return f"{public_url.rstrip('/')}/v2/videos/{video_id}/media/{token}"


class VideoRecord(Protocol):
    """What the wire view reads: a ``Video`` or a Core row of its table (``read``)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def replica_id(self) -> str: ...
    @property
    def script(self) -> str | None: ...
    @property
    def background_source_url(self) -> str | None: ...
    @property
    def transparent_background(self) -> bool: ...
    @property
    def status(self) -> str: ...
    @property
    def status_details(self) -> str | None: ...
    @property
    def generation_progress(self) -> int: ...
    @property
    def error_details(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


def to_wire(
    video: VideoRecord, public_url: str, api_key: str, verbose: bool = False
) -> dict[str, Any]:
    base = media_base(public_url, api_key, video.id)
    ready = video.status == "ready"
    file_name = "video.webm" if video.transparent_background else "video.mp4"
    streamable = ready and not video.transparent_background
    out: dict[str, Any] = {
        "video_id": video.id,
        "video_name": video.name,
        "replica_id": video.replica_id,
        "status": video.status,
        "data": {"script": video.script or ""},
        "download_url": f"{base}/{file_name}" if ready else None,
        "stream_url": f"{base}/index.m3u8" if streamable else None,
        "hosted_url": f"{base}/watch",
        "status_details": video.status_details,
        "generation_progress": f"{video.generation_progress}/100",
        "background_url": None,
        "background_source_url": video.background_source_url,
        "error_details": video.error_details,
        "created_at": rfc1123(video.created_at),
        "updated_at": rfc1123(video.updated_at),
    }
    if verbose:
        out["still_image_thumbnail_url"] = f"{base}/thumbnail.jpg" if ready else None
        out["gif_thumbnail_url"] = None
    return out


def callback_payload(video: Video, public_url: str, api_key: str) -> dict[str, Any]:
    wire = to_wire(video, public_url, api_key)
    for key in ("background_url", "background_source_url"):
        wire.pop(key)
    wire["created_at"] = callback_time(video.created_at)
    wire["updated_at"] = callback_time(video.updated_at)
    return wire


# -- render-side state changes ----------------------------------------------------------------


def mark_waiting(video: Video, replica: Replica) -> None:
    video.status = "queued"
    video.status_details = TRAINING.format(replica.id)
    video.lease_expires_at = None


def mark_generating(video: Video) -> None:
    video.status = "generating"
    video.status_details = "Your request is being generated."


def mark_ready(session: Session, video: Video, public_url: str, api_key: str) -> str | None:
    video.status = "ready"
    video.status_details = READY
    video.generation_progress = 100
    video.lease_expires_at = None
    return _callback(session, video, public_url, api_key)


def mark_failed(
    session: Session, video: Video, details: str, error: str, public_url: str, api_key: str
) -> str | None:
    video.status = "error"
    video.status_details = details
    video.error_details = error
    video.generation_progress = 0
    video.lease_expires_at = None
    return _callback(session, video, public_url, api_key)


def _callback(session: Session, video: Video, public_url: str, api_key: str) -> str | None:
    if not video.callback_url:
        return None
    session.flush()
    payload = callback_payload(video, public_url, api_key)
    return webhooks.record(session, video.callback_url, payload, video.id)


def after_replica(
    session: Session, replica: Replica, public_url: str, api_key: str
) -> tuple[list[str], list[str]]:
    """A replica finished training: its waiting videos go to render (ids returned first), or
    fail with Tavus's message if training failed (callback events returned second)."""
    waiting = repository.waiting_for(session, replica.id)
    if replica.status == "completed":
        for video in waiting:
            video.status_details = QUEUED
        return [v.id for v in waiting], []
    events = []
    for video in waiting:
        event = mark_failed(
            session,
            video,
            REPLICA_ERROR.format(replica.id),
            "the replica failed to train",
            public_url,
            api_key,
        )
        if event:
            events.append(event)
    return [], events
