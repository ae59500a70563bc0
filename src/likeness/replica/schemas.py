"""Wire schemas for /v2/replicas and /v2/faces, in Tavus's field names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from likeness.kit.fields import Name, Url, Word

ApiName = Literal["replica", "face"]


class CreateReplica(BaseModel):
    """POST /v2/replicas (or /v2/faces). Unknown fields are accepted and ignored, as Tavus
    clients send many (voice_name, auto_fix_training_image, …)."""

    model_config = ConfigDict(extra="ignore")

    train_video_url: Url = Field(None, description="Direct link to the training video.")
    train_image_url: Url = Field(None, description="Not supported yet (400).")
    consent_video_url: Url = None
    callback_url: Url = Field(None, description="Gets the training webhook.")
    replica_name: Name = None
    face_name: Name = None
    model_name: str = Field(
        "phoenix-4", max_length=64, description="phoenix-4 (default), phoenix-3, phoenix-4.5"
    )
    properties: dict[str, Any] = Field(default_factory=dict)
    replica_type: Word = None
    face_type: Word = None


class CreatedReplica(BaseModel):
    replica_id: str | None = None
    face_id: str | None = None
    status: str = "started"


class Rename(BaseModel):
    model_config = ConfigDict(extra="ignore")

    replica_name: Name = None
    face_name: Name = None


class ReplicaOut(BaseModel):
    """GET /v2/replicas/{id}: ``replica_*`` keys on /v2/replicas, ``face_*`` on /v2/faces."""

    model_config = ConfigDict(extra="allow")

    thumbnail_video_url: str | None = None
    training_progress: str
    status: str
    created_at: str
    updated_at: str
    error_message: str | None = None
    model_name: str


class ReplicaList(BaseModel):
    data: list[ReplicaOut]
    total_count: int
