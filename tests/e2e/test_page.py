"""The conversation page in a real browser: Debian's chromium, driven by Playwright, opens the
conversation_url of a replica trained from a fixture clip, embedded in an <iframe> of a host
page, joins with a fake microphone, and checks from inside the page what a person would see
and hear: frames that arrive and move, a voice while the replica speaks, an echo sent by the
host through the page's postMessage relay spoken with its events in order, an interrupt
obeyed, leave and join again, /end shown as ended, and a wrong token refused."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from likeness.config import Settings
from likeness.runtime import build_runtime
from likeness.training import pipeline

from ..conftest import API_KEY, FIXTURES, local_job

CHROMIUM = Path("/usr/bin/chromium")
# .ci/run sets it: there the browser is installed, so a missing one is a failure, not a skip.
REQUIRED = os.environ.get("LIKENESS_REQUIRE_BROWSER") == "1"
_missing = [
    why
    for why, gone in (
        (f"no browser at {CHROMIUM} (apt-get install chromium)", not CHROMIUM.exists()),
        (
            "playwright is not installed (the dev extras)",
            not importlib.util.find_spec("playwright"),
        ),
    )
    if gone
]
if _missing:
    if REQUIRED:
        pytest.fail("browser tests required, but " + "; ".join(_missing), pytrace=False)
    pytest.skip("browser tests skipped: " + "; ".join(_missing), allow_module_level=True)

pytestmark = pytest.mark.slow

SPEECH_WAV = FIXTURES / "librivox_0870.wav"  # the fake microphone
LONG = (
    "This is a long sentence that the replica will not get to finish, because the host "
    "interrupts it almost as soon as it starts to say it, and then it stops."
)

# Run inside the page (the iframe): count decoded frames with requestVideoFrameCallback and
# fingerprint each (16x12 grey), and sample the voice's RMS with a WebAudio analyser.
PROBE = """() => {
  const video = document.getElementById("replica");
  const probe = window.probe = {frames: 0, prints: new Set(), energy: [], size: null};
  const canvas = new OffscreenCanvas(16, 12);
  const g = canvas.getContext("2d", {willReadFrequently: true});
  const onFrame = (_now, meta) => {
    probe.frames += 1;
    probe.size = [meta.width, meta.height];
    g.drawImage(video, 0, 0, 16, 12);
    const px = g.getImageData(0, 0, 16, 12).data;
    let print = "";
    for (let i = 0; i < px.length; i += 4) print += ((px[i] + px[i + 1] + px[i + 2]) >> 4) + ",";
    probe.prints.add(print);
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  const audio = new AudioContext();
  audio.resume();
  const analyser = audio.createAnalyser();
  analyser.fftSize = 1024;
  audio.createMediaStreamSource(video.srcObject).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    probe.energy.push(Math.sqrt(sum / buf.length));
  }, 20);
}"""

# The host page: the conversation in an iframe; every envelope the page relays is kept.
HOST = """<!doctype html><html><body>
<iframe id="call" src="{url}" allow="microphone; camera; autoplay" width="640" height="560">
</iframe>
<script>
  window.events = [];
  window.addEventListener("message", (e) => {{
    if (e.source === document.getElementById("call").contentWindow) window.events.push(e.data);
  }});
  window.send = (envelope) =>
    document.getElementById("call").contentWindow.postMessage(envelope, "*");
</script></body></html>"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("page")
    pipeline.run(local_job(FIXTURES / "short_talk.mp4", work))
    return work / "bundle"


def _replica(runtime: Any, trained: Path) -> str:
    from likeness.kit import ids
    from likeness.kit.db import transaction
    from likeness.models import Replica
    from likeness.models.replica import work_key

    replica_id = ids.replica_id()
    shutil.copytree(trained, runtime.storage.path(f"{work_key(replica_id)}/bundle"))
    with transaction(runtime.sessions) as session:
        session.add(Replica(id=replica_id, model_name="phoenix-4", engine="mouthbank",
                            train_video_url="https://example.com/v.mp4", status="completed",
                            artifacts={"bundle": "bundle"}))  # fmt: skip
    return replica_id


async def _serving(app: Any, sock: socket.socket) -> tuple[Any, asyncio.Task[None]]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task


def _bound() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def test_the_page_joins_shows_speaks_and_ends(trained: Path, tmp_path: Path) -> None:
    import httpx
    from playwright.async_api import async_playwright
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from likeness.app import create_app
    from likeness.conversation.workers import WorkerAddress, record
    from likeness.media_worker import MediaWorker, build_media_app

    api_sock, media_sock, host_sock = _bound(), _bound(), _bound()
    base = f"http://127.0.0.1:{api_sock.getsockname()[1]}"
    runtime = build_runtime(
        Settings(
            data_dir=tmp_path / "data",
            api_key=API_KEY,
            public_url=base,
            consent_policy="off",
            conversation_lease_s=2.0,  # the worker notices /end within half a second
        )
    )
    worker = MediaWorker(runtime, capacity=2)
    replica_id = _replica(runtime, trained)

    async def main() -> None:
        media, media_task = await _serving(build_media_app(worker, "secret"), media_sock)
        media_url = f"http://127.0.0.1:{media_sock.getsockname()[1]}"
        record(runtime.settings.resolved_data_dir, WorkerAddress(media_url, "secret"), 2)
        api, api_task = await _serving(create_app(runtime=runtime), api_sock)
        http = httpx.AsyncClient(base_url=base, headers={"x-api-key": API_KEY})
        created = await http.post("/v2/conversations", json={
            "replica_id": replica_id, "require_auth": True,
            "properties": {"enable_closed_captions": True, "participant_left_timeout": 60},
        })  # fmt: skip
        assert created.status_code == 200, created.text
        cid = created.json()["conversation_id"]
        url = f"{created.json()['conversation_url']}?t={created.json()['meeting_token']}"
        assert url.startswith(f"{base}/c/")
        # The host page: another origin (another port), served from loopback like the page, so
        # a secure context (a microphone is offered only when every ancestor is one).
        host_app = Starlette(routes=[Route("/", lambda _r: HTMLResponse(HOST.format(url=url)))])
        host_server, host_task = await _serving(host_app, host_sock)
        host = f"http://127.0.0.1:{host_sock.getsockname()[1]}/"
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM),
                    args=[
                        "--use-fake-ui-for-media-stream",
                        "--use-fake-device-for-media-stream",
                        f"--use-file-for-fake-audio-capture={SPEECH_WAV}",
                    ],
                )
                try:
                    await _drive(browser, http, cid, url, host, worker)
                finally:
                    await browser.close()
        finally:
            await http.aclose()
            api.should_exit = media.should_exit = host_server.should_exit = True
            await asyncio.gather(api_task, media_task, host_task)
            await worker.end_all("test over")

    try:
        asyncio.run(main())
    finally:
        runtime.close()


def _echo(cid: str, inference_id: str, text: str) -> dict[str, Any]:
    props = {"text": text, "inference_id": inference_id}
    return {"message_type": "conversation", "event_type": "conversation.echo",
            "conversation_id": cid, "properties": props}  # fmt: skip


async def _echo_audio(http: Any, cid: str, inference_id: str) -> None:
    """Two seconds of speech as 16 kHz PCM chunks on the Interactions WebSocket, the way a
    backend's TTS streams them; returns once the backend hears the replica stop."""
    import base64
    import json

    from websockets.asyncio.client import connect

    from likeness.media.audio import read_audio, to_int16

    samples, _ = read_audio(FIXTURES / "librivox_0880.wav", 16000)
    pcm = to_int16(samples[: 2 * 16000]).tobytes()
    step = 2 * 1600  # 100 ms
    chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    url = str(http.base_url).replace("http://", "ws://").rstrip("/")
    async with connect(
        f"{url}/v2/conversations/{cid}/interactions", additional_headers={"x-api-key": API_KEY}
    ) as backend:
        for n, chunk in enumerate(chunks):
            props = {"modality": "audio", "audio": base64.b64encode(chunk).decode(),
                     "sample_rate": 16000, "inference_id": inference_id,
                     "done": n == len(chunks) - 1}  # fmt: skip
            envelope = {"message_type": "conversation", "event_type": "conversation.echo",
                        "conversation_id": cid, "properties": props}  # fmt: skip
            await backend.send(json.dumps(envelope))
        # a backend hears the same events; it stays until the replica has said it all
        while True:
            event = json.loads(await asyncio.wait_for(backend.recv(), 30))
            assert "event_type" in event, event
            if event["event_type"] == "conversation.replica.stopped_speaking":
                assert event["properties"]["inference_id"] == inference_id
                return


async def _drive(browser: Any, http: Any, cid: str, url: str, host: str, worker: Any) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(host)
    frame = page.frame_locator("#call")
    state = frame.locator("#state")

    async def until_state(value: str, timeout_ms: float = 15_000) -> None:
        await state.and_(frame.locator(f'[data-state="{value}"]')).wait_for(timeout=timeout_ms)

    async def events_of(inference_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = await page.evaluate("window.events")
        return [e for e in events if e.get("properties", {}).get("inference_id") == inference_id]

    async def until_event(inference_id: str, event_type: str) -> None:
        await page.wait_for_function(
            "([id, type]) => window.events.some(e => e.event_type === type && "
            "e.properties && e.properties.inference_id === id)",
            arg=[inference_id, event_type],
            timeout=30_000,
        )

    await until_state("active")
    await frame.locator("#join").click()
    await until_state("joined")
    inner = page.frames[1]
    assert await frame.locator("#mute").is_visible()  # the fake mic was granted and is sent
    await inner.wait_for_function("document.getElementById('replica').srcObject !== null")
    await inner.evaluate(PROBE)

    # frames arrive and change while the replica is silent (its idle motion)
    await inner.wait_for_function("window.probe.frames >= 25", timeout=15_000)
    seen = await inner.evaluate("[probe.frames, probe.prints.size, probe.size]")
    assert seen[1] >= 3, f"{seen[0]} frames but only {seen[1]} distinct: a frozen still"
    assert 0 < seen[2][1] <= 512

    # an echo from the host, relayed by the page: spoken, its events in order, captioned
    await asyncio.sleep(0.5)
    quiet = await inner.evaluate("Math.max(...window.probe.energy.slice(-20))")
    mark = await inner.evaluate("window.probe.energy.length")
    await page.evaluate("(e) => window.send(e)", _echo(cid, "e1", "Hello from the host page."))
    await until_event("e1", "conversation.replica.stopped_speaking")
    await asyncio.sleep(0.3)  # the jitter buffer's last frames
    spoken = await inner.evaluate(f"Math.max(...window.probe.energy.slice({mark}))")
    assert spoken > 0.02 and spoken > 10 * quiet, (quiet, spoken)
    types = [e["event_type"] for e in await events_of("e1")]
    assert types == [
        "conversation.replica.started_speaking",
        "conversation.utterance",
        "conversation.utterance.streaming",
        "conversation.replica.stopped_speaking",
    ]
    seqs = [e["seq"] for e in await events_of("e1")]
    assert seqs == sorted(seqs)
    await frame.locator("#captions p", has_text="Hello from the host page").wait_for()

    # a malformed message from the host gets an error event; the call goes on
    await page.evaluate("() => window.send('not json')")
    await page.wait_for_function(
        "window.events.some(e => e.event_type === 'conversation.error')", timeout=10_000
    )

    # streamed echo audio from a backend on the Interactions WebSocket: spoken, and its events
    # reach the page (and through it the host) on the data channel
    mark = await inner.evaluate("window.probe.energy.length")
    await _echo_audio(http, cid, "a1")
    await until_event("a1", "conversation.replica.stopped_speaking")
    await asyncio.sleep(0.3)
    heard = await inner.evaluate(f"Math.max(...window.probe.energy.slice({mark}))")
    assert heard > 0.02 and heard > 10 * quiet, (quiet, heard)
    types = [e["event_type"] for e in await events_of("a1")]
    assert types[0] == "conversation.replica.started_speaking", types
    assert types[-1] == "conversation.replica.stopped_speaking", types

    # an interrupt stops a long echo: stopped_speaking says so, and the voice goes quiet
    await page.evaluate("(e) => window.send(e)", _echo(cid, "e2", LONG))
    await until_event("e2", "conversation.replica.started_speaking")
    await asyncio.sleep(0.5)
    await page.evaluate(
        "(cid) => window.send({message_type: 'conversation', conversation_id: cid, "
        "event_type: 'conversation.interrupt', properties: {}})",
        cid,
    )
    await until_event("e2", "conversation.replica.stopped_speaking")
    stopped = [e for e in await events_of("e2") if e["event_type"].endswith("stopped_speaking")]
    assert stopped[0]["properties"]["interrupted"] is True
    assert stopped[0]["properties"]["duration"] < 4.0
    await frame.locator("#captions p.cut", has_text="long sentence").wait_for()
    await asyncio.sleep(0.4)
    after = await inner.evaluate("window.probe.energy.length")
    await asyncio.sleep(0.4)
    silent = await inner.evaluate(f"Math.max(...window.probe.energy.slice({after}))")
    assert silent < spoken / 10, (silent, spoken)

    # mute, leave (the WHIP resource is deleted), join again
    await frame.locator("#mute").click()
    assert await frame.locator("#mute").get_attribute("aria-pressed") == "true"
    whip = f"/v2/conversations/{cid}/whip/"
    async with page.expect_response(
        lambda r: r.request.method == "DELETE" and whip in r.url
    ) as gone:
        await frame.locator("#leave").click()
    assert (await gone.value).status == 200
    await until_state("left")
    peers = worker.served[cid].call.peers
    for _ in range(100):  # the DELETE of the WHIP resource is sent as the page leaves
        if not peers:
            break
        await asyncio.sleep(0.05)
    assert not peers
    await frame.locator("#join").click()
    await until_state("joined")

    # /end: the page says the conversation ended
    assert (await http.post(f"/v2/conversations/{cid}/end")).status_code == 200
    await until_state("ended")
    assert await frame.locator("#join").is_hidden()

    # a wrong token, or none, is refused with the token-required state
    for wrong in (url.split("?")[0], url.split("?")[0] + "?t=wrong"):
        response = await page.goto(wrong)
        assert response is not None and response.status == 401
        assert await page.locator('#state[data-state="token-required"]').count() == 1
        assert response.headers.get("x-frame-options") is None  # embeddable
    assert errors == []
