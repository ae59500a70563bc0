"""Any OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM, llama.cpp's server, …), streamed.

A persona's ``layers.llm`` (``base_url``, ``model``, ``api_key``, ``headers``, ``extra_body``,
``default_query``, ``tools``) or the operator's ``LIKENESS_LLM_*`` settings name it; like
Tavus, ``/chat/completions`` is appended to the base URL. The answer is read as server-sent
events (``data: {...}`` lines, ``data: [DONE]`` at the end); a server that ignores ``stream``
and answers one JSON body is read too.

**Never dead air, never a crashed call.** No first piece within ``first_token_timeout_s``, no
whole answer within ``timeout_s``, an HTTP error, a refused address, garbage or an empty answer:
the error is logged and, if nothing was said yet, the stream yields the fallback line instead.
``reply`` never raises.

**A persona's URL is a user's URL** (ADR 0009): its connections go only to public addresses
(``kit.safe_url.AsyncCheckedTransport``: resolved once, the checked address connected to),
unless the operator's allowlist names its host. The operator's own endpoint is trusted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

from likeness.kit.safe_url import AsyncCheckedTransport, UnsafeUrl
from likeness.providers.base import Llm, Message, ToolCall

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ERROR_BODY = 300  # characters of an error body worth logging


@dataclass(frozen=True)
class Endpoint:
    """Where to ask. ``trusted``: the operator's own (may be on a private address)."""

    base_url: str
    model: str
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    default_query: Mapping[str, str] = field(default_factory=dict)  # e.g. Azure's api-version
    trusted: bool = False

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def host(self) -> str:
        """For logs: never the key or the path."""
        return urlsplit(self.base_url).netloc or "?"


class Failed(Exception):
    """The endpoint did not give a usable answer; the message says how (for the log)."""


class OpenAiLlm:
    """The ``Llm`` port on an OpenAI-compatible endpoint; one per conversation (it keeps its
    connections between turns). ``transport``: for tests only."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        first_token_timeout_s: float = 5.0,
        timeout_s: float = 30.0,
        fallback_line: str = "Sorry, I lost my train of thought.",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._first_s = first_token_timeout_s
        self._total_s = timeout_s
        self._fallback = fallback_line
        self._client = httpx.AsyncClient(
            transport=transport or AsyncCheckedTransport(allow_private=endpoint.trusted),
            timeout=httpx.Timeout(timeout_s, connect=first_token_timeout_s),
            follow_redirects=False,  # a redirect could lead anywhere; the check is per URL
            trust_env=False,  # no proxy from the environment: it would connect elsewhere
        )

    async def reply(
        self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] = ()
    ) -> AsyncGenerator[str | ToolCall, None]:
        said = False
        try:
            async for piece in self._stream(messages, tools):
                said = True
                yield piece
            if not said:
                raise Failed("the answer was empty")
        except (Failed, httpx.HTTPError, UnsafeUrl) as exc:
            log.error("LLM at %s failed: %s", self.endpoint.host, _describe(exc))
            if not said:
                yield self._fallback

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _stream(
        self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]]
    ) -> AsyncIterator[str | ToolCall]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        first_by, done_by = start + self._first_s, start + self._total_s
        body: dict[str, Any] = {
            **self.endpoint.extra_body,
            "model": self.endpoint.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
        }
        if tools:
            body["tools"] = list(tools)
        headers = {"accept": "text/event-stream", **self.endpoint.headers}
        if self.endpoint.api_key:
            headers.setdefault("authorization", f"Bearer {self.endpoint.api_key}")
        request = self._client.build_request(
            "POST",
            self.endpoint.url,
            json=body,
            headers=headers,
            params=dict(self.endpoint.default_query),
        )
        response = await _by(self._client.send(request, stream=True), first_by, "no answer")
        try:
            if response.status_code != 200:
                text = (await _by(response.aread(), done_by, "no error body")).decode(
                    errors="replace"
                )
                raise Failed(f"HTTP {response.status_code}: {text[:MAX_ERROR_BODY]!r}")
            calls = _ToolCalls()
            if response.headers.get("content-type", "").startswith("application/json"):
                whole = await _by(response.aread(), first_by, "no first token")
                message = _choice(_json(whole.decode(errors="replace"))).get("message") or {}
                content = message.get("content")
                if isinstance(content, str) and content:
                    yield content
                calls.add(message.get("tool_calls"))
            else:
                lines = response.aiter_lines()
                started = False
                while True:
                    by = done_by if started else min(first_by, done_by)
                    line = await _by(_next(lines), by, "" if started else "no first token")
                    if line is None:
                        break
                    data = _data(line)
                    if data is None:
                        continue
                    if data == "[DONE]":
                        break
                    delta = _choice(_json(data)).get("delta") or {}
                    content = delta.get("content")
                    if isinstance(content, str) and content:
                        started = True
                        yield content
                    if delta.get("tool_calls"):
                        started = True
                        calls.add(delta["tool_calls"])
            for call in calls.whole():
                yield call
        finally:
            await response.aclose()


class _ToolCalls:
    """Tool calls as they stream in: each by its ``index``, its name and arguments in pieces."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, deltas: Any) -> None:
        if deltas is None:
            return
        if not isinstance(deltas, list):
            raise Failed("tool_calls is not a list")
        for n, delta in enumerate(deltas):
            if not isinstance(delta, dict):
                raise Failed("a tool call is not an object")
            index = delta.get("index", n)
            call = self._calls.setdefault(
                index if isinstance(index, int) else n, {"id": "", "name": "", "arguments": ""}
            )
            function = delta.get("function") or {}
            if isinstance(delta.get("id"), str):
                call["id"] = delta["id"]
            if isinstance(function.get("name"), str):
                call["name"] += function["name"]
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                call["arguments"] += arguments
            elif isinstance(arguments, dict):  # some servers send the object itself
                call["arguments"] += json.dumps(arguments)

    def whole(self) -> list[ToolCall]:
        return [
            ToolCall(c["name"], c["arguments"] or "{}", c["id"] or None)
            for _, c in sorted(self._calls.items())
            if c["name"]
        ]


async def _by(work: Awaitable[T], deadline: float, what: str) -> T:
    """``work``, unless ``deadline`` (loop time) passes first: then Failed."""
    left = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(work, max(left, 0.0))
    except TimeoutError:
        raise Failed(f"{what or 'the answer did not finish'} in time") from None


async def _next(lines: AsyncIterator[str]) -> str | None:
    """The next line, or None at the end (a task must not end in StopAsyncIteration)."""
    try:
        return await anext(lines)
    except StopAsyncIteration:
        return None


def _data(line: str) -> str | None:
    """The payload of an event-stream line; None for blank lines, comments and other fields.
    Anything that is not an event stream at all is garbage."""
    line = line.strip()
    if not line or line.startswith(":"):
        return None
    name, _, value = line.partition(":")
    if name == "data":
        return value.strip()
    if name in ("event", "id", "retry"):
        return None
    raise Failed(f"not an event stream: {line[:80]!r}")


def _json(text: str) -> dict[str, Any]:
    try:
        chunk = json.loads(text)
    except ValueError:
        raise Failed(f"not JSON: {text[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise Failed(f"not a JSON object: {text[:80]!r}")
    if chunk.get("error"):
        raise Failed(f"the endpoint reported an error: {str(chunk['error'])[:MAX_ERROR_BODY]}")
    return chunk


def _choice(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices")
    if choices is None or choices == []:
        return {}  # e.g. a usage-only chunk
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise Failed("choices is not a list of objects")
    return choices[0]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}"
    return str(exc)


if TYPE_CHECKING:
    _port: Llm = OpenAiLlm(Endpoint("https://example.org/v1", "m"))
