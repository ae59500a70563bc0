"""create_app(settings): builds the runtime once and mounts the routers. Nothing at import."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from likeness import __version__
from likeness.api.reads import LeanReads, error_response
from likeness.auth.deps import require_api_key
from likeness.config import Settings
from likeness.conversation import endpoints as conversations
from likeness.conversation import live as live_conversations
from likeness.errors import ApiError
from likeness.kit.body_guard import BodyGuard
from likeness.persona.endpoints import build_router as build_persona_router
from likeness.replica.endpoints import build_media_router, build_router, read_one
from likeness.runtime import Runtime, build_runtime
from likeness.supervisor import die_with_spawning_parent
from likeness.upload.endpoints import router as uploads_router
from likeness.video import endpoints as videos
from likeness.web import docs, pages


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or build_runtime(settings or Settings())
    app = FastAPI(
        title="likeness",
        version=__version__,
        description="Self-hosted replicas, wire-compatible with Tavus's v2 API. "
        "Every /v2 route needs the `x-api-key` header.",
        redirect_slashes=False,
        docs_url=None,  # web/docs.py serves /docs and /redoc from local files instead
        redoc_url=None,
    )
    app.state.runtime = runtime
    auth = [Depends(require_api_key)]
    app.include_router(build_router("replica"), dependencies=auth)
    app.include_router(build_router("face"), dependencies=auth)
    app.include_router(uploads_router, dependencies=auth)
    app.include_router(videos.api, dependencies=auth)
    app.include_router(conversations.api, dependencies=auth)
    app.include_router(build_persona_router("persona"), dependencies=auth)
    app.include_router(build_persona_router("pal"), dependencies=auth)
    # Capability tokens in the path instead of the key (a browser opens these links).
    app.include_router(build_media_router("replica"))
    app.include_router(build_media_router("face"))
    app.include_router(videos.media)
    app.include_router(conversations.page)  # the meeting token, when required, is its key
    # WHIP: the conversation id (plus its meeting token) is the key; the Interactions
    # WebSocket checks x-api-key itself (a dependency cannot answer a WebSocket in Tavus's shape).
    app.include_router(live_conversations.router)
    docs.install(app)
    pages.install(app)  # the conversation page's script and style
    _install_error_handlers(app)
    # Uploads stream to disk under their own limit (max_download_bytes).
    app.add_middleware(
        BodyGuard, max_bytes=runtime.settings.max_body_bytes, exempt=(uploads_router.prefix,)
    )
    app.add_middleware(_StripTrailingSlash)
    # Outermost: the polled GETs by id are answered before any of the above (api/reads.py).
    readers = {
        "/v2/replicas": read_one("replica"),
        "/v2/faces": read_one("face"),
        "/v2/videos": videos.read_one,
    }
    app.add_middleware(LeanReads, runtime=runtime, readers=readers)
    return app


def serving_app() -> FastAPI:
    """The app of one of `likeness serve`'s API processes (uvicorn imports it by name): the
    settings come from the environment the parent set, which has already migrated the
    database and made the secrets, so the processes do neither again at once. First of all it
    ties its life to serve's: uvicorn's children outlive a SIGKILLed parent otherwise."""
    die_with_spawning_parent()
    return create_app(runtime=build_runtime(Settings(), migrate=False))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type")
        described = (_describe(e, content_type, exc.body) for e in exc.errors())
        message = "; ".join(dict.fromkeys(described)) or "Invalid request"
        return JSONResponse({"error": message, "message": message}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        return JSONResponse({"error": message, "message": message}, status_code=exc.status_code)


def _describe(error: dict[str, Any], content_type: str | None, body: Any) -> str:
    """One validation error in words: the field and what was expected, or what is wrong
    with the body as a whole."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type")
    if kind == "json_invalid":  # loc: ("body", character offset); body: the text parsed
        reason = (error.get("ctx") or {}).get("error", "it cannot be parsed")
        at = ""
        if len(loc) > 1 and isinstance(loc[1], int) and isinstance(body, str):
            pos = loc[1]
            line, column = body.count("\n", 0, pos) + 1, pos - body.rfind("\n", 0, pos)
            at = f" at line {line}, column {column}"
        return f"The request body is not valid JSON: {reason}{at}"
    if loc == ("body",) and kind == "missing":
        return "The request body is empty: send a JSON object"
    if loc == ("body",) and kind in ("model_attributes_type", "dict_type"):
        if not content_type or "json" not in content_type:
            return (
                "The request body must be a JSON object sent with the header "
                f"Content-Type: application/json (this request's was {content_type or 'missing'})"
            )
        return "The request body must be a JSON object ({...})"
    where = ".".join(str(p) for p in loc if p != "body")
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))


class _StripTrailingSlash:
    """Serve ``/v2/replicas/`` as ``/v2/replicas``: clients call both, and httpx does not
    follow the 307 a redirect would need."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope, path=path.rstrip("/") or "/")
        await self.app(scope, receive, send)
