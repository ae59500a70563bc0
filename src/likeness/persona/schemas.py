"""Wire schemas for /v2/personas and its alias /v2/pals (spec §6), in Tavus's field names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from likeness.kit.fields import Name, Word

ApiName = Literal["persona", "pal"]
PipelineMode = Literal["full", "echo"]
# A prompt or context past this is a mistake (the request body is capped at 256 kB anyway).
PROMPT_CHARS = 50_000
Ids = list[str] | None


class CreatePersona(BaseModel):
    """POST /v2/personas (or /v2/pals). Fields Tavus clients send that likeness does not use
    yet (greeting, memories, tool_ids, …) are accepted and ignored; optional ones may be null."""

    model_config = ConfigDict(extra="ignore")

    persona_name: Name = None
    pal_name: Name = None
    system_prompt: str | None = Field(
        None, max_length=PROMPT_CHARS, description="Required when pipeline_mode is full."
    )
    pipeline_mode: Word = Field(
        None,
        description="full (default; echo plus greeting until the LLM lands) or echo",
    )
    context: str | None = Field(None, max_length=PROMPT_CHARS)
    default_replica_id: Word = None
    default_face_id: Word = Field(
        None, description="Alias of default_replica_id (required on /v2/pals)."
    )
    document_ids: Ids = None
    document_tags: Ids = None
    objectives_id: Word = None
    guardrail_ids: list[str] | None = Field(None, max_length=50)
    layers: dict[str, Any] | None = Field(
        None,
        description="llm, tts, stt, perception, conversational_flow, transport: as given.",
    )
