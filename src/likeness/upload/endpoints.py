"""POST /v2/uploads (multipart ``file``), GET and DELETE /v2/uploads/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, UploadFile
from fastapi.responses import FileResponse

from likeness.api.deps import RuntimeDep, SessionDep
from likeness.api.files import user_file_response
from likeness.kit.clock import iso_ms
from likeness.kit.db import transaction
from likeness.upload import service
from likeness.upload.schemas import Upload

router = APIRouter(prefix="/v2/uploads", tags=["uploads"])


@router.post("", response_model=Upload, summary="Store a file; its url trains a replica")
def create(file: UploadFile, rt: RuntimeDep) -> dict[str, Any]:
    with transaction(rt.sessions) as session:
        upload = service.store(
            session,
            rt.storage,
            file.file,
            file.filename,
            file.content_type,
            rt.settings.max_download_bytes,
        )
        return {
            "upload_id": upload.id,
            "url": service.url_for(rt.settings.public_url, upload.id),
            "filename": upload.filename,
            "size_bytes": upload.size_bytes,
            "created_at": iso_ms(upload.created_at),
        }


@router.get("/{upload_id}", response_class=FileResponse, summary="Download an upload")
def download(upload_id: str, rt: RuntimeDep, session: SessionDep) -> FileResponse:
    upload = service.get(session, upload_id)
    return user_file_response(
        rt.storage.path(upload.storage_key), upload.filename, "Invalid upload_id"
    )


@router.delete("/{upload_id}", summary="Delete an upload and its file")
def delete(upload_id: str, rt: RuntimeDep) -> Response:
    with transaction(rt.sessions) as session:
        service.delete(session, rt.storage, upload_id)
    return Response(status_code=200)
