"""User-supplied URLs: only http(s), and never private, loopback or link-local destinations
unless the operator allows them (``LIKENESS_ALLOW_PRIVATE_URLS``)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    """The URL is malformed or points somewhere we refuse to go."""


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeUrl unless ``url`` is http(s) with a host that resolves to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"not an http(s) URL: {url!r}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"cannot resolve {parts.hostname!r}") from exc
    for info in infos:
        check_peer(str(info[4][0]), parts.hostname, allow_private=False)


def check_peer(address: str, host: str, *, allow_private: bool) -> None:
    """Raise UnsafeUrl if the address a connection actually reached is not public: DNS can
    answer differently between ``check_url`` and the connection (rebinding)."""
    if allow_private:
        return
    ip = ipaddress.ip_address(address)
    if not ip.is_global or ip.is_multicast:
        raise UnsafeUrl(f"{host!r} resolves to a non-public address ({ip})")


def is_well_formed(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
