"""Uploads: a file posted to /v2/uploads gets a URL that train_video_url accepts, so people
without a bucket (and the CLI) can train from a local file."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from likeness.config import Settings
from likeness.errors import BadRequest, NotFound
from likeness.kit import ids
from likeness.kit.db import after_commit
from likeness.kit.safe_url import is_obviously_private
from likeness.models import Upload
from likeness.storage.base import BlobStore

_UPLOAD_PATH = re.compile(r"^/v2/uploads/(u[0-9a-f]{12})/?$")
CHUNK = 1 << 20
CONTENT_TYPE_CHARS = 128  # its column's size


def safe_filename(name: str | None) -> str:
    base = Path(name or "upload").name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "upload"
    return cleaned[:120]


def store(
    session: Session,
    storage: BlobStore,
    stream: BinaryIO,
    filename: str | None,
    content_type: str | None,
    max_bytes: int,
) -> Upload:
    if content_type and len(content_type) > CONTENT_TYPE_CHARS:
        raise BadRequest(f"The file's Content-Type is longer than {CONTENT_TYPE_CHARS} characters")
    upload_id = ids.upload_id()
    name = safe_filename(filename)
    key = f"uploads/{upload_id}/{name}"
    path = storage.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as out:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                out.close()
                storage.delete_tree(f"uploads/{upload_id}")
                raise BadRequest(
                    f"The file exceeds the maximum upload size of {max_bytes // (1024 * 1024)}MB"
                )
            out.write(chunk)
    if size == 0:
        storage.delete_tree(f"uploads/{upload_id}")
        raise BadRequest("The uploaded file is empty")
    upload = Upload(
        id=upload_id, filename=name, content_type=content_type, storage_key=key, size_bytes=size
    )
    session.add(upload)
    session.flush()
    return upload


def url_for(public_url: str, upload_id: str) -> str:
    return f"{public_url.rstrip('/')}/v2/uploads/{upload_id}"


def get(session: Session, upload_id: str) -> Upload:
    upload = session.get(Upload, upload_id)
    if upload is None:
        raise NotFound("Invalid upload_id")
    return upload


def delete(session: Session, storage: BlobStore, upload_id: str) -> None:
    """Remove an upload and its file for good (a replica that trained from it keeps its own
    copy; one still downloading it fails as for any vanished URL)."""
    _remove(session, storage, get(session, upload_id))


def delete_behind(session: Session, storage: BlobStore, public_url: str, url: str) -> None:
    """Remove the upload behind one of our own URLs (nothing for any other URL)."""
    upload = _from_url(session, public_url, url)
    if upload is not None:
        _remove(session, storage, upload)


def _remove(session: Session, storage: BlobStore, upload: Upload) -> None:
    key = f"uploads/{upload.id}"
    after_commit(session, lambda: storage.delete_tree(key))
    session.delete(upload)


def local_path(session: Session, storage: BlobStore, public_url: str, url: str) -> Path | None:
    """The stored file behind one of our own upload URLs; None for any other URL."""
    upload = _from_url(session, public_url, url)
    if upload is None:
        return None
    path = storage.path(upload.storage_key)  # refuses a key outside the data directory
    return path if path.is_relative_to(storage.path("uploads")) else None


def refuse_private(
    session: Session, settings: Settings, field: str, url: str | None, *, own_ok: bool = True
) -> None:
    """400 at create time for a URL that obviously points inside (a private address literal,
    ``localhost``) instead of failing in the job, unless it names one of our own uploads
    (``own_ok``: a media field) or the operator allows private URLs. Names that resolve to a
    private address are refused in the job, where the connection is checked."""
    if not url or settings.allow_private_urls or not is_obviously_private(url):
        return
    if own_ok and _from_url(session, settings.public_url, url) is not None:
        return
    raise BadRequest(f"Invalid {field}: private and loopback addresses are not allowed")


def _from_url(session: Session, public_url: str, url: str) -> Upload | None:
    """The upload one of our own URLs names, however its host is spelled: the configured
    public URL, or this machine's loopback (``localhost``, ``127.0.0.1``, ``[::1]``, on any
    port: behind a proxy the public URL names no local port). Only the exact upload path
    matches, and only the id is taken from it: the file is the one stored under that id, so no
    spelling of the path can point anywhere else."""
    try:
        ours, theirs = urlsplit(public_url), urlsplit(url)
        host, port = theirs.hostname, theirs.port
    except ValueError:  # a malformed port or address
        return None
    if theirs.scheme not in ("http", "https") or host is None:
        return None
    public = (theirs.scheme, host, port or _DEFAULT_PORT[theirs.scheme]) == (
        ours.scheme,
        ours.hostname,
        ours.port or _DEFAULT_PORT.get(ours.scheme),
    )
    if not public and not _is_loopback(host):
        return None
    prefix = ours.path.rstrip("/")
    path = theirs.path
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    elif public and prefix:
        return None
    match = _UPLOAD_PATH.fullmatch(path)
    if not match:
        return None
    return session.get(Upload, match.group(1))


_DEFAULT_PORT = {"http": 80, "https": 443}


def _is_loopback(host: str) -> bool:
    if host.rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
