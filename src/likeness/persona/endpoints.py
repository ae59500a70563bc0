"""/v2/personas and its alias /v2/pals (spec §6). Thin: parse, call the service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response

from likeness.api.deps import RuntimeDep, SessionDep
from likeness.kit.clock import iso_us
from likeness.kit.db import MAX_PAGE, transaction
from likeness.persona import repository, service
from likeness.persona.schemas import ApiName, CreatePersona

PATCH_EXAMPLE = [{"op": "replace", "path": "/persona_name", "value": "Life Coach"}]


def build_router(api: ApiName) -> APIRouter:
    plural = f"{api}s"
    router = APIRouter(prefix=f"/v2/{plural}", tags=[plural])
    id_key, name_key, _default_key = service.keys(api)

    @router.post("", summary=f"Create a {api}")
    def create(body: CreatePersona, rt: RuntimeDep) -> dict[str, Any]:
        with transaction(rt.sessions) as session:
            persona = service.create(session, rt.settings, body, api)
            return {
                id_key: persona.id,
                name_key: persona.name,
                "created_at": iso_us(persona.created_at),
            }

    @router.get("", summary=f"List {plural}")
    def list_(
        session: SessionDep,
        limit: int = Query(10, ge=1, le=1000),
        # tavus-cli asks for page=0 (its first page): 0 and 1 are the same page.
        page: int = Query(1, ge=0, le=MAX_PAGE),
        persona_type: str | None = Query(None, description="user | system"),
        pal_type: str | None = Query(None, description="user | system (on /v2/pals)"),
    ) -> dict[str, Any]:
        if (persona_type or pal_type) == "system":  # the default persona is the only one
            return {"data": [service.to_wire(service.default_persona(), api)], "total_count": 1}
        rows, total = repository.page(session, limit, max(page, 1))
        return {"data": [service.to_wire(p, api) for p in rows], "total_count": total}

    @router.get("/{persona_id}", summary=f"Get one {api}")
    def get(persona_id: str, session: SessionDep) -> dict[str, Any]:
        return service.to_wire(service.get(session, persona_id), api)

    @router.delete("/{persona_id}", summary=f"Delete a {api}")
    def delete(persona_id: str, rt: RuntimeDep) -> Response:
        with transaction(rt.sessions) as session:
            service.delete(session, persona_id)
        return Response(status_code=200)

    @router.patch(
        "/{persona_id}",
        summary=f"Change a {api} with a JSON Patch (RFC 6902); 304 when nothing changes",
    )
    def patch(
        persona_id: str,
        rt: RuntimeDep,
        operations: Any = Body(None, examples=[PATCH_EXAMPLE]),
    ) -> Any:
        with transaction(rt.sessions) as session:
            changed = service.patch(session, rt.settings, persona_id, operations, api)
            if not changed:
                return Response(status_code=304)
            session.flush()
            return service.to_wire(service.get(session, persona_id), api)

    return router
