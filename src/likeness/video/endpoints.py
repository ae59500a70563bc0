"""/v2/videos. The API routes need x-api-key; the media links (page, MP4, WebM, HLS, still)
carry a capability token in their path instead, so a browser or a player can open them."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from likeness.api.deps import RuntimeDep, SessionDep, api_key
from likeness.api.files import file_response
from likeness.api.reads import answer
from likeness.errors import NotFound, Unauthorized
from likeness.jobs import outbox
from likeness.kit import signed
from likeness.kit.clock import rfc1123
from likeness.kit.db import MAX_PAGE, transaction
from likeness.rendering.offline import HLS_DIR, STILL_FILE, VIDEO_FILE, WEBM_FILE
from likeness.runtime import Runtime
from likeness.video import repository, service
from likeness.video.schemas import CreatedVideo, CreateVideo, RenameVideo
from likeness.web import pages

log = logging.getLogger(__name__)
api = APIRouter(prefix="/v2/videos", tags=["videos"])
media = APIRouter(prefix="/v2/videos", tags=["videos (media links)"])
_HLS_FILE = re.compile(r"^(index\.m3u8|seg_\d{3,6}\.ts)$")


@api.post("", response_model=CreatedVideo, summary="Generate a video of a replica speaking")
def create(body: CreateVideo, rt: RuntimeDep) -> dict[str, Any]:
    with transaction(rt.sessions) as session:
        video = service.create(session, rt.settings, body)
        video_id = video.id
        base = service.media_base(rt.settings.public_url, api_key(rt), video.id)
        out = {
            "video_id": video.id,
            "video_name": video.name,
            "status": video.status,
            "hosted_url": f"{base}/watch",
            "created_at": rfc1123(video.created_at),
        }
    try:
        outbox.send(rt.sessions, rt.queue, (service.RENDER_JOB, video_id))
    except Exception:  # its message stays owed (service.create): the sweep sends it
        log.exception("could not enqueue video %s", video_id)
    return out


@api.get("", summary="List videos")
async def list_(  # on the event loop and the held connection, as a read by id
    rt: RuntimeDep,
    limit: int = Query(10, ge=1, le=1000),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    verbose: bool = False,
) -> dict[str, Any]:
    rows, total = rt.reads.run(lambda c: repository.page(c, limit, page))
    data = [service.to_wire(v, rt.settings.public_url, api_key(rt), verbose) for v in rows]
    return {"data": data, "total_count": total}


def read_one(rt: Runtime, connection: Connection, video_id: str, verbose: bool) -> dict[str, Any]:
    """GET /v2/videos/{id}'s body, from a bare connection (api/reads.py's Reader)."""
    video = service.read(connection, video_id)
    return service.to_wire(video, rt.settings.public_url, api_key(rt), verbose)


# Most of these are answered before routing, by the same reader (api/reads.py).
@api.get("/{video_id}", response_model=None, summary="Get one video")
async def get(video_id: str, rt: RuntimeDep, verbose: bool = False) -> JSONResponse:
    return answer(rt, read_one, video_id, verbose)


@api.delete("/{video_id}", summary="Delete a video (hard=true removes its files)")
def delete(video_id: str, rt: RuntimeDep, hard: bool = False) -> Response:
    with transaction(rt.sessions) as session:
        service.delete(session, rt.storage, video_id, hard)
    return Response(status_code=200)


@api.patch("/{video_id}/name", summary="Rename a video")
def rename(video_id: str, body: RenameVideo, rt: RuntimeDep) -> Response:
    with transaction(rt.sessions) as session:
        service.rename(session, video_id, body.video_name)
    return Response(status_code=200)


# -- media links ------------------------------------------------------------------------------


def _check_token(rt: Runtime, video_id: str, token: str) -> None:
    if not signed.valid(api_key(rt), f"video:{video_id}", token):
        raise Unauthorized()


def _ready_dir(rt: Runtime, session: Session, video_id: str, token: str) -> Path:
    _check_token(rt, video_id, token)
    if service.get(session, video_id).status != "ready":
        raise NotFound("The video is not ready")
    return rt.storage.path(service.work_key(video_id))


@dataclass(frozen=True)
class _MediaFile:
    name: str  # the link's last segment, and the file's name in the video's folder
    media_type: str
    summary: str
    download: bool  # sent as an attachment named <video_id>.<ext>


_FILES = (
    _MediaFile(VIDEO_FILE, "video/mp4", "Download the MP4 (download_url)", True),
    _MediaFile(WEBM_FILE, "video/webm", "Download the transparent WebM (download_url)", True),
    _MediaFile(STILL_FILE, "image/jpeg", "A still from the video", False),
)


def _serve(file: _MediaFile) -> Callable[..., FileResponse]:
    def serve(video_id: str, token: str, rt: RuntimeDep, session: SessionDep) -> FileResponse:
        folder = _ready_dir(rt, session, video_id, token)
        suffix = PurePosixPath(file.name).suffix
        return file_response(
            folder / file.name,
            file.media_type,
            filename=f"{video_id}{suffix}" if file.download else None,
            missing=f"This video has no {file.name}",
        )

    return serve


for _file in _FILES:  # before the catch-all below: the first route that matches answers
    media.add_api_route(
        f"/{{video_id}}/media/{{token}}/{_file.name}",
        _serve(_file),
        methods=["GET"],
        response_class=FileResponse,
        summary=_file.summary,
        name=f"media_{_file.name}",
    )


@media.get(
    "/{video_id}/media/{token}/watch",
    response_class=HTMLResponse,
    summary="The hosted page with a player (hosted_url)",
)
def watch(video_id: str, token: str, rt: RuntimeDep, session: SessionDep) -> HTMLResponse:
    _check_token(rt, video_id, token)
    video = service.get(session, video_id)
    page = pages.watch(
        title=video.name or video_id,
        status=video.status_details or video.status,
        ready=video.status == "ready",
        source=WEBM_FILE if video.transparent_background else VIDEO_FILE,
    )
    return HTMLResponse(page)


@media.get(
    "/{video_id}/media/{token}/{name}",
    response_class=FileResponse,
    summary="HLS playlist and segments (stream_url)",
)
def stream(
    video_id: str, token: str, name: str, rt: RuntimeDep, session: SessionDep
) -> FileResponse:
    if not _HLS_FILE.match(name):
        raise NotFound("No such file")
    folder = _ready_dir(rt, session, video_id, token) / HLS_DIR
    kind = "application/vnd.apple.mpegurl" if name.endswith(".m3u8") else "video/mp2t"
    return file_response(folder / name, kind, missing=f"This video has no {name}")
