"""Answer with a stored file, or Tavus's 404 when it is not there (FileResponse alone would
fail with a 500 once the response starts)."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse

from likeness.errors import NotFound

NOSNIFF = {"X-Content-Type-Options": "nosniff"}
_PLAIN = "application/octet-stream"


def file_response(
    path: Path, media_type: str, filename: str | None = None, missing: str = "No such file"
) -> FileResponse:
    if not path.is_file():
        raise NotFound(missing)
    return FileResponse(path, media_type=media_type, filename=filename, headers=NOSNIFF)


def user_file_response(path: Path, filename: str, missing: str) -> FileResponse:
    """A file someone uploaded, never with the type they claimed: a ``text/html`` upload
    served as such would run script on our origin. Audio, video and images get the type
    their first bytes show; anything else is an octet-stream download."""
    if not path.is_file():
        raise NotFound(missing)
    with path.open("rb") as f:
        head = f.read(16)
    return FileResponse(path, media_type=sniff(head), filename=filename, headers=NOSNIFF)


def sniff(head: bytes) -> str:
    """The media type of the audio, video or image container whose first 16 bytes are
    ``head``, or application/octet-stream for anything else."""
    riff = {b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo", b"WEBP": "image/webp"}
    if head[:4] == b"RIFF":
        return riff.get(head[8:12], _PLAIN)
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return _PLAIN


_MAGIC = (
    (b"\x1a\x45\xdf\xa3", "video/webm"),  # EBML: WebM or Matroska
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
)
