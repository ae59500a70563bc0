"""Persona (PAL) use cases: create, read, list, delete and JSON-Patch (RFC 6902), under
either name. The stock PAL id names likeness's default persona: echo, no prompt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jsonpatch
from pydantic import ValidationError
from sqlalchemy.orm import Session

from likeness.config import Settings
from likeness.errors import BadRequest, NotFound
from likeness.kit import ids
from likeness.kit.clock import iso_us
from likeness.kit.safe_url import allowlisted, is_well_formed
from likeness.models import Persona
from likeness.models.persona import STOCK_PAL_ID
from likeness.persona import repository
from likeness.persona.schemas import ApiName, CreatePersona
from likeness.upload import service as uploads

DEFAULT_NAME = "likeness default (echo)"
_DEFAULT_CREATED = datetime(2026, 1, 1)


def default_persona() -> Persona:
    """The persona a conversation without one uses (not a row: it cannot be changed)."""
    return Persona(
        id=STOCK_PAL_ID,
        name=DEFAULT_NAME,
        pipeline_mode="echo",
        layers={},
        extras={},
        created_at=_DEFAULT_CREATED,
        updated_at=_DEFAULT_CREATED,
    )


def keys(api: ApiName) -> tuple[str, str, str]:
    """The id, name and default-replica keys under the route's name."""
    if api == "pal":
        return "pal_id", "pal_name", "default_face_id"
    return "persona_id", "persona_name", "default_replica_id"


def create(session: Session, settings: Settings, body: CreatePersona, api: ApiName) -> Persona:
    persona = Persona(id=ids.persona_id())
    _apply(session, settings, persona, body, api)
    session.add(persona)
    session.flush()
    return persona


def get(session: Session, persona_id: str) -> Persona:
    if persona_id == STOCK_PAL_ID:
        return default_persona()
    persona = repository.get(session, persona_id)
    if persona is None:
        raise NotFound("Invalid persona_id")
    return persona


def delete(session: Session, persona_id: str) -> None:
    if persona_id == STOCK_PAL_ID:
        raise BadRequest(f"{STOCK_PAL_ID} is the default persona; it cannot be deleted")
    session.delete(get(session, persona_id))


def patch(
    session: Session, settings: Settings, persona_id: str, operations: Any, api: ApiName
) -> bool:
    """Apply an RFC 6902 JSON Patch to the persona as GET shows it (under the route's names),
    then check the result as a create would. False when nothing changed."""
    if persona_id == STOCK_PAL_ID:
        raise BadRequest(f"{STOCK_PAL_ID} is the default persona; it cannot be changed")
    persona = get(session, persona_id)
    if not isinstance(operations, list) or not operations:
        raise BadRequest(
            "The body must be a JSON Patch (RFC 6902): a non-empty array of operations, e.g. "
            '[{"op": "replace", "path": "/' + keys(api)[1] + '", "value": "New name"}]'
        )
    before = editable(persona, api)
    try:
        after = jsonpatch.JsonPatch(operations).apply(before)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise BadRequest(f"JSON Patch test failed: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise BadRequest(f"Invalid JSON Patch: {exc}") from exc
    except (TypeError, KeyError, AttributeError) as exc:  # an operation that is not an object
        raise BadRequest(f"Invalid JSON Patch: {exc}") from exc
    if after == before:
        return False
    if not isinstance(after, dict):
        raise BadRequest("Invalid JSON Patch: the result must stay an object")
    unknown = sorted(set(after) - set(before))
    if unknown:
        raise BadRequest(f"Invalid JSON Patch: unknown field {', '.join(unknown)}")
    try:
        body = CreatePersona.model_validate(after)
    except ValidationError as exc:
        raise BadRequest(f"The patched {api} is invalid: {_describe(exc)}") from exc
    _apply(session, settings, persona, body, api)
    return True


def _apply(
    session: Session, settings: Settings, persona: Persona, body: CreatePersona, api: ApiName
) -> None:
    """Check a create (or a patched persona) and write it onto the row."""
    _id_key, _name_key, default_key = keys(api)
    mode = body.pipeline_mode or "full"
    if mode not in ("full", "echo"):
        raise BadRequest(f"pipeline_mode must be full or echo; likeness has no {mode!r} pipeline")
    prompt = body.system_prompt
    if mode == "full" and not (prompt and prompt.strip()):
        raise BadRequest(
            "system_prompt is required when pipeline_mode is full (the default); "
            "send one, or send pipeline_mode echo"
        )
    default_replica = body.default_replica_id or body.default_face_id
    if api == "pal" and not default_replica:
        raise BadRequest("default_face_id is required on /v2/pals: the face this PAL uses")
    if default_replica and repository.live_replica(session, default_replica) is None:
        raise BadRequest(f"Invalid {default_key}")
    layers = body.layers or {}
    _check_layers(session, settings, layers)
    persona.name = body.persona_name or body.pal_name
    persona.pipeline_mode = mode
    persona.system_prompt = prompt
    persona.context = body.context
    persona.default_replica_id = default_replica
    persona.layers = layers
    persona.extras = {
        "document_ids": body.document_ids,
        "document_tags": body.document_tags,
        "objectives_id": body.objectives_id,
        "guardrail_ids": body.guardrail_ids,
    }


def _check_layers(session: Session, settings: Settings, layers: dict[str, Any]) -> None:
    for name, layer in layers.items():
        if layer is not None and not isinstance(layer, dict):
            raise BadRequest(f"layers.{name} must be an object")
    _check_llm(session, settings, layers.get("llm") or {})


def _check_llm(session: Session, settings: Settings, llm: dict[str, Any]) -> None:
    """layers.llm: what the conversation's LLM layer (providers/llm_choice.py) will use, each
    field the type it must be, and a base_url that is no private address unless the
    operator's allowlist (LIKENESS_LLM_ALLOWED_HOSTS) names its host."""
    for key in ("model", "api_key"):
        if llm.get(key) is not None and not isinstance(llm[key], str):
            raise BadRequest(f"Invalid layers.llm.{key}: a string is expected")
    for key in ("headers", "default_query"):
        strings = llm.get(key)
        if strings is not None and not (
            isinstance(strings, dict) and all(isinstance(v, str) for v in strings.values())
        ):
            raise BadRequest(f"Invalid layers.llm.{key}: an object of strings is expected")
    if llm.get("extra_body") is not None and not isinstance(llm["extra_body"], dict):
        raise BadRequest("Invalid layers.llm.extra_body: an object is expected")
    tools = llm.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(map(_is_tool, tools))):
        raise BadRequest(
            "Invalid layers.llm.tools: a list of OpenAI tools is expected, each "
            '{"type": "function", "function": {"name": …, "parameters": {…}}}'
        )
    base_url = llm.get("base_url")
    if base_url is None:
        return
    if not isinstance(base_url, str) or len(base_url) > 2048 or not is_well_formed(base_url):
        raise BadRequest("Invalid layers.llm.base_url: an http(s) URL is expected")
    if allowlisted(base_url, settings.llm_allowed_hosts):
        return
    uploads.refuse_private(session, settings, "layers.llm.base_url", base_url, own_ok=False)


def _is_tool(tool: Any) -> bool:
    function = tool.get("function") if isinstance(tool, dict) else None
    return (
        isinstance(function, dict)
        and tool.get("type", "function") == "function"
        and isinstance(function.get("name"), str)
        and bool(function["name"])
    )


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
        for e in exc.errors()
    )


def editable(persona: Persona, api: ApiName) -> dict[str, Any]:
    """The fields a PATCH may change, as GET shows them."""
    _id_key, name_key, default_key = keys(api)
    extras = persona.extras or {}
    return {
        name_key: persona.name,
        "pipeline_mode": persona.pipeline_mode,
        "system_prompt": persona.system_prompt,
        "context": persona.context,
        default_key: persona.default_replica_id,
        "document_ids": extras.get("document_ids"),
        "document_tags": extras.get("document_tags"),
        "objectives_id": extras.get("objectives_id"),
        "guardrail_ids": extras.get("guardrail_ids"),
        "layers": persona.layers or {},
    }


def to_wire(persona: Persona, api: ApiName) -> dict[str, Any]:
    id_key = keys(api)[0]
    return {
        id_key: persona.id,
        **editable(persona, api),
        "created_at": iso_us(persona.created_at),
        "updated_at": iso_us(persona.updated_at),
    }
