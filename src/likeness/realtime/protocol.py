"""The Interactions Protocol (Tavus's ``app-message`` envelopes, tavus-api.md §4.3): inbound
messages parsed into typed frozen values, outbound events stamped with ``seq``, ``turn_idx``,
``inference_id`` and ``timestamp``.

Anything malformed raises ``BadMessage`` with a sentence saying what to change; the caller
answers it with ``Outbox.error`` and the call goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MESSAGE_TYPE = "conversation"
ERROR_EVENT = "conversation.error"
SAMPLE_RATES_HZ = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
DEFAULT_SAMPLE_RATE_HZ = 16000
MAX_MESSAGE_BYTES = 1_000_000  # ~20 s of 24 kHz PCM in base64: chunks are meant to be short
MAX_TEXT_CHARS = 4000
NOT_YET = ("conversation.realtime_api",)  # known to Tavus, not served by likeness
SENSITIVITIES = ("superlow", "verylow", "low", "medium", "high", "auto")


class BadMessage(ValueError):
    """An inbound message the replica cannot act on; ``event_type`` when it named one."""

    def __init__(self, message: str, event_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.event_type = event_type


@dataclass(frozen=True)
class EchoText:
    """Say exactly ``text`` with the replica's own (offline) voice."""

    text: str
    inference_id: str


@dataclass(frozen=True)
class EchoAudio:
    """One chunk of speech to say: (N,) int16 mono PCM at ``sample_rate_hz``; ``done`` ends
    the utterance ``inference_id``."""

    pcm: bytes
    sample_rate_hz: int
    inference_id: str
    done: bool


@dataclass(frozen=True)
class Interrupt:
    """Stop speaking now and drop everything queued."""


@dataclass(frozen=True)
class Respond:
    """``text`` as if the person had said it: the replica answers it (full pipeline)."""

    text: str


@dataclass(frozen=True)
class Context:
    """``append_llm_context`` (``replace`` False) or ``overwrite_llm_context`` (True): the
    conversational context the LLM reads after the persona's."""

    context: str
    replace: bool


@dataclass(frozen=True)
class Sensitivity:
    """New turn-taking sensitivities (one of SENSITIVITIES each), None where not given."""

    pause: str | None
    interrupt: str | None


Inbound = EchoText | EchoAudio | Interrupt | Respond | Context | Sensitivity
# What only a full pipeline (listening and an LLM) acts on.
Listening = Respond | Context | Sensitivity


def parse(raw: str | bytes, conversation_id: str) -> Inbound:
    """One envelope → a typed message; raises BadMessage."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise BadMessage(
            f"message too large (at most {MAX_MESSAGE_BYTES} bytes): send audio in chunks"
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadMessage("message is not JSON") from None
    if not isinstance(body, dict):
        raise BadMessage("message must be a JSON object")
    event_type = body.get("event_type")
    if not isinstance(event_type, str):
        raise BadMessage("event_type is required (a string)")
    if body.get("message_type") != MESSAGE_TYPE:
        raise BadMessage('message_type must be "conversation"', event_type)
    if body.get("conversation_id", conversation_id) != conversation_id:
        raise BadMessage("conversation_id does not match this conversation", event_type)
    props = body.get("properties") or {}
    if not isinstance(props, dict):
        raise BadMessage("properties must be an object", event_type)
    if event_type == "conversation.echo":
        return _echo(props)
    if event_type == "conversation.interrupt":
        return Interrupt()
    if event_type == "conversation.respond":
        return Respond(_text(props, "text", event_type))
    if event_type in ("conversation.append_llm_context", "conversation.overwrite_llm_context"):
        replace = event_type == "conversation.overwrite_llm_context"
        return Context(_text(props, "context", event_type), replace)
    if event_type == "conversation.sensitivity":
        return _sensitivity(props)
    if event_type in NOT_YET:
        raise BadMessage(f"{event_type} is not supported", event_type)
    raise BadMessage(f"unknown event_type {event_type!r}", event_type)


def _text(props: dict[str, Any], name: str, event: str) -> str:
    text = props.get(name)
    if not isinstance(text, str) or not text.strip():
        raise BadMessage(f"properties.{name} is required (a non-empty string)", event)
    if len(text) > MAX_TEXT_CHARS:
        raise BadMessage(f"properties.{name} is longer than {MAX_TEXT_CHARS} characters", event)
    return text


def _sensitivity(props: dict[str, Any]) -> Sensitivity:
    event = "conversation.sensitivity"
    given = {}
    for name in ("participant_pause_sensitivity", "participant_interrupt_sensitivity"):
        value = props.get(name)
        if value is not None and value not in SENSITIVITIES:
            raise BadMessage(f"properties.{name} must be one of {', '.join(SENSITIVITIES)}", event)
        given[name] = value
    if not any(given.values()):
        raise BadMessage(
            "send participant_pause_sensitivity or participant_interrupt_sensitivity", event
        )
    return Sensitivity(
        given["participant_pause_sensitivity"], given["participant_interrupt_sensitivity"]
    )


def _echo(props: dict[str, Any]) -> EchoText | EchoAudio:
    event = "conversation.echo"
    inference_id = props.get("inference_id") or str(uuid.uuid4())
    if not isinstance(inference_id, str):
        raise BadMessage("properties.inference_id must be a string", event)
    modality = props.get("modality") or ("audio" if "audio" in props else "text")
    if modality == "text":
        text = props.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadMessage("properties.text is required (a non-empty string)", event)
        if len(text) > MAX_TEXT_CHARS:
            raise BadMessage(f"properties.text is longer than {MAX_TEXT_CHARS} characters", event)
        return EchoText(text, inference_id)
    if modality != "audio":
        raise BadMessage('properties.modality must be "text" or "audio"', event)
    rate = props.get("sample_rate")
    rate = DEFAULT_SAMPLE_RATE_HZ if rate is None else rate
    if isinstance(rate, bool) or not isinstance(rate, int) or rate not in SAMPLE_RATES_HZ:
        rates = ", ".join(str(r) for r in SAMPLE_RATES_HZ)
        raise BadMessage(f"properties.sample_rate must be one of {rates} (Hz)", event)
    audio = props.get("audio")
    if not isinstance(audio, str):
        raise BadMessage("properties.audio is required (base64 16-bit mono PCM)", event)
    try:
        pcm = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise BadMessage("properties.audio is not valid base64", event) from None
    if len(pcm) % 2:
        raise BadMessage("properties.audio must hold whole 16-bit samples", event)
    done = props.get("done", True)
    if not isinstance(done, bool):
        raise BadMessage("properties.done must be a boolean", event)
    if not pcm and not done:
        raise BadMessage("properties.audio is empty", event)
    return EchoAudio(pcm, rate, inference_id, done)


class Outbox:
    """Stamps outbound events: a monotonic ``seq``, the current ``turn_idx`` (one per replica
    utterance), the utterance's ``inference_id`` and a unix ``timestamp``."""

    def __init__(self, conversation_id: str, now: Callable[[], float]) -> None:
        self.conversation_id = conversation_id
        self._now = now
        self._seq = 0
        self.turn_idx = 0

    def next_turn(self) -> int:
        self.turn_idx += 1
        return self.turn_idx

    def event(
        self, event_type: str, properties: dict[str, Any], inference_id: str | None = None
    ) -> dict[str, Any]:
        self._seq += 1
        out: dict[str, Any] = {
            "message_type": MESSAGE_TYPE,
            "event_type": event_type,
            "conversation_id": self.conversation_id,
            "properties": properties,
            "seq": self._seq,
            "turn_idx": self.turn_idx,
            "timestamp": self._now(),
        }
        if inference_id is not None:
            out["inference_id"] = inference_id
            properties.setdefault("inference_id", inference_id)
        return out

    def error(self, problem: BadMessage | str) -> dict[str, Any]:
        message = problem if isinstance(problem, str) else problem.message
        props: dict[str, Any] = {"message": message}
        if isinstance(problem, BadMessage) and problem.event_type:
            props["event_type"] = problem.event_type
        return self.event(ERROR_EVENT, props)
