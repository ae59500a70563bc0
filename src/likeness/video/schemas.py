"""Wire schemas for /v2/videos, in Tavus's field names."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from likeness.kit.fields import Name, Url, Word


class CreateVideo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    replica_id: Word = Field(None, description="A completed (or training) replica.")
    face_id: Word = Field(None, description="Alias of replica_id.")
    script: str | None = Field(
        None,
        description="Text the replica says (offline Piper voice), up to 10 min of speech.",
    )
    audio_url: Url = Field(None, description=".wav/.mp3 (any audio ffmpeg reads), 3 s to 10 min.")
    video_name: Name = None
    callback_url: Url = None
    background_source_url: Url = Field(
        None, description="A video to put behind the person (looped), by segmentation."
    )
    background_url: Url = Field(None, description="A website: not supported (400).")
    transparent_background: bool = Field(
        False, description="A WebM (VP9 with alpha, Opus audio) with the background removed."
    )
    fast: bool = False
    properties: dict[str, Any] = Field(default_factory=dict)


class CreatedVideo(BaseModel):
    video_id: str
    video_name: str | None
    status: str
    hosted_url: str
    created_at: str


class RenameVideo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    video_name: Name = None
