"""User-supplied URLs: only http(s), and never private, loopback or link-local destinations
unless the operator allows them (``LIKENESS_ALLOW_PRIVATE_URLS``).

Three checks, from cheapest to the one that guards:

- ``is_obviously_private``: no DNS; a literal private address or a ``localhost`` name. The
  create endpoints answer 400 with it (a DNS lookup in a request would block it, and the name
  may answer differently by the time the job runs anyway).
- ``check_url``: resolves the name and refuses it if any address is not public; an early,
  clear refusal before a job opens a connection.
- ``CheckedTransport``: the guard. Every TCP connection resolves the name once, refuses it
  unless every address is public, and connects to one of those checked addresses, so a name
  that answers differently in between (DNS rebinding) never reaches an inside address. The
  URL is left alone: the Host header and the TLS SNI and certificate check keep the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import httpcore
import httpx


class UnsafeUrl(ValueError):
    """The URL is malformed or points somewhere we refuse to go."""


class Unresolvable(UnsafeUrl):
    """The name did not resolve (may be a passing DNS failure)."""


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeUrl unless ``url`` is http(s) with a host that resolves to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"not an http(s) URL: {url!r}")
    if not allow_private:
        resolve_public(parts.hostname, parts.port or 443)


def resolve_public(host: str, port: int) -> list[str]:
    """Resolve ``host`` once; its addresses, in order, if every one of them is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"cannot resolve {host!r}") from exc
    if not addresses:
        raise Unresolvable(f"cannot resolve {host!r}")
    for address in addresses:
        check_peer(address, host, allow_private=False)
    return addresses


def check_peer(address: str, host: str, *, allow_private: bool) -> None:
    """Raise UnsafeUrl if ``address`` (what ``host`` resolved to) is not public."""
    if allow_private:
        return
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is not part of it
    if not ip.is_global or ip.is_multicast:
        raise UnsafeUrl(f"{host!r} resolves to a non-public address ({ip})")


def is_obviously_private(url: str) -> bool:
    """True for a URL whose host is, without any DNS lookup, not public: a loopback, private,
    link-local or otherwise reserved address literal (in any spelling ``inet_aton`` takes,
    such as ``127.1`` or ``0x7f000001``), or ``localhost`` and its subdomains (RFC 6761)."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = _literal(host)
    return ip is not None and (not ip.is_global or ip.is_multicast)


def allowlisted(url: str, hosts: Sequence[str]) -> bool:
    """True when the operator's allowlist names ``url``'s host (compared as spelled, without
    case): such a URL may reach a private address, e.g. an LLM server inside the network."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    return bool(host) and host in {h.strip().rstrip(".").lower() for h in hosts}


def is_well_formed(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport, whose connections go only to addresses checked as public."""

    def __init__(self, *, allow_private: bool) -> None:
        # HTTPTransport's __init__ only builds its connection pool, with no way to pass a
        # network backend; this builds it with one instead (httpx's defaults otherwise, and
        # httpcore's default TLS context, made on the first https connection). Not calling it
        # also saves building a TLS context per transport (about 0.1 s). No proxy from the
        # environment: a proxy would make the connection, and the check, somewhere else.
        self._pool = httpcore.ConnectionPool(network_backend=_CheckedBackend(allow_private))


class _CheckedBackend(httpcore.NetworkBackend):
    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if self._allow_private:
            return self._sockets.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            addresses = resolve_public(host, port)
        except Unresolvable as exc:
            raise httpcore.ConnectError(str(exc)) from exc  # retried like any failed connect
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # the checked addresses themselves: no second lookup
            try:
                return self._sockets.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


class AsyncCheckedTransport(httpx.AsyncHTTPTransport):
    """``CheckedTransport`` for asyncio: the name is resolved in a worker thread, then the
    connection goes to one of the addresses checked as public."""

    def __init__(self, *, allow_private: bool) -> None:
        # As CheckedTransport: the pool, built with our network backend and nothing else.
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=_AsyncCheckedBackend(allow_private)
        )


class _AsyncCheckedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._sockets = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._allow_private:
            return await self._sockets.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        try:
            addresses = await asyncio.to_thread(resolve_public, host, port)
        except Unresolvable as exc:
            raise httpcore.ConnectError(str(exc)) from exc  # UnsafeUrl itself goes through
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._sockets.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._sockets.sleep(seconds)


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None
