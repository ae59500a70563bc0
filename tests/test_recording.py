"""``enable_recording``: a real call through a media worker, with an aiortc participant whose
microphone plays a tone, recorded as an MP4 in the blob store and announced with
``application.recording_ready``; a hard delete leaves nothing of it."""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection
from fastapi.testclient import TestClient

from likeness.conversation import service
from likeness.media_worker import MediaWorker
from likeness.models import Conversation
from likeness.providers.voice_process import VoiceProcess
from likeness.realtime.frames import OUTPUT_RATE_HZ, Tick, audio_span
from likeness.realtime.recorder import QUEUE_TICKS, Recorder
from likeness.rendering.frames import AudioFrame, VideoFrame
from likeness.runtime import Runtime
from likeness.webhooks import service as webhooks
from likeness.webhooks.signing import verify

from .conftest import Receiver
from .test_deletion import _mentions
from .test_realtime import Client, _replica_with_bundle

TONE_HZ = 440


class Microphone(AudioStreamTrack):
    """A participant's microphone: silence, or a tone while ``loud``."""

    def __init__(self) -> None:
        super().__init__()
        self.loud = False
        self._sent = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # silence, paced in real time (20 ms at 48 kHz)
        n = frame.samples
        if self.loud:
            t = (self._sent + np.arange(n)) / frame.sample_rate
            pcm = (0.3 * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
            loud = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            loud.sample_rate, loud.pts = frame.sample_rate, frame.pts
            loud.time_base = fractions.Fraction(1, frame.sample_rate)
            frame = loud
        self._sent += n
        return frame


class Speaking(Client):
    """The test_realtime client, with a microphone (audio sendrecv)."""

    def __init__(self) -> None:  # Client's fields, on a connection that sends audio
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = Microphone()
        self.pc.addTrack(self.mic)
        self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("app-message")
        self.frames: list[np.ndarray] = []
        self.audio: list[tuple[float, float]] = []
        self.events: list[dict[str, Any]] = []
        self._readers: list[asyncio.Task[None]] = []
        self.channel.on("message", lambda m: self.events.append(json.loads(m)))
        self.pc.on(
            "track", lambda track: self._readers.append(asyncio.ensure_future(self._read(track)))
        )


def _rms(audio: np.ndarray, rate: int, start_s: float, stop_s: float) -> float:
    piece = audio[int(start_s * rate) : int(stop_s * rate)]
    return float(np.sqrt(np.mean(piece**2)))


def test_a_recorded_call_is_stored_announced_served_and_deleted(
    trained: Any,
    voice: VoiceProcess,
    runtime: Runtime,
    client: TestClient,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replica_id = _replica_with_bundle(runtime, trained)
    body = {"replica_id": replica_id, "callback_url": receiver.url,
            "properties": {"enable_recording": True}}  # fmt: skip
    cid = client.post("/v2/conversations", json=body).json()["conversation_id"]
    plain = client.post("/v2/conversations", json={"replica_id": replica_id}).json()
    worker = MediaWorker(runtime, capacity=2)
    monkeypatch.setattr(worker, "_voice", voice)
    monkeypatch.setattr(voice, "close", lambda: None)
    sent: list[str] = []
    monkeypatch.setattr(worker, "_send", sent.extend)
    marks: dict[str, float] = {}  # on the call's clock, in seconds

    async def main() -> None:
        served = await worker.serve(cid)
        await worker.serve(plain["conversation_id"])  # no enable_recording: no recorder
        conversation = served.call.conversation
        fps = conversation.fps

        def mark(name: str) -> None:
            marks[name] = conversation.ticks / fps

        participant = Speaking()
        try:
            _, answer = await served.call.join(await participant.offer())
            await participant.accept(answer)
            await participant.until(
                lambda: len(participant.frames) >= 10 and participant.channel.readyState == "open"
            )
            mark("quiet")
            await asyncio.sleep(0.5)
            mark("mic_on")
            participant.mic.loud = True
            await asyncio.sleep(0.8)
            participant.mic.loud = False
            mark("mic_off")
            await asyncio.sleep(0.3)
            echo = {"message_type": "conversation", "event_type": "conversation.echo",
                    "conversation_id": cid, "properties": {"text": "Hello there."}}  # fmt: skip
            participant.channel.send(json.dumps(echo))
            await participant.until(
                lambda: participant.has("conversation.replica.started_speaking")
            )
            mark("echo_on")
            await participant.until(
                lambda: participant.has("conversation.replica.stopped_speaking")
            )
            mark("echo_off")
            height, width = participant.frames[-1].shape[:2]
            marks["width"], marks["height"] = width, height
            marks["fps"] = fps
        finally:
            await participant.close()
            await worker.end_all(service.END_ENDPOINT)
        marks["ticks"] = conversation.ticks / fps

    asyncio.run(main())

    path = runtime.storage.path(service.recording_key(cid))
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        size = (video.codec_context.width, video.codec_context.height)
        assert size == (marks["width"], marks["height"])  # as sent
        assert float(video.average_rate) == pytest.approx(marks["fps"], rel=0.01)
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].sample_rate
        pcm = np.concatenate(
            [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        ).astype(np.float32)
    duration = len(pcm) / rate
    # the call's, on its clock: every tick from its first (before the participant joined) to
    # its end. Not against wall time: a clock more than MAX_BEHIND_S late (a loaded machine)
    # restarts its schedule rather than bursting frames, so a call lasts fewer ticks than
    # seconds then, and its recording with it.
    assert duration == pytest.approx(marks["ticks"], abs=0.2)
    assert frames / marks["fps"] == pytest.approx(marks["ticks"], abs=0.2)
    assert _rms(pcm, rate, marks["quiet"], marks["mic_on"]) < 0.005  # silence
    mic = _rms(pcm, rate, marks["mic_on"] + 0.3, marks["mic_off"])
    assert mic > 0.1  # the participant's tone (0.3 peak: 0.21 rms), mixed in
    spectrum = np.abs(np.fft.rfft(pcm[int((marks["mic_on"] + 0.3) * rate) :][: rate // 2]))
    assert abs(np.argmax(spectrum) * 2 - TONE_HZ) <= 4  # it is the tone
    assert _rms(pcm, rate, marks["echo_on"], marks["echo_off"]) > 0.02  # the echo, spoken

    # announced (signed, §4.4) and shown with verbose=true
    secret = runtime.settings.webhook_secret
    assert secret
    for event_id in sent:
        webhooks.deliver(runtime.sessions, event_id, secret=secret, retry_delays_s=[],
                         timeout_s=2, allow_private=True)  # fmt: skip
    ready = [c for c in receiver.received() if c["json"]["event_type"].endswith("recording_ready")]
    assert len(ready) == 1
    verify(secret, ready[0]["body"], ready[0]["headers"])
    props = ready[0]["json"]["properties"]
    assert props == {
        "bucket_name": "likeness-local",
        "s3_key": f"conversations/{cid}/recording.mp4",
        "duration": pytest.approx(duration, abs=0.1),
    }
    events = client.get(f"/v2/conversations/{cid}?verbose=true").json()["events"]
    assert [e["properties"] for e in events if e["event_type"].endswith("recording_ready")] == [
        ready[0]["json"]["properties"]
    ]

    # served by the API (x-api-key), and nothing recorded without the property
    got = client.get(f"/v2/conversations/{cid}/recording")
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
    assert got.content == path.read_bytes()
    other = client.get(f"/v2/conversations/{plain['conversation_id']}/recording")
    assert other.status_code == 404
    assert other.json()["message"] == "This conversation has no recording"
    assert not runtime.storage.path(service.work_key(plain["conversation_id"])).exists()
    keyless = TestClient(client.app).get(f"/v2/conversations/{cid}/recording")
    assert keyless.status_code == 401

    data = runtime.settings.resolved_data_dir
    assert _mentions(data, cid)
    assert client.delete(f"/v2/conversations/{cid}?hard=true").status_code == 204
    assert _mentions(data, cid) == []
    with runtime.sessions() as session:
        assert session.get(Conversation, cid) is None


def _tick(index: int, fps: float = 25.0) -> Tick:
    start, stop = audio_span(index, fps)
    image = np.full((64, 80, 3), index % 256, np.uint8)
    tone = 0.5 * np.sin(2 * np.pi * TONE_HZ * np.arange(start, stop) / OUTPUT_RATE_HZ)
    return Tick(
        index,
        VideoFrame.of(image, index, fractions.Fraction(1, 25)),
        AudioFrame(tone.astype(np.float32), OUTPUT_RATE_HZ, start),
        speaking=False,
    )


def test_an_encoder_behind_drops_ticks_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The queue is bounded: ticks past it are dropped (logged), and the file keeps the clock:
    the dropped ticks' time is there, their sound silent."""
    recorder = Recorder(tmp_path / "call.mp4", 25.0)
    with caplog.at_level(logging.WARNING, "likeness.realtime.recorder"):
        for index in range(QUEUE_TICKS + 25):  # the encoder has not started: it is behind
            recorder.feed(_tick(index))
        assert recorder.dropped == 25
        assert "the encoder is behind, 1 items dropped" in caplog.text
        recorder.start()
        for index in range(QUEUE_TICKS + 25, QUEUE_TICKS + 50):
            while recorder._queue.qsize() > QUEUE_TICKS // 2:  # fed as fast as it encodes
                time.sleep(0.01)
            recorder.feed(_tick(index))
        duration = asyncio.run(recorder.finish())
    assert duration == pytest.approx((QUEUE_TICKS + 50) / 25.0)
    assert "25 items dropped in all" in caplog.text
    with av.open(str(tmp_path / "call.mp4")) as container:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    rate = OUTPUT_RATE_HZ
    gap = (QUEUE_TICKS / 25.0, (QUEUE_TICKS + 25) / 25.0)
    assert len(pcm) / rate == pytest.approx(duration, abs=0.05)
    assert _rms(pcm, rate, gap[0] + 0.1, gap[1] - 0.1) < 0.01  # silence where ticks dropped
    assert _rms(pcm, rate, gap[1] + 0.1, duration - 0.1) > 0.3  # the clock's sound after it
