"""/v2/videos. The API routes need x-api-key; the media links (page, MP4, HLS, still) carry a
capability token in their path instead, so a browser or a player can open them."""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from likeness.errors import NotFound, Unauthorized
from likeness.kit import signed
from likeness.kit.clock import rfc1123
from likeness.kit.db import transaction
from likeness.runtime import Runtime
from likeness.video import repository, service
from likeness.video.schemas import CreatedVideo, CreateVideo, RenameVideo
from likeness.video.tasks import HLS_DIR, STILL_FILE, VIDEO_FILE, WEBM_FILE

log = logging.getLogger(__name__)
api = APIRouter(prefix="/v2/videos", tags=["videos"])
media = APIRouter(prefix="/v2/videos", tags=["videos (media links)"])
_HLS_FILE = re.compile(r"^(index\.m3u8|seg_\d{3,6}\.ts)$")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _key(rt: Runtime) -> str:
    assert rt.settings.api_key
    return rt.settings.api_key


@api.post("", response_model=CreatedVideo, summary="Generate a video of a replica speaking")
def create(body: CreateVideo, rt: Runtime = Depends(_runtime)) -> dict[str, Any]:
    with transaction(rt.sessions) as session:
        video = service.create(session, body)
        out = {
            "video_id": video.id,
            "video_name": video.name,
            "status": video.status,
            "hosted_url": f"{service.media_base(rt.settings.public_url, _key(rt), video.id)}/watch",
            "created_at": rfc1123(video.created_at),
        }
    try:
        rt.queue.enqueue(service.RENDER_JOB, out["video_id"])
    except Exception:  # the row is the truth; the sweep re-sends it
        log.exception("could not enqueue video %s", out["video_id"])
    return out


@api.get("", summary="List videos")
def list_(
    rt: Runtime = Depends(_runtime),
    limit: int = Query(10, ge=1, le=1000),
    page: int = Query(1, ge=1),
    verbose: bool = False,
) -> dict[str, Any]:
    with rt.sessions() as session:
        rows, total = repository.page(session, limit, page)
        data = [service.to_wire(v, rt.settings.public_url, _key(rt), verbose) for v in rows]
    return {"data": data, "total_count": total}


@api.get("/{video_id}", summary="Get one video")
def get(video_id: str, verbose: bool = False, rt: Runtime = Depends(_runtime)) -> Any:
    with rt.sessions() as session:
        video = service.get(session, video_id)
        return service.to_wire(video, rt.settings.public_url, _key(rt), verbose)


@api.delete("/{video_id}", summary="Delete a video (hard=true removes its files)")
def delete(video_id: str, hard: bool = False, rt: Runtime = Depends(_runtime)) -> Response:
    with transaction(rt.sessions) as session:
        service.delete(session, rt.storage, video_id, hard)
    return Response(status_code=200)


@api.patch("/{video_id}/name", summary="Rename a video")
def rename(video_id: str, body: RenameVideo, rt: Runtime = Depends(_runtime)) -> Response:
    with transaction(rt.sessions) as session:
        service.rename(session, video_id, body.video_name)
    return Response(status_code=200)


def _ready_dir(rt: Runtime, video_id: str, token: str) -> Any:
    if not signed.valid(_key(rt), f"video:{video_id}", token):
        raise Unauthorized()
    with rt.sessions() as session:
        video = service.get(session, video_id)
        ready = video.status == "ready"
    if not ready:
        raise NotFound("The video is not ready")
    return rt.storage.path(service.work_key(video_id))


@media.get(
    "/{video_id}/media/{token}/video.mp4",
    response_class=FileResponse,
    summary="Download the MP4 (download_url)",
)
def download(video_id: str, token: str, rt: Runtime = Depends(_runtime)) -> FileResponse:
    return FileResponse(
        _ready_dir(rt, video_id, token) / VIDEO_FILE,
        media_type="video/mp4",
        filename=f"{video_id}.mp4",
    )


@media.get(
    "/{video_id}/media/{token}/video.webm",
    response_class=FileResponse,
    summary="Download the transparent WebM (download_url)",
)
def download_webm(video_id: str, token: str, rt: Runtime = Depends(_runtime)) -> FileResponse:
    return FileResponse(
        _ready_dir(rt, video_id, token) / WEBM_FILE,
        media_type="video/webm",
        filename=f"{video_id}.webm",
    )


@media.get(
    "/{video_id}/media/{token}/thumbnail.jpg",
    response_class=FileResponse,
    summary="A still from the video",
)
def still(video_id: str, token: str, rt: Runtime = Depends(_runtime)) -> FileResponse:
    return FileResponse(_ready_dir(rt, video_id, token) / STILL_FILE, media_type="image/jpeg")


@media.get(
    "/{video_id}/media/{token}/{name}",
    response_class=FileResponse,
    summary="HLS playlist and segments (stream_url)",
)
def stream(video_id: str, token: str, name: str, rt: Runtime = Depends(_runtime)) -> Any:
    if name == "watch":
        return _watch(rt, video_id, token)
    if not _HLS_FILE.match(name):
        raise NotFound("No such file")
    path = _ready_dir(rt, video_id, token) / HLS_DIR / name
    kind = "application/vnd.apple.mpegurl" if name.endswith(".m3u8") else "video/mp2t"
    return FileResponse(path, media_type=kind)


def _watch(rt: Runtime, video_id: str, token: str) -> HTMLResponse:
    """hosted_url: a page with a player (it shows the status until the video is ready)."""
    if not signed.valid(_key(rt), f"video:{video_id}", token):
        raise Unauthorized()
    with rt.sessions() as session:
        video = service.get(session, video_id)
        name = html.escape(video.name or video_id)
        status = html.escape(video.status_details or video.status)
        ready = video.status == "ready"
        source = WEBM_FILE if video.transparent_background else VIDEO_FILE
    body = (
        f'<video src="{source}" controls playsinline style="max-width:100%"></video>'
        if ready
        else f"<p>{status}</p><script>setTimeout(() => location.reload(), 3000)</script>"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{name}</title></head>"
        f"<body style='font-family:sans-serif;margin:2rem'><h1>{name}</h1>{body}</body></html>"
    )
    return HTMLResponse(page)
