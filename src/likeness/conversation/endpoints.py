"""/v2/conversations (spec §4.1, §4.2) and the conversation_url page. Thin: parse, call the
service, enqueue the webhooks after commit."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, HTMLResponse

from likeness.api.deps import RuntimeDep, SessionDep
from likeness.api.files import file_response
from likeness.conversation import repository, service
from likeness.conversation.schemas import CreateConversation
from likeness.kit.clock import iso_us
from likeness.kit.db import MAX_PAGE, transaction
from likeness.runtime import Runtime
from likeness.web import pages
from likeness.webhooks import service as webhooks

log = logging.getLogger(__name__)
api = APIRouter(prefix="/v2/conversations", tags=["conversations"])
page = APIRouter(tags=["conversation page"])


@api.post("", summary="Create a conversation (its conversation_url opens the call)")
def create(body: CreateConversation, rt: RuntimeDep) -> dict[str, Any]:
    with transaction(rt.sessions) as session:
        conversation, token = service.create(session, rt.settings, body)
        # The ids under the names the caller used (§0); GET answers with both.
        out = {
            "conversation_id": conversation.id,
            "conversation_name": conversation.name,
            "conversation_url": service.conversation_url(rt.settings.public_url, conversation.id),
            "status": conversation.status,
            "callback_url": conversation.callback_url,
            body.replica_key: conversation.replica_id,
            body.persona_key: conversation.persona_id,
            "created_at": iso_us(conversation.created_at),
        }
        if token:
            out["meeting_token"] = token
    return out


@api.get("", summary="List conversations")
def list_(
    rt: RuntimeDep,
    session: SessionDep,
    limit: int = Query(10, ge=1, le=1000),
    page_: int = Query(1, alias="page", ge=0, le=MAX_PAGE, description="1-based; 0 is page 1"),
    status: Literal["active", "ended"] | None = Query(None),
) -> dict[str, Any]:
    rows, total = repository.page(session, limit, max(page_, 1), status)
    data = [service.to_wire(c, rt.settings.public_url) for c in rows]
    return {"data": data, "total_count": total}


@api.get("/{conversation_id}", summary="Get one conversation (verbose adds events)")
def get(
    conversation_id: str, rt: RuntimeDep, session: SessionDep, verbose: bool = False
) -> dict[str, Any]:
    conversation = service.get(session, conversation_id)
    return service.to_wire(conversation, rt.settings.public_url, verbose)


@api.post("/{conversation_id}/end", summary="End a conversation (no body, or {})")
def end(conversation_id: str, rt: RuntimeDep) -> Response:
    with transaction(rt.sessions) as session:
        sent = service.end_by_request(session, conversation_id)
    _send(rt, sent)
    return Response(status_code=200)


@api.delete(
    "/{conversation_id}",
    status_code=204,
    summary="Delete a conversation (ends it; hard=true also removes its webhooks)",
)
def delete(conversation_id: str, rt: RuntimeDep, hard: bool = False) -> Response:
    with transaction(rt.sessions) as session:
        sent = service.delete(session, conversation_id, hard)
    if hard:  # its recording goes with it
        rt.storage.delete_tree(service.work_key(conversation_id))
    _send(rt, sent)
    return Response(status_code=204)


@api.get(
    "/{conversation_id}/recording",
    response_class=FileResponse,
    summary="Download the call's recording (enable_recording; application.recording_ready)",
)
def recording(conversation_id: str, rt: RuntimeDep, session: SessionDep) -> FileResponse:
    service.get(session, conversation_id)
    path = rt.storage.path(service.recording_key(conversation_id))
    return file_response(
        path, "video/mp4", f"{conversation_id}.mp4", "This conversation has no recording"
    )


@page.get(
    "/c/{conversation_id}",
    response_class=HTMLResponse,
    summary="The conversation page (conversation_url; ?t=MEETING_TOKEN with require_auth)",
)
def conversation_page(
    conversation_id: str, session: SessionDep, t: str | None = None
) -> HTMLResponse:
    conversation = repository.get_live(session, conversation_id)
    if conversation is None:
        html = pages.conversation("Conversation not found", "not-found", "No such conversation.")
        return HTMLResponse(html, status_code=404)
    if not service.token_ok(conversation, t):  # says nothing about the conversation
        message = "This conversation needs its meeting token: open the link with ?t=TOKEN."
        return HTMLResponse(pages.conversation("Conversation", "token-required", message), 401)
    title = conversation.name or conversation.id
    if conversation.status == "ended":
        return HTMLResponse(pages.conversation(title, "ended", "This conversation has ended."))
    captions = (conversation.properties or {}).get("enable_closed_captions") is True
    return HTMLResponse(pages.call(title, conversation.id, captions))


def _send(rt: Runtime, webhook_ids: list[str]) -> None:
    webhooks.send(rt.sessions, rt.queue, webhook_ids)
