"""A full persona in a real browser: Debian's chromium joins the conversation page with a
LibriVox clip as its fake microphone (chromium loops the file: the clip, then a pause), and
the replica hears it, asks its LLM (a fake OpenAI-compatible server at the edge) and answers
aloud with moving lips; the clip's next loop talks over the long answer and interrupts it."""

from __future__ import annotations

import asyncio
import json
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from likeness.config import Settings
from likeness.media.audio import read_audio, to_int16
from likeness.runtime import build_runtime

from ..conftest import API_KEY, FIXTURES
from .test_page import CHROMIUM, HOST, PROBE, _bound, _replica, _serving

pytestmark = pytest.mark.slow

SAID = "he was not an ill disposed young man"
ANSWER = (
    "Well, that is a kind thing to say about him. He was rather cold hearted, though. "
    "And rather selfish too, as the story goes on to tell. But let us not judge him yet."
)


HEARD_AFTER_CUT = """() => {
  const cut = window.events.findIndex(e => e.event_type === "conversation.replica_interrupted");
  return cut >= 0 && window.events.slice(cut).some(
    e => e.event_type === "conversation.utterance" && e.properties.role === "user");
}"""


class _Llm(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that streams ANSWER a word at a time."""

    asked: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        _Llm.asked.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for n, word in enumerate(ANSWER.split(" ")):
            delta = {"content": word if n == 0 else f" {word}"}
            chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *_args: Any) -> None:
        pass


def _wer(reference: str, heard: str) -> float:
    ref = reference.split()
    hyp = "".join(c for c in heard.lower() if c.isalnum() or c.isspace()).split()
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[:], i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return d[-1] / len(ref)


def test_the_replica_hears_the_browser_microphone_answers_and_is_talked_over(
    trained: Path, tmp_path: Path
) -> None:
    import httpx
    from playwright.async_api import async_playwright
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from likeness.app import create_app
    from likeness.conversation.workers import WorkerAddress, record
    from likeness.media_worker import MediaWorker, build_media_app

    mic = tmp_path / "mic.wav"  # chromium loops it: speech, then 6 s for the answer to start
    speech, _ = read_audio(FIXTURES / "librivox_0880.wav", 16000)
    with wave.open(str(mic), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(to_int16(np.concatenate([speech, np.zeros(16000 * 6)])).tobytes())
    llm = ThreadingHTTPServer(("127.0.0.1", 0), _Llm)
    threading.Thread(target=llm.serve_forever, daemon=True).start()
    _Llm.asked = []
    api_sock, media_sock, host_sock = _bound(), _bound(), _bound()
    base = f"http://127.0.0.1:{api_sock.getsockname()[1]}"
    runtime = build_runtime(Settings(data_dir=tmp_path / "data", api_key=API_KEY,
                                     public_url=base, consent_policy="off",
                                     allow_private_urls=True))  # fmt: skip
    worker = MediaWorker(runtime, capacity=2)
    replica_id = _replica(runtime, trained)

    async def main() -> tuple[list[dict[str, Any]], list[int]]:
        media, media_task = await _serving(build_media_app(worker, "secret"), media_sock)
        media_url = f"http://127.0.0.1:{media_sock.getsockname()[1]}"
        record(runtime.settings.resolved_data_dir, WorkerAddress(media_url, "secret"), 2)
        api, api_task = await _serving(create_app(runtime=runtime), api_sock)
        http = httpx.AsyncClient(base_url=base, headers={"x-api-key": API_KEY})
        llm_url = f"http://127.0.0.1:{llm.server_address[1]}/v1"
        persona = await http.post("/v2/personas", json={
            "persona_name": "Elinor", "system_prompt": "Be Elinor.",
            "default_replica_id": replica_id, "layers": {"llm": {"base_url": llm_url}},
        })  # fmt: skip
        assert persona.status_code == 200, persona.text
        created = await http.post("/v2/conversations", json={
            "persona_id": persona.json()["persona_id"],
            "properties": {"participant_left_timeout": 60},
        })  # fmt: skip
        url = created.json()["conversation_url"]
        host_app = Starlette(routes=[Route("/", lambda _r: HTMLResponse(HOST.format(url=url)))])
        host_server, host_task = await _serving(host_app, host_sock)  # relays the events
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM),
                    args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                          f"--use-file-for-fake-audio-capture={mic}"],
                )  # fmt: skip
                try:
                    page = await browser.new_page()
                    await page.goto(f"http://127.0.0.1:{host_sock.getsockname()[1]}/")
                    frame = page.frame_locator("#call")
                    await frame.locator("#join").click()
                    await frame.locator('#state[data-state="joined"]').wait_for(timeout=15_000)
                    inner = page.frames[1]
                    await inner.wait_for_function(
                        "document.getElementById('replica').srcObject !== null"
                    )
                    await inner.evaluate(PROBE)
                    # heard, answered, talked over by the next loop, which is heard whole
                    await page.wait_for_function(HEARD_AFTER_CUT, timeout=60_000)
                    await asyncio.sleep(0.5)
                    events: list[dict[str, Any]] = await page.evaluate("window.events")
                    prints = await inner.evaluate("[probe.frames, probe.prints.size]")
                finally:
                    await browser.close()
        finally:
            await http.aclose()
            api.should_exit = media.should_exit = host_server.should_exit = True
            await asyncio.gather(api_task, media_task, host_task)
            await worker.end_all("test over")
            llm.shutdown()
            llm.server_close()
        return events, prints

    try:
        events, prints = asyncio.run(main())
    finally:
        runtime.close()
    types = [e.get("event_type") for e in events]
    answer = types.index("conversation.replica.started_speaking")
    assert types[answer + 1] == "conversation.utterance"  # the replica's, when it starts
    assert events[answer + 1]["properties"]["role"] == "replica"
    cut = types.index("conversation.replica_interrupted")
    assert answer < cut and types[cut - 1] == "conversation.user.started_speaking"
    assert types[cut + 1] == "conversation.replica.stopped_speaking"
    assert events[cut + 1]["properties"]["interrupted"] is True
    # the loop that talked over the answer was heard whole (the first may have been cut by
    # the call's start), and its words reached the LLM
    user = [e for e in events[cut:] if e.get("event_type") == "conversation.utterance"]
    heard = user[0]["properties"]["speech"]
    print(f"\nheard through the browser {heard!r}: WER {_wer(SAID, heard):.0%}")
    assert _wer(SAID, heard) <= 0.5
    assert any(ask["messages"][-1] == {"role": "user", "content": heard} for ask in _Llm.asked)
    assert prints[1] >= 10  # the face moved
