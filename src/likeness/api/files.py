"""Answer with a stored file, or Tavus's 404 when it is not there (FileResponse alone would
fail with a 500 once the response starts)."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse

from likeness.errors import NotFound


def file_response(
    path: Path, media_type: str, filename: str | None = None, missing: str = "No such file"
) -> FileResponse:
    if not path.is_file():
        raise NotFound(missing)
    return FileResponse(path, media_type=media_type, filename=filename)
