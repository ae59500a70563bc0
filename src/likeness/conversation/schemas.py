"""Wire schemas for /v2/conversations (spec §4.1), in Tavus's field names. Every optional
field may arrive as null (livekit-plugins-tavus and others send them so)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from likeness.kit.fields import Name, Url, Word

# A greeting or context past this is a mistake (the request body is capped at 256 kB anyway).
TEXT_CHARS = 20_000
Words = list[str] | None


class Properties(BaseModel):
    """``properties``, with the spec's defaults. Unknown keys are kept as sent."""

    model_config = ConfigDict(extra="allow")

    max_call_duration: int | None = Field(None, ge=1, description="seconds; default 3600")
    participant_left_timeout: int | None = Field(None, ge=0, description="seconds; default 0")
    participant_absent_timeout: int | None = Field(None, ge=0, description="seconds; default 300")
    enable_recording: bool | None = None
    enable_closed_captions: bool | None = None
    enable_transcription: bool | None = Field(None, description="older alias of captions")
    apply_greenscreen: bool | None = Field(None, description="background RGB [0, 255, 155]")
    language: Word = None
    languages: Words = None
    recording_s3_bucket_name: Name = None
    recording_s3_bucket_region: Word = None
    aws_assume_role_arn: Name = None
    livekit_ws_url: Url = Field(None, description="Not supported yet (400).")
    livekit_room_token: str | None = Field(None, description="Not supported yet (400).")

    @property
    def max_call_duration_s(self) -> int:
        return self.max_call_duration or 3600

    @property
    def participant_left_timeout_s(self) -> int:
        return self.participant_left_timeout or 0

    @property
    def participant_absent_timeout_s(self) -> int:
        return 300 if self.participant_absent_timeout is None else self.participant_absent_timeout

    @property
    def captions(self) -> bool:
        return bool(self.enable_closed_captions or self.enable_transcription)


class CreateConversation(BaseModel):
    """POST /v2/conversations. ``replica_id``/``face_id`` and ``persona_id``/``pal_id`` are
    the same fields under their old and new names."""

    model_config = ConfigDict(extra="ignore")

    replica_id: Word = Field(None, description="Required unless the persona has a default.")
    face_id: Word = Field(None, description="Alias of replica_id.")
    persona_id: Word = Field(None, description="Default: likeness's echo persona.")
    pal_id: Word = Field(None, description="Alias of persona_id.")
    callback_url: Url = Field(None, description="Gets the conversation webhooks.")
    conversation_name: Name = None
    conversational_context: str | None = Field(None, max_length=TEXT_CHARS)
    custom_greeting: str | None = Field(None, max_length=TEXT_CHARS)
    audio_only: bool | None = None
    memory_stores: Words = None
    document_ids: Words = None
    document_retrieval_strategy: Literal["speed", "quality", "balanced"] | None = None
    document_tags: Words = None
    test_mode: bool | None = Field(None, description="Created ended; nobody joins.")
    require_auth: bool | None = Field(None, description="The answer carries a meeting_token.")
    max_participants: int | None = Field(None, ge=2, le=100, description="The replica counts.")
    meeting_url: Url = Field(None, description="Joining Zoom/Meet/Teams: not supported yet (400).")
    chat: bool | None = Field(None, description="Text-only: no replica needed.")
    properties: Properties | None = None

    @property
    def replica_key(self) -> str:
        """The name the caller used: ``face_id`` if it sent that (even as null) and not
        ``replica_id``; else ``replica_id``."""
        sent = self.model_fields_set
        return "face_id" if "face_id" in sent and "replica_id" not in sent else "replica_id"

    @property
    def persona_key(self) -> str:
        sent = self.model_fields_set
        return "pal_id" if "pal_id" in sent and "persona_id" not in sent else "persona_id"
