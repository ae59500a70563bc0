"""/v2/replicas and its alias /v2/faces. Thin: parse, call the service, enqueue after commit.
The thumbnail also has a capability link (``build_media_router``) a browser can open."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from likeness.api.deps import RuntimeDep, SessionDep, api_key
from likeness.api.files import file_response
from likeness.api.reads import Reader, answer
from likeness.errors import NotFound, Unauthorized
from likeness.jobs import outbox
from likeness.kit import signed
from likeness.kit.db import MAX_PAGE, transaction
from likeness.replica import repository, service
from likeness.replica.schemas import ApiName, CreatedReplica, CreateReplica, Rename, ReplicaList
from likeness.runtime import Runtime

log = logging.getLogger(__name__)


def build_router(api_name: ApiName) -> APIRouter:
    plural = f"{api_name}s"
    router = APIRouter(prefix=f"/v2/{plural}", tags=[plural])
    id_key = f"{api_name}_id"

    @router.post(
        "",
        response_model=CreatedReplica,
        response_model_exclude_none=True,
        summary=f"Create a {api_name}: start training from a video",
    )
    def create(body: CreateReplica, rt: RuntimeDep) -> dict[str, Any]:
        with transaction(rt.sessions) as session:
            replica = service.create(session, rt.settings, body, api_name)
            replica_id = replica.id
        try:
            outbox.send(rt.sessions, rt.queue, (service.TRAIN_JOB, replica_id))
        except Exception:  # its message stays owed (service.create): the sweep sends it
            log.exception("could not enqueue training for %s", replica_id)
        return {id_key: replica_id, "status": "started"}

    @router.get("", response_model=ReplicaList, summary=f"List {plural}")
    async def list_(  # on the event loop and the held connection, as a read by id
        rt: RuntimeDep,
        limit: int = Query(10, ge=1, le=1000),
        page: int = Query(1, ge=1, le=MAX_PAGE),
        verbose: bool = False,
        replica_type: str | None = Query(None, description="user | system"),
        face_type: str | None = Query(None, description="user | system (on /v2/faces)"),
        replica_ids: str | None = Query(None, description="comma-separated ids"),
        face_ids: str | None = Query(None, description="comma-separated ids (on /v2/faces)"),
    ) -> dict[str, Any]:
        kind = replica_type or face_type
        wanted = replica_ids or face_ids
        ids = [i.strip() for i in wanted.split(",") if i.strip()] if wanted else None
        if kind == "system":  # no stock replicas ship with likeness
            return {"data": [], "total_count": 0}
        rows, total = rt.reads.run(lambda c: repository.page(c, limit, page, ids))
        public_url, key = rt.settings.public_url, api_key(rt)
        data = [service.to_wire(r, api_name, public_url, key, verbose) for r in rows]
        return {"data": data, "total_count": total}

    reader = read_one(api_name)

    # Most of these are answered before routing, by the same reader (api/reads.py).
    @router.get("/{replica_id}", response_model=None, summary=f"Get one {api_name}")
    async def get(replica_id: str, rt: RuntimeDep, verbose: bool = False) -> JSONResponse:
        return answer(rt, reader, replica_id, verbose)

    @router.delete("/{replica_id}", summary=f"Delete a {api_name} (hard=true removes its files)")
    def delete(replica_id: str, rt: RuntimeDep, hard: bool = False) -> Response:
        with transaction(rt.sessions) as session:
            service.delete(
                session,
                rt.storage,
                replica_id,
                hard,
                rt.settings.public_url,
                rt.purge_videos_of,
            )
        return Response(status_code=200)

    @router.patch("/{replica_id}/name", summary=f"Rename a {api_name}")
    def rename(replica_id: str, body: Rename, rt: RuntimeDep) -> Response:
        with transaction(rt.sessions) as session:
            service.rename(session, replica_id, body.face_name or body.replica_name)
        return Response(status_code=200)

    @router.get(
        "/{replica_id}/thumbnail.mp4",
        summary="The replica's thumbnail video",
        response_class=FileResponse,
    )
    def thumbnail(replica_id: str, rt: RuntimeDep, session: SessionDep) -> FileResponse:
        return _thumbnail(rt, session, replica_id)

    return router


def read_one(api_name: ApiName) -> Reader:
    """GET /v2/{replicas|faces}/{id}'s body, from a bare connection."""

    def read(rt: Runtime, connection: Connection, replica_id: str, verbose: bool) -> dict[str, Any]:
        replica = service.read(connection, replica_id)
        return service.to_wire(replica, api_name, rt.settings.public_url, api_key(rt), verbose)

    return read


def build_media_router(api_name: ApiName) -> APIRouter:
    """The links with a capability token in their path: mounted without x-api-key."""
    plural = f"{api_name}s"
    router = APIRouter(prefix=f"/v2/{plural}", tags=[f"{plural} (media links)"])

    @router.get(
        "/{replica_id}/media/{token}/thumbnail.mp4",
        summary="The thumbnail video (thumbnail_video_url)",
        response_class=FileResponse,
    )
    def thumbnail(replica_id: str, token: str, rt: RuntimeDep, session: SessionDep) -> FileResponse:
        if not signed.valid(api_key(rt), f"replica:{replica_id}", token):
            raise Unauthorized()
        return _thumbnail(rt, session, replica_id)

    return router


def _thumbnail(rt: Runtime, session: Session, replica_id: str) -> FileResponse:
    name = service.get(session, replica_id).artifacts.get("thumbnail")
    if not name:
        raise NotFound("The thumbnail is not ready")
    path = rt.storage.path(f"{service.work_key(replica_id)}/{name}")
    return file_response(path, "video/mp4", missing="The thumbnail is not ready")
