"""Replica use cases: create, read, list, rename, delete; and the state changes training makes
(progress, completed, error), each with its callback recorded in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from likeness.config import MODEL_NAMES, Settings
from likeness.errors import BadRequest, NotFound
from likeness.jobs import outbox
from likeness.kit import ids, signed
from likeness.kit.clock import iso_ms, utcnow
from likeness.kit.db import after_commit
from likeness.kit.safe_url import is_well_formed
from likeness.models import Replica
from likeness.models.replica import work_key as work_key  # re-exported: service.work_key
from likeness.replica import repository
from likeness.replica.schemas import ApiName, CreateReplica
from likeness.storage.base import BlobStore
from likeness.training import failures
from likeness.upload import service as uploads
from likeness.webhooks import repository as webhook_repository
from likeness.webhooks import service as webhooks

TRAIN_JOB = "replica.train"


def create(session: Session, settings: Settings, body: CreateReplica, api_name: ApiName) -> Replica:
    if body.train_image_url and not body.train_video_url:
        raise BadRequest("Invalid train_video_url: training from an image is not supported yet")
    if body.train_video_url and body.train_image_url:
        raise BadRequest("Send train_video_url or train_image_url, not both")
    if not body.train_video_url or not is_well_formed(body.train_video_url):
        raise BadRequest("Invalid train_video_url")
    if body.callback_url and not is_well_formed(body.callback_url):
        raise BadRequest("Invalid callback_url")
    if body.consent_video_url and not is_well_formed(body.consent_video_url):
        raise BadRequest("Invalid consent_video_url")
    uploads.refuse_private(session, settings, "train_video_url", body.train_video_url)
    uploads.refuse_private(session, settings, "consent_video_url", body.consent_video_url)
    uploads.refuse_private(session, settings, "callback_url", body.callback_url, own_ok=False)
    if body.model_name not in MODEL_NAMES:
        raise BadRequest(
            f"Invalid model_name: {body.model_name!r}; use one of {', '.join(MODEL_NAMES)}"
        )
    replica = Replica(
        id=ids.replica_id(),
        name=body.face_name if api_name == "face" else body.replica_name,
        api_name=api_name,
        replica_type="user",
        model_name=body.model_name,
        engine=settings.engine_for(body.model_name),
        train_video_url=body.train_video_url,
        consent_video_url=body.consent_video_url,
        callback_url=body.callback_url,
        properties={
            **body.properties,
            **({"non_human": True} if "non_human" in (body.replica_type, body.face_type) else {}),
        },
        status="started",
        training_progress=0,
        artifacts={},
    )
    session.add(replica)
    outbox.add(session, (TRAIN_JOB, replica.id))
    return replica


def get(session: Session, replica_id: str) -> Replica:
    replica = repository.get_live(session, replica_id)
    if replica is None:
        raise NotFound("Invalid replica_id")
    return replica


def read(connection: Connection, replica_id: str) -> ReplicaRecord:
    """The replica GET /v2/replicas/{id} shows, read as a row (no ORM object)."""
    replica = repository.read_live(connection, replica_id)
    if replica is None:
        raise NotFound("Invalid replica_id")
    return replica


def rename(session: Session, replica_id: str, name: str | None) -> None:
    if not name:
        raise BadRequest("replica_name is required")
    get(session, replica_id).name = name


# Hard-deleting a replica takes its videos along: (session, replica id). Wired by the
# composition root (runtime.py), since replicas never import videos.
PurgeVideos = Callable[[Session, str], None]


def delete(
    session: Session,
    storage: BlobStore,
    replica_id: str,
    hard: bool,
    public_url: str,
    purge_videos: PurgeVideos,
) -> None:
    """Soft: hide it and stop its callbacks. Hard (soft-deleted or not): the row, its files,
    its videos (rows, files and links), every callback about them, and the uploads it trained
    from when no other replica uses them go, irrevocably. A training job still running notices
    the missing row, announces nothing and tidies what it writes after this (replica/tasks.py).
    """
    replica = (
        repository.get_any(session, replica_id)
        if hard
        else repository.get_live(session, replica_id)
    )
    if replica is None:
        raise NotFound("Invalid replica_id")
    if not hard:
        replica.deleted_at = utcnow()
        webhook_repository.cancel_pending(session, replica_id)
        return
    after_commit(session, lambda: storage.delete_tree(work_key(replica_id)))
    purge_videos(session, replica_id)
    for url in {replica.train_video_url, replica.consent_video_url}:
        if url and not repository.others_using(session, url, replica_id):
            uploads.delete_behind(session, storage, public_url, url)
    webhook_repository.forget(session, replica_id)
    session.delete(replica)


def media_base(public_url: str, api_key: str, api_name: ApiName, replica_id: str) -> str:
    """Links a browser opens (the thumbnail) carry a capability token in the path, as a
    video's do, since a <video> element cannot send the x-api-key header."""
    token = signed.token(api_key, f"replica:{replica_id}")
    return f"{public_url.rstrip('/')}/v2/{api_name}s/{replica_id}/media/{token}"


class ReplicaRecord(Protocol):
    """What the wire view reads: a ``Replica`` or a Core row of its table (``read``)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def replica_type(self) -> str: ...
    @property
    def model_name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def training_progress(self) -> int: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def error_detail(self) -> str | None: ...
    @property
    def artifacts(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


def to_wire(
    replica: ReplicaRecord, api_name: ApiName, public_url: str, api_key: str, verbose: bool = False
) -> dict[str, Any]:
    prefix = "face" if api_name == "face" else "replica"
    thumbnail = None
    if replica.artifacts.get("thumbnail"):
        thumbnail = f"{media_base(public_url, api_key, api_name, replica.id)}/thumbnail.mp4"
    out: dict[str, Any] = {
        f"{prefix}_id": replica.id,
        f"{prefix}_name": replica.name,
        "thumbnail_video_url": thumbnail,
        "training_progress": f"{replica.training_progress}/100",
        "status": replica.status,
        "created_at": iso_ms(replica.created_at),
        "updated_at": iso_ms(replica.updated_at),
        "error_message": replica.error_message,
        "model_name": replica.model_name,
    }
    if verbose:
        out[f"{prefix}_type"] = replica.replica_type
        out["training_checks"] = training_checks(replica)
        out["quality_report"] = replica.artifacts.get("quality") or None
        out["error_detail"] = error_detail(replica)
    return out


def training_checks(replica: ReplicaRecord) -> list[dict[str, Any]]:
    """likeness's extra in the verbose view: every upload check with its measured value,
    threshold and time ranges (empty until the checks have run)."""
    if replica.artifacts.get("checks"):
        return list(replica.artifacts["checks"])
    if replica.error_detail and replica.error_detail.startswith("{"):
        return list(json.loads(replica.error_detail).get("checks", []))
    return []


def error_detail(replica: ReplicaRecord) -> str | None:
    """likeness's extra in the verbose view: what went wrong, in one line the job made safe
    to show (no traceback, no path outside the data dir); the checks' report is shown
    as training_checks instead."""
    detail = replica.error_detail if replica.status == "error" else None
    return detail if detail and not detail.startswith("{") else None


# -- training-side state changes --------------------------------------------------------------


def callback_payload(replica: Replica) -> dict[str, Any]:
    status = "ready" if replica.status == "completed" else "error"
    payload: dict[str, Any] = {"replica_id": replica.id, "status": status}
    if replica.api_name == "face":
        payload["face_id"] = replica.id
    if status == "error":
        payload["error_message"] = replica.error_message
    return payload


def mark_completed(session: Session, replica: Replica, artifacts: dict[str, Any]) -> str | None:
    replica.status = "completed"
    replica.training_progress = 100
    replica.stage = "package"
    replica.lease_expires_at = None
    replica.artifacts = artifacts
    return _callback(session, replica)


def mark_failed(
    session: Session, replica: Replica, failure_type: str, detail: str, message: str | None = None
) -> str | None:
    """``message`` replaces Tavus's text for failures that are ours, not the video's."""
    replica.status = "error"
    replica.error_type = failures.public_type(failure_type)
    replica.error_message = message or failures.message_for(failure_type)
    replica.error_detail = detail
    replica.lease_expires_at = None
    return _callback(session, replica)


def _callback(session: Session, replica: Replica) -> str | None:
    if not replica.callback_url:
        return None
    return webhooks.record(session, replica.callback_url, callback_payload(replica), replica.id)
