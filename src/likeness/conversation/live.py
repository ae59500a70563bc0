"""Joining a live conversation through the API process, which carries no media: the WHIP POST
(an SDP offer in, the answer out) and the Interactions WebSocket are forwarded to the media
worker serving the conversation (media_worker.py), tried in turn until one serves it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import Any

import httpx
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response

from likeness.conversation import repository, service
from likeness.conversation.workers import TOKEN_HEADER, registered
from likeness.runtime import Runtime

router = APIRouter(tags=["Conversations"])
MAX_OFFER_BYTES = 64_000
NO_WORKER = "No media worker can serve this conversation now; try again shortly"


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message, "message": message}, status_code=status)


def _check(
    rt: Runtime, conversation_id: str, token: str | None, keyed: bool = False
) -> JSONResponse | None:
    """Why this conversation cannot be joined, or None. ``keyed``: the caller showed the API
    key, which opens every conversation of the account (no meeting token needed)."""
    with rt.sessions() as session:
        row = repository.get_live(session, conversation_id)
        if row is None:
            return _error("Conversation not found", 404)
        if not keyed and not service.token_ok(row, token):
            return _error("This conversation needs its meeting token", 401)
        if row.status != "active":
            return _error("This conversation has ended", 400)
        if row.test_mode or (row.replica_id is None and not (keyed and row.chat)):
            return _error("This conversation has no replica to join", 400)
    return None


@router.post(
    "/v2/conversations/{conversation_id}/whip",
    status_code=201,
    summary="Join with WebRTC: POST an SDP offer (application/sdp), get the answer (WHIP)",
)
async def whip(conversation_id: str, request: Request, t: str | None = None) -> Response:
    rt: Runtime = request.app.state.runtime
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        return _error("Content-Type must be application/sdp (the body is an SDP offer)", 400)
    offer = await request.body()
    if len(offer) > MAX_OFFER_BYTES:
        return _error(f"The SDP offer is larger than {MAX_OFFER_BYTES} bytes", 400)
    bearer = request.headers.get("authorization", "")
    token = t or (bearer[7:] if bearer.lower().startswith("bearer ") else None)
    refused = await asyncio.to_thread(_check, rt, conversation_id, token)
    if refused is not None:
        return refused
    async with httpx.AsyncClient(timeout=30.0) as client:
        for worker in registered(rt.settings.resolved_data_dir):
            try:
                answer = await client.post(
                    f"{worker.url}/calls/{conversation_id}/whip",
                    content=offer,
                    headers={TOKEN_HEADER: worker.token, "content-type": "application/sdp"},
                )
            except httpx.TransportError:
                continue  # a worker that is gone (its registry file lingers)
            if answer.status_code == 201:
                peer = answer.headers["x-peer-id"]
                location = f"/v2/conversations/{conversation_id}/whip/{peer}"
                return Response(
                    answer.content,
                    201,
                    media_type="application/sdp",
                    headers={"Location": location},
                )
            if answer.status_code in (400, 404):
                return _error(str(answer.json().get("message")), answer.status_code)
    return _error(NO_WORKER, 503)


@router.delete(
    "/v2/conversations/{conversation_id}/whip/{peer_id}",
    summary="Leave: the WHIP resource of one participant",
)
async def leave(conversation_id: str, peer_id: str, request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    async with httpx.AsyncClient(timeout=10.0) as client:
        for worker in registered(rt.settings.resolved_data_dir):
            with contextlib.suppress(httpx.TransportError):
                gone = await client.delete(
                    f"{worker.url}/calls/{conversation_id}/whip/{peer_id}",
                    headers={TOKEN_HEADER: worker.token},
                )
                if gone.status_code == 200:
                    return Response(status_code=200)
    return _error("No such participant in this conversation", 404)


@router.websocket("/v2/conversations/{conversation_id}/interactions")
async def interactions(websocket: WebSocket, conversation_id: str) -> None:
    """The Interactions Protocol for a backend (x-api-key): the same envelopes as the
    app-message data channel, both ways."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    rt: Runtime = websocket.app.state.runtime
    await websocket.accept()
    given = websocket.headers.get("x-api-key", "")
    if not secrets.compare_digest(given.encode(), str(rt.settings.api_key).encode()):
        await _refuse(websocket, "Invalid access token", 4401)
        return
    refused = await asyncio.to_thread(_check, rt, conversation_id, None, True)
    if refused is not None:
        body = json.loads(bytes(refused.body))
        await _refuse(websocket, body["message"], 4000 + refused.status_code)
        return
    for worker in registered(rt.settings.resolved_data_dir):
        url = worker.url.replace("http://", "ws://") + f"/calls/{conversation_id}/interactions"
        try:  # a worker that does not serve it refuses the upgrade: the next one
            upstream = await connect(url, additional_headers={TOKEN_HEADER: worker.token})
        except (OSError, InvalidStatus):
            continue
        await _relay(websocket, upstream)
        return
    await _refuse(websocket, NO_WORKER, 4503)


async def _relay(websocket: WebSocket, upstream: Any) -> None:
    from websockets.exceptions import ConnectionClosed

    async def down() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                await websocket.send_text(str(message))

    async def up() -> None:
        with contextlib.suppress(WebSocketDisconnect, ConnectionClosed):
            while True:
                await upstream.send(await websocket.receive_text())

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await upstream.close()
    with contextlib.suppress(RuntimeError):
        await websocket.close()


async def _refuse(websocket: WebSocket, message: str, code: int) -> None:
    await websocket.send_text(json.dumps({"error": message, "message": message}))
    await websocket.close(code=code)
