"""Stream a user-supplied URL to a file: size cap, timeouts, retries on transient errors,
and a safety check on every redirect hop and every connection (kit/safe_url.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from likeness.kit.safe_url import CheckedTransport, UnsafeUrl, check_url

MAX_REDIRECTS = 5


class DownloadError(Exception):
    """The URL could not be fetched (bad link, refused destination, HTTP error)."""


class TooLarge(DownloadError):
    pass


class _Transient(Exception):
    pass


def download(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout_s: float,
    attempts: int,
    allow_private: bool,
    on_bytes: Callable[[int], None] | None = None,
) -> int:
    """Fetch ``url`` into ``dest``; returns the byte count. Raises DownloadError or TooLarge."""

    @retry(
        retry=retry_if_exception_type(_Transient),
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_exponential(multiplier=0.5, max=8),
        reraise=True,
    )
    def attempt() -> int:
        return _fetch(url, dest, max_bytes, timeout_s, allow_private, on_bytes)

    try:
        return attempt()
    except _Transient as exc:
        raise DownloadError(str(exc)) from exc


def _fetch(
    url: str,
    dest: Path,
    max_bytes: int,
    timeout_s: float,
    allow_private: bool,
    on_bytes: Callable[[int], None] | None,
) -> int:
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
    transport = CheckedTransport(allow_private=allow_private)
    with httpx.Client(timeout=timeout, follow_redirects=False, transport=transport) as client:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                check_url(current, allow_private=allow_private)
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        current = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code >= 500 or response.status_code == 429:
                        raise _Transient(f"HTTP {response.status_code} from {current}")
                    if response.status_code >= 400:
                        raise DownloadError(f"HTTP {response.status_code} from {current}")
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > max_bytes:
                        raise TooLarge(f"{declared} bytes declared, limit {max_bytes}")
                    return _save(response, dest, max_bytes, on_bytes)
            except UnsafeUrl as exc:  # refused before any connection to the address
                raise DownloadError(str(exc)) from exc
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise _Transient(f"{type(exc).__name__} fetching {current}") from exc
            except httpx.HTTPError as exc:
                raise DownloadError(f"{type(exc).__name__} fetching {current}") from exc
        raise DownloadError(f"more than {MAX_REDIRECTS} redirects")


def _save(
    response: httpx.Response,
    dest: Path,
    max_bytes: int,
    on_bytes: Callable[[int], None] | None,
) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(dest.suffix + ".part")
    written = 0
    with partial.open("wb") as out:
        for chunk in response.iter_bytes(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                out.close()
                partial.unlink(missing_ok=True)
                raise TooLarge(f"more than {max_bytes} bytes")
            out.write(chunk)
            if on_bytes:
                on_bytes(written)
    partial.replace(dest)
    return written
