"""create_app(settings): builds the runtime once and mounts the routers. Nothing at import."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from likeness import __version__
from likeness.auth.deps import require_api_key
from likeness.config import Settings
from likeness.errors import ApiError
from likeness.replica.endpoints import build_media_router, build_router
from likeness.runtime import Runtime, build_runtime
from likeness.upload.endpoints import router as uploads_router
from likeness.video import endpoints as videos
from likeness.web import docs


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
    # Capability tokens in the path instead of the key (a browser opens these links).
    app.include_router(build_media_router("replica"))
    app.include_router(build_media_router("face"))
    app.include_router(videos.media)
    docs.install(app)
    _install_error_handlers(app)
    app.add_middleware(_StripTrailingSlash)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(_describe(e) for e in exc.errors()) or "Invalid request"
        return JSONResponse({"error": message, "message": message}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        return JSONResponse({"error": message, "message": message}, status_code=exc.status_code)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
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
