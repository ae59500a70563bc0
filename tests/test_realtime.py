"""A live conversation without a network: the Interactions Protocol, and the replica (trained
from a fixture clip by the real pipeline) speaking echo text and streamed echo audio on the
conversation's own clock, interrupted, idling, greeting."""

from __future__ import annotations

import asyncio
import base64
import json
import queue as queues
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from likeness.engines.mouthbank import MouthbankModel
from likeness.media.audio import read_audio, resample, to_int16
from likeness.providers import sphinx_stream
from likeness.providers.base import Phone, SettledPhones
from likeness.providers.sphinx_live import SphinxLivePhones
from likeness.providers.voice_process import VoiceProcess
from likeness.realtime import protocol
from likeness.realtime.frames import Tick, audio_span
from likeness.realtime.session import GREEN, LiveConversation, Look
from likeness.realtime.speaker import MAX_SKIP_S, MAX_UTTERANCES, Speaker

from .conftest import API_KEY, FIXTURES

CID = "c123456789ab"
BILABIALS = {"P", "B", "M"}


def envelope(event_type: str, **props: Any) -> str:
    return json.dumps(
        {
            "message_type": "conversation",
            "event_type": event_type,
            "conversation_id": CID,
            "properties": props,
        }
    )


def audio_chunks(rate: int, seconds: float, chunk_s: float = 0.1) -> list[bytes]:
    samples, _ = read_audio(FIXTURES / "librivox_0880.wav", rate)
    pcm = to_int16(samples[: int(rate * seconds)]).tobytes()
    step = 2 * int(rate * chunk_s)
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


# -- the protocol --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        (json.dumps({"message_type": "conversation"}), "event_type is required"),
        (json.dumps({"event_type": "conversation.echo"}), "message_type"),
        (envelope("conversation.dance"), "unknown event_type"),
        (envelope("conversation.realtime_api"), "not supported"),
        (envelope("conversation.respond"), "properties.text is required"),
        (envelope("conversation.echo"), "properties.text is required"),
        (envelope("conversation.echo", text="   "), "properties.text is required"),
        (envelope("conversation.echo", modality="video"), "modality"),
        (envelope("conversation.echo", modality="audio", audio="@@@"), "not valid base64"),
        (envelope("conversation.echo", modality="audio", audio="AAAA"), "whole 16-bit"),
        (envelope("conversation.echo", audio="AAAA", sample_rate=12345), "sample_rate must be"),
        (envelope("conversation.echo", audio="AAAA", sample_rate="16000"), "sample_rate must be"),
        (envelope("conversation.echo", audio="AAAAAA==", done="yes"), "done must be a boolean"),
        ("x" * (protocol.MAX_MESSAGE_BYTES + 1), "too large"),
    ],
)
def test_a_malformed_message_is_refused_with_what_to_change(raw: str, says: str) -> None:
    with pytest.raises(protocol.BadMessage, match=says):
        protocol.parse(raw, CID)


def test_a_message_for_another_conversation_is_refused() -> None:
    raw = json.dumps({"message_type": "conversation", "event_type": "conversation.interrupt",
                      "conversation_id": "cother", "properties": {}})  # fmt: skip
    with pytest.raises(protocol.BadMessage, match="conversation_id"):
        protocol.parse(raw, CID)


def test_echo_messages_parse_to_typed_values() -> None:
    text = protocol.parse(envelope("conversation.echo", text="Hi.", inference_id="i1"), CID)
    assert text == protocol.EchoText("Hi.", "i1")
    pcm = np.arange(4, dtype=np.int16).tobytes()
    raw = envelope(
        "conversation.echo", modality="audio", audio=base64.b64encode(pcm).decode(),
        sample_rate=24000, inference_id="i2", done=False,
    )  # fmt: skip
    assert protocol.parse(raw, CID) == protocol.EchoAudio(pcm, 24000, "i2", False)
    assert protocol.parse(envelope("conversation.interrupt"), CID) == protocol.Interrupt()


def test_outbound_events_are_stamped_in_order() -> None:
    outbox = protocol.Outbox(CID, now=lambda: 1234.5)
    outbox.next_turn()
    first = outbox.event("conversation.replica.started_speaking", {}, "i1")
    error = outbox.error(protocol.BadMessage("nope", "conversation.echo"))
    assert first["seq"] == 1 and error["seq"] == 2
    assert first["turn_idx"] == 1 and first["timestamp"] == 1234.5
    assert first["inference_id"] == first["properties"]["inference_id"] == "i1"
    assert first["message_type"] == "conversation" and first["conversation_id"] == CID
    assert error["event_type"] == "conversation.error"
    assert error["properties"] == {"message": "nope", "event_type": "conversation.echo"}


# -- the speaker on its clock ------------------------------------------------------------------
def test_a_fresh_speaker_imports_the_resampler_before_its_first_answer() -> None:
    """The first sentence is resampled on the media thread; scipy.signal's import (~1 s)
    there stalled the first answer's clock. A fresh process (this one has it imported)
    makes a speaker and, before any speech, finds the import done by the voice's thread."""
    code = (
        "import sys, types\n"
        "from likeness.realtime.speaker import Speaker\n"
        "assert 'scipy.signal' not in sys.modules\n"
        "speaker = Speaker(types.SimpleNamespace(fps=25.0), lambda _t: [], lambda _h: None)\n"
        "speaker.warmed.result(timeout=60)\n"
        "print('scipy.signal' in sys.modules)\n"
        "speaker.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_the_replica_moves_while_silent_and_the_clock_is_one(model: MouthbankModel) -> None:
    speaker = Speaker(model.session(), voice=lambda _t: [], phones=SphinxLivePhones)
    ticks = [speaker.tick() for _ in range(30)]
    speaker.close()
    images = np.stack([t.video.image for t in ticks]).astype(np.int16)
    assert np.abs(np.diff(images, axis=0)).mean(axis=(1, 2, 3)).max() > 0.5  # never a still
    assert not any(t.speaking for t in ticks)
    assert all(not t.audio.samples.any() for t in ticks)
    # frame k and the audio from sample k * rate / fps: one clock for both
    for t in ticks:
        assert t.video.pts == t.index and t.audio.pts == audio_span(t.index, model.fps)[0]
        assert t.audio.pts + len(t.audio.samples) == audio_span(t.index + 1, model.fps)[0]


class Call:
    """A LiveConversation ticking on the real clock, with its events and ticks recorded."""

    def __init__(self, conversation: LiveConversation) -> None:
        self.conversation = conversation
        self.events: list[dict[str, Any]] = []
        self.ticks: list[Tick] = []
        self._events = conversation.events()
        self._media = conversation.media(size=1000)

    async def until(self, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
        async def wait() -> None:
            while not done():
                await asyncio.sleep(0.02)
                self._collect()

        await asyncio.wait_for(wait(), timeout_s)

    def _collect(self) -> None:
        while self._events._items:
            self.events.append(self._events._items.popleft())
        while self._media._items:
            self.ticks.append(self._media._items.popleft())

    def types(self, inference_id: str | None = None) -> list[str]:
        return [
            e["event_type"]
            for e in self.events
            if inference_id is None or e["properties"].get("inference_id") == inference_id
        ]

    def has(self, event_type: str, **props: Any) -> bool:
        return any(
            e["event_type"] == event_type
            and all(e["properties"].get(k) == v for k, v in props.items())
            for e in self.events
        )


def run_call(conversation: LiveConversation, script: Callable[[Call], Any]) -> Call:
    call = Call(conversation)

    async def main() -> None:
        clock = asyncio.create_task(conversation.run())
        try:
            await script(call)
        finally:
            conversation.close()
            await clock
        call._collect()

    asyncio.run(main())
    return call


def test_echo_text_is_spoken_with_its_events_in_order(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    session = model.session()
    mouths = spoken_mouths(session)
    conversation = LiveConversation(CID, session, voice.say, SphinxLivePhones)

    async def script(call: Call) -> None:
        conversation.handle(envelope("conversation.echo", text="Hello there. I am Bob.",
                                     inference_id="t1"))  # fmt: skip
        await call.until(lambda: call.has("conversation.replica.stopped_speaking"))

    call = run_call(conversation, script)
    assert call.types("t1") == [
        "conversation.replica.started_speaking",
        "conversation.utterance",
        "conversation.utterance.streaming",
        "conversation.utterance.streaming",
        "conversation.replica.stopped_speaking",
    ]
    seqs = [e["seq"] for e in call.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    utterance = call.events[1]["properties"]
    assert utterance == {
        "role": "replica",
        "speech": "Hello there. I am Bob.",
        "inference_id": "t1",
    }
    assert call.events[3]["properties"]["speech"] == "Hello there. I am Bob."
    stopped = call.events[-1]
    assert stopped["properties"]["interrupted"] is False and stopped["turn_idx"] == 1
    speaking = [t for t in call.ticks if t.speaking]
    assert stopped["properties"]["duration"] == pytest.approx(len(speaking) / model.fps)
    assert 1.0 < len(speaking) / model.fps < 4.0
    voiced = np.concatenate([t.audio.samples for t in speaking])
    assert np.sqrt(np.mean(voiced**2)) > 0.02  # the voice is heard
    assert not any(t.audio.samples.any() for t in call.ticks if not t.speaking)
    # The lips move: the mouths laid in while speaking, as the bank holds them (under the
    # mask). Not the frames' pixels: those move with the head too, as much or as little as
    # the stretch of the base loop that the speech happens to land on, which depends on how
    # long the voice took (the same take scored 12 to 46 on the frames, 23.3 here).
    assert len(mouths) == len(speaking)
    crops = model.bank_images[mouths].astype(np.float32) * model.mask[:, :, None]
    assert np.percentile(crops.std(axis=0), 99.9) > 15 and len(set(mouths)) >= 8


def spoken_mouths(session: Any) -> list[int]:
    """The bank crops that ``session`` (a MouthbankSession) lays in for speech frames, in
    order, as it renders them (idle frames are rendered outside pull())."""
    chosen: list[int] = []
    pull, select = session.pull, session._select
    pulling = False

    def spied_pull() -> Any:
        nonlocal pulling
        pulling = True
        try:
            return pull()
        finally:
            pulling = False

    def spied_select(*args: Any) -> int:
        crop = int(select(*args))
        if pulling:
            chosen.append(crop)
        return crop

    session.pull, session._select = spied_pull, spied_select
    return chosen


class PhoneSpy:
    """The real engine session, recording what it is told (to check that the live path
    renders from phones, never from loudness alone)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.fps = session.fps
        self.phones: list[Phone] = []
        self.fed_s = 0.0
        self.unphoned_frames = 0  # frames pulled past the phones known when they were made
        self.pulled = 0  # frames of the (one) utterance

    def push_audio(self, samples: np.ndarray, rate: int) -> None:
        self.fed_s += len(samples) / rate
        self._session.push_audio(samples, rate)

    def push_phones(self, phones: list[Phone]) -> None:
        self.phones = list(phones)
        self._session.push_phones(phones)

    def pull(self) -> Any:
        frames = self._session.pull()
        known_s = self.phones[-1].end_s if self.phones else 0.0
        for _ in frames:
            self.unphoned_frames += (self.pulled - 1) / self.fps > known_s
            self.pulled += 1
        return frames

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def test_streamed_echo_audio_is_spoken_with_live_phones(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    spy = PhoneSpy(model.session())
    conversation = LiveConversation(CID, spy, voice.say, SphinxLivePhones)  # type: ignore[arg-type]
    chunks = audio_chunks(24000, 3.0)

    async def script(call: Call) -> None:
        for i, chunk in enumerate(chunks):  # 100 ms chunks as a TTS streams them, in time
            conversation.handle(envelope(
                "conversation.echo", modality="audio", audio=base64.b64encode(chunk).decode(),
                sample_rate=24000, inference_id="a1", done=i == len(chunks) - 1,
            ))  # fmt: skip
            await asyncio.sleep(0.1)
        await call.until(lambda: call.has("conversation.replica.stopped_speaking"))

    call = run_call(conversation, script)
    assert call.types("a1") == [
        "conversation.replica.started_speaking",
        "conversation.replica.stopped_speaking",
    ]
    assert BILABIALS & {p.name for p in spy.phones}  # "...two months..." has its /m/
    assert spy.unphoned_frames == 0
    # It starts at its first sound (0.27 s in; kept from 0.03 s before it): the silence that
    # leads it is not replayed, and nothing after it is left out.
    start_s = 0.24
    speaking = [t for t in call.ticks if t.speaking]
    assert len(speaking) / model.fps == pytest.approx(3.0 - start_s, abs=0.05)
    heard = np.concatenate([t.audio.samples for t in speaking])
    sent, _ = read_audio(FIXTURES / "librivox_0880.wav", 48000)
    # the same speech comes out, at the output rate (not a loudness-shaped stand-in)
    n = min(len(heard), int(2.7 * 48000))
    start = int(start_s * 48000)
    assert np.corrcoef(heard[:n], sent[start : start + n])[0, 1] > 0.9


class InStep:
    """The live phone recogniser (sphinx_stream's own live settling) run in step with the
    audio: each feed returns once its piece is decoded and its settled phones are out, as on
    a machine with time to spare. For tests on a virtual clock."""

    def __init__(self, on_phones: Callable[[int, SettledPhones, bool], None]) -> None:
        self._out = on_phones
        self._next = 0

    def begin(self) -> int:
        self._pieces: queues.Queue[bytes | None] = queues.Queue()
        self._decoded = threading.Semaphore(0)
        utt = self._next

        def pieces() -> Iterator[bytes]:
            while (piece := self._pieces.get()) is not None:
                yield piece
                self._decoded.release()

        def recognise() -> None:
            settled = sphinx_stream.settled(pieces(), None, sphinx_stream.LIVE_SETTLE_S,
                                            sphinx_stream.LIVE_LOOK_EVERY_S, cut=True)  # fmt: skip
            for fresh, until in settled:
                self._out(utt, SettledPhones(tuple(Phone(*p) for p in fresh), until), False)
            self._out(utt, SettledPhones((), 0.0), True)
            self._decoded.release()

        self._thread = threading.Thread(target=recognise)
        self._thread.start()
        return utt

    def feed(self, samples: np.ndarray, sample_rate_hz: int) -> None:
        self._pieces.put(to_int16(resample(samples, sample_rate_hz, 16000)).tobytes())
        self._decoded.acquire()

    def finish(self) -> None:
        self._pieces.put(None)
        self._decoded.acquire()
        self._thread.join()
        self._next += 1

    def close(self) -> None:
        pass


def speak_in_real_time(model: MouthbankModel, chunks: list[bytes], rate: int) -> list[Tick]:
    """Streamed echo audio on a virtual clock: chunk n arrives at 0.1 n s, a tick every
    frame; the ticks until well after the last chunk."""
    speaker = Speaker(model.session(), voice=lambda _t: [], phones=InStep)
    ticks = []
    arrived = 0
    for k in range(int((len(chunks) * 0.1 + 1.5) * model.fps)):
        while arrived < len(chunks) and arrived * 0.1 <= k / model.fps + 1e-9:
            done = arrived == len(chunks) - 1
            speaker.say_audio(chunks[arrived], rate, "a1", done)
            arrived += 1
        ticks.append(speaker.tick())
    speaker.close()
    return ticks


def test_streamed_echo_audio_in_real_time_never_stalls_mid_speech(model: MouthbankModel) -> None:
    """Chunks that come in real time, phones that settle a chunk at a time: once the replica
    starts, it speaks every tick to the end (it starts with phones known far enough ahead),
    from the first sound on."""
    ticks = speak_in_real_time(model, audio_chunks(24000, 3.0), 24000)
    spoke = [t.index for t in ticks if t.speaking]
    assert spoke == list(range(spoke[0], spoke[0] + len(spoke)))  # no gap
    assert len(spoke) / model.fps == pytest.approx(3.0 - 0.24, abs=0.05)  # from the sound
    first = ticks[spoke[0]].audio.samples
    assert 0.003 < float(np.sqrt(np.mean(first**2))) < 0.05  # the soft onset, not silence


def test_a_quiet_voice_loses_at_most_half_a_second(model: MouthbankModel) -> None:
    """Streamed audio is cut to its first sound, but a voice too quiet to be found is not
    dropped: at most MAX_SKIP_S of it is skipped."""
    samples, _ = read_audio(FIXTURES / "librivox_0880.wav", 24000)
    quiet = samples[: 24000 * 2] * (0.005 / float(np.sqrt(np.mean(samples**2))))
    pcm = to_int16(quiet).tobytes()
    chunks = [pcm[i : i + 4800] for i in range(0, len(pcm), 4800)]
    ticks = speak_in_real_time(model, chunks, 24000)
    assert sum(t.speaking for t in ticks) / model.fps == pytest.approx(2.0 - MAX_SKIP_S, abs=0.05)


def test_interrupt_stops_speech_within_a_few_frames(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    conversation = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones)
    marks: dict[str, int] = {}

    async def script(call: Call) -> None:
        text = "This is a long sentence that will not be finished. And another one after it."
        conversation.handle(envelope("conversation.echo", text=text, inference_id="t2"))
        await call.until(lambda: sum(t.speaking for t in call.ticks) >= 8)
        marks["interrupt"] = conversation.ticks
        conversation.handle(envelope("conversation.interrupt"))
        await call.until(lambda: call.has("conversation.replica.stopped_speaking"))
        await asyncio.sleep(0.5)

    call = run_call(conversation, script)
    stopped = [e for e in call.events if e["event_type"].endswith("stopped_speaking")]
    assert [e["properties"]["interrupted"] for e in stopped] == [True]
    assert 0.2 < stopped[0]["properties"]["duration"] < 2.0
    after = call.ticks[marks["interrupt"] + 3 :]  # the tick in flight, then silence
    assert len(after) > 8
    assert not any(t.speaking or t.audio.samples.any() for t in after)


def test_interrupt_drops_what_the_tracks_still_hold(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    from likeness.realtime.webrtc.tracks import ReplicaAudioTrack

    conversation = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones)
    held: list[float] = []
    heard: list[float] = []

    async def script(call: Call) -> None:
        track = ReplicaAudioTrack(conversation)  # a sender that has fallen behind
        text = "This is a long sentence that will not be finished. And another one after it."
        conversation.handle(envelope("conversation.echo", text=text, inference_id="t3"))
        await call.until(lambda: sum(t.speaking for t in call.ticks) >= 12)
        held.extend(float(np.abs(t.audio.samples).max()) for t in track._ticks._items)
        conversation.handle(envelope("conversation.interrupt"))
        for _ in range(10):  # what the track sends next: 200 ms
            frame = await track.recv()
            heard.append(float(np.abs(frame.to_ndarray()).max()))
        track.stop()

    run_call(conversation, script)
    assert max(held) > 0.1  # speech was queued in the track
    assert max(heard) == 0  # and none of it is heard after the interrupt


def test_audio_leaves_in_20_ms_frames_on_the_clock(model: MouthbankModel) -> None:
    from likeness.realtime.webrtc.tracks import ReplicaAudioTrack

    async def main() -> list[Any]:
        conversation = LiveConversation(CID, model.session(), lambda _t: [], SphinxLivePhones)
        track = ReplicaAudioTrack(conversation)
        for _ in range(6):
            tick = conversation.speaker.tick()
            for queue in conversation._media:
                queue.put(tick)
        frames = [await track.recv() for _ in range(6)]
        conversation.speaker.close()
        return frames

    frames = asyncio.run(main())
    # one Opus packet per frame, each with its own timestamp, consecutive on the clock
    assert [f.samples for f in frames] == [960] * 6
    assert [f.pts for f in frames] == [960 * i for i in range(6)]
    assert all(f.sample_rate == 48000 for f in frames)


def test_a_bad_message_gets_an_error_and_the_call_goes_on(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    conversation = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones)

    async def script(call: Call) -> None:
        conversation.handle("{not json")
        conversation.handle(envelope("conversation.echo", audio="AAAA", sample_rate=11025))
        for rate in (16000, 24000):
            conversation.handle(envelope(
                "conversation.echo", audio="AAAAAA==", sample_rate=rate, inference_id="a9",
                done=False,
            ))  # fmt: skip
        conversation.handle(envelope("conversation.echo", text="Still here.", inference_id="t3"))
        await call.until(lambda: call.has("conversation.replica.stopped_speaking",
                                          inference_id="t3"))  # fmt: skip

    call = run_call(conversation, script)
    errors = [e["properties"]["message"] for e in call.events if e["event_type"].endswith("error")]
    assert errors[0] == "message is not JSON"
    assert errors[1].startswith("properties.sample_rate must be one of")
    assert "sample_rate changed within utterance a9" in errors[2]
    assert call.has("conversation.utterance", speech="Still here.")


def test_a_burst_of_echoes_is_bounded_and_answered(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    conversation = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones)

    async def script(call: Call) -> None:
        for i in range(100):
            conversation.handle(envelope("conversation.echo", text=f"Number {i}.",
                                         inference_id=f"b{i}"))  # fmt: skip
        await call.until(lambda: call.has("conversation.replica.started_speaking"))
        conversation.handle(envelope("conversation.interrupt"))
        conversation.handle(envelope("conversation.echo", text="Done.", inference_id="last"))
        await call.until(lambda: call.has("conversation.replica.stopped_speaking",
                                          inference_id="last"))  # fmt: skip

    call = run_call(conversation, script)
    refused = [e for e in call.events if e["event_type"] == "conversation.error"]
    assert len(refused) == 100 - MAX_UTTERANCES
    assert "too many utterances queued" in refused[0]["properties"]["message"]
    started = [e["properties"]["inference_id"] for e in call.events
               if e["event_type"].endswith("started_speaking")]  # fmt: skip
    assert started == ["b0", "last"]  # the queued rest was dropped by the interrupt


def test_empty_echoes_are_answered_and_do_not_hold_the_queue(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    """An echo whose audio is empty is over at once: more of them than the queue holds must
    not keep a later echo out."""
    conversation = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones)

    async def script(call: Call) -> None:
        for i in range(MAX_UTTERANCES + 2):
            conversation.handle(envelope("conversation.echo", audio="", sample_rate=16000,
                                         inference_id=f"e{i}", done=True))  # fmt: skip
            await call.until(lambda i=i: call.has("conversation.error", inference_id=f"e{i}"), 10)
        conversation.handle(envelope("conversation.echo", text="Still here.", inference_id="t"))
        await call.until(lambda: call.has("conversation.replica.stopped_speaking",
                                          inference_id="t"))  # fmt: skip

    call = run_call(conversation, script)
    assert call.has("conversation.utterance", speech="Still here.")


def test_the_greeting_is_spoken_when_the_first_participant_joins(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    conversation = LiveConversation(
        CID, model.session(), voice.say, SphinxLivePhones, greeting="Welcome."
    )

    async def script(call: Call) -> None:
        conversation.participant_joined()
        conversation.participant_joined()
        await call.until(lambda: call.has("conversation.replica.stopped_speaking"))
        await asyncio.sleep(0.3)

    call = run_call(conversation, script)
    assert [e["properties"]["speech"] for e in call.events
            if e["event_type"] == "conversation.utterance"] == ["Welcome."]  # fmt: skip


def test_frames_leave_scaled_down_and_on_green(model: MouthbankModel) -> None:
    conversation = LiveConversation(
        CID, model.session(), voice=lambda _t: [], phones=SphinxLivePhones,
        look=Look(max_height_px=150, greenscreen=True),
    )  # fmt: skip
    tick = conversation._tick()
    conversation._release()
    image = tick.video.image
    assert image.shape == (150, 200, 3)
    corner = image[:8, :8].reshape(-1, 3).astype(int)  # background, far from the person
    assert np.abs(corner - np.array(GREEN)).max() < 40


# -- over WebRTC: an aiortc client joins as a browser would --------------------------------------
class Client:
    """A receive-only WebRTC participant with the app-message channel, recording what arrives
    (decoded video frames, audio loudness, events) with the time it arrived."""

    def __init__(self) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("app-message")
        self.frames: list[np.ndarray] = []
        self.audio: list[tuple[float, float]] = []  # (arrival, rms)
        self.events: list[dict[str, Any]] = []
        self._readers: list[asyncio.Task[None]] = []
        self.channel.on("message", lambda m: self.events.append(json.loads(m)))
        self.pc.on(
            "track", lambda track: self._readers.append(asyncio.ensure_future(self._read(track)))
        )

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    self.frames.append(frame.to_ndarray(format="rgb24"))
                else:
                    pcm = frame.to_ndarray().astype(np.float32) / 32768.0
                    self.audio.append((loop.time(), float(np.sqrt(np.mean(pcm**2)))))
        except MediaStreamError:
            pass

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def send(self, event_type: str, **props: Any) -> None:
        self.channel.send(envelope(event_type, **props))

    async def until(self, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
        async def wait() -> None:
            while not done():
                await asyncio.sleep(0.02)

        await asyncio.wait_for(wait(), timeout_s)

    def has(self, event_type: str, **props: Any) -> bool:
        return any(
            e["event_type"] == event_type
            and all(e["properties"].get(k) == v for k, v in props.items())
            for e in self.events
        )

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()


def test_a_webrtc_participant_sees_hears_and_drives_the_replica(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    from likeness.realtime.call import Call

    async def main() -> None:
        conversation = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones)
        call = Call(conversation, ice=[])
        call.start()
        client = Client()
        try:
            _, answer = await call.join(await client.offer())
            assert "a=candidate" in answer and "typ host" in answer  # host candidates only
            await client.accept(answer)
            await client.until(
                lambda: len(client.frames) >= 15 and client.channel.readyState == "open"
            )
            idle = np.stack(client.frames[:15]).astype(np.int16)
            assert np.abs(np.diff(idle, axis=0)).mean(axis=(1, 2, 3)).max() > 0.3  # it moves
            assert max(rms for _, rms in client.audio) < 0.01  # and is silent

            client.send("conversation.echo", text="Hello there.", inference_id="w1")
            await client.until(lambda: client.has("conversation.replica.stopped_speaking"))
            assert [e["event_type"] for e in client.events] == [
                "conversation.replica.started_speaking",
                "conversation.utterance",
                "conversation.utterance.streaming",
                "conversation.replica.stopped_speaking",
            ]
            assert max(rms for _, rms in client.audio) > 0.02  # the voice arrived

            client.send("conversation.dance")
            await client.until(lambda: client.has("conversation.error"))
            for i, chunk in enumerate(chunks := audio_chunks(16000, 1.5)):
                client.send("conversation.echo", modality="audio",
                            audio=base64.b64encode(chunk).decode(), sample_rate=16000,
                            inference_id="w2", done=i == len(chunks) - 1)  # fmt: skip
            await client.until(
                lambda: client.has("conversation.replica.stopped_speaking", inference_id="w2")
            )

            long = "This sentence goes on and on and will be cut short. So will this one."
            client.send("conversation.echo", text=long, inference_id="w3")
            await client.until(
                lambda: client.has("conversation.replica.started_speaking", inference_id="w3")
            )
            await asyncio.sleep(0.4)
            client.send("conversation.interrupt")
            await client.until(
                lambda: client.has("conversation.replica.stopped_speaking", inference_id="w3")
            )
            stopped = client.events[-1]["properties"]
            assert stopped["interrupted"] is True
            settled = asyncio.get_running_loop().time() + 0.3  # what was in flight plays out
            await asyncio.sleep(0.8)
            after = [rms for t, rms in client.audio if t > settled]
            assert after and max(after) < 0.01  # silence after the interrupt
            assert len(client.frames) > 40 and not client.frames[-1].shape[0] > 512
        finally:
            await client.close()
            await call.close()

    asyncio.run(main())


def test_a_bad_offer_and_a_participant_too_many_are_refused(model: MouthbankModel) -> None:
    from likeness.realtime.call import Call, Full
    from likeness.realtime.webrtc.peer import BadOffer

    async def main() -> None:
        conversation = LiveConversation(CID, model.session(), lambda _t: [], SphinxLivePhones)
        call = Call(conversation, ice=[], max_participants=2)
        call.start()
        first, second = Client(), Client()
        try:
            with pytest.raises(BadOffer, match="SDP offer"):
                await call.join("hello, I am not SDP")
            with pytest.raises(BadOffer, match="cannot be read"):
                await call.join("v=0\r\nm=garbage\r\n")
            _, answer = await call.join(await first.offer())
            await first.accept(answer)
            with pytest.raises(Full, match="at most 2 participants"):
                await call.join(await second.offer())
            assert len(call.peers) == 1
        finally:
            await first.close()
            await second.close()
            await call.close()

    asyncio.run(main())


# -- through the API and a media worker, as deployed ------------------------------------------
async def _serving(app: Any) -> tuple[Any, asyncio.Task[None], str]:
    """A real HTTP server on a loopback port, in this loop."""
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, f"127.0.0.1:{sock.getsockname()[1]}"


def test_join_through_the_api_served_by_a_media_worker(
    trained: Path, voice: VoiceProcess, runtime: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from websockets.asyncio.client import connect

    from likeness.app import create_app
    from likeness.conversation.workers import WorkerAddress, record
    from likeness.media_worker import MediaWorker, build_media_app
    from likeness.models import Conversation

    replica_id = _replica_with_bundle(runtime, trained)
    created = client.post("/v2/conversations", json={
        "replica_id": replica_id, "properties": {"participant_left_timeout": 0},
    })  # fmt: skip
    assert created.status_code == 200, created.text
    cid = created.json()["conversation_id"]
    worker = MediaWorker(runtime, capacity=2)
    monkeypatch.setattr(worker, "_voice", voice)  # the module's warm voice (seconds to load)
    monkeypatch.setattr(voice, "close", lambda: None)
    say = {"message_type": "conversation", "event_type": "conversation.echo",
           "conversation_id": cid, "properties": {"text": "Hi.", "inference_id": "s1"}}  # fmt: skip

    async def main() -> None:
        media, media_task, media_at = await _serving(build_media_app(worker, "secret"))
        record(runtime.settings.resolved_data_dir, WorkerAddress(f"http://{media_at}", "secret"), 2)
        api, api_task, api_at = await _serving(create_app(runtime=runtime))
        browser = Client()
        http = httpx.AsyncClient(base_url=f"http://{api_at}")
        try:
            whip = f"/v2/conversations/{cid}/whip"
            wrong = await http.post(whip, content="v=0", headers={"content-type": "text/plain"})
            assert wrong.status_code == 400 and "application/sdp" in wrong.json()["message"]
            sdp = {"content-type": "application/sdp"}
            garbage = await http.post(whip, content="not an offer", headers=sdp)
            assert garbage.status_code == 400 and "SDP offer" in garbage.json()["message"]
            unknown = await http.post("/v2/conversations/cnope/whip", content="v=0", headers=sdp)
            assert unknown.status_code == 404

            joined = await http.post(whip, content=await browser.offer(), headers=sdp)
            assert joined.status_code == 201, joined.text
            assert joined.headers["content-type"].startswith("application/sdp")
            location = joined.headers["location"]
            assert location.startswith(f"{whip}/")
            await browser.accept(joined.text)
            await browser.until(lambda: len(browser.frames) >= 5)

            ws_url = f"ws://{api_at}/v2/conversations/{cid}/interactions"
            async with connect(ws_url) as keyless:  # no x-api-key: told, then closed
                refusal = json.loads(await keyless.recv())
                assert refusal["message"] == "Invalid access token"
            async with connect(ws_url, additional_headers={"x-api-key": API_KEY}) as backend:
                await backend.send(json.dumps(say))
                await backend.send("nonsense")
                heard: list[str] = []
                while "conversation.replica.stopped_speaking" not in heard:
                    event = json.loads(await asyncio.wait_for(backend.recv(), 30))
                    heard.append(event["event_type"])
                assert heard == [
                    "conversation.error",
                    "conversation.replica.started_speaking",
                    "conversation.utterance",
                    "conversation.utterance.streaming",
                    "conversation.replica.stopped_speaking",
                ]
            # the browser's data channel got the same events
            await browser.until(lambda: browser.has("conversation.replica.stopped_speaking"))

            assert (await http.delete(location)).status_code == 200
            assert (await http.delete(location)).status_code == 404

            def ended() -> bool:
                with runtime.sessions() as session:
                    return session.get(Conversation, cid).status == "ended"

            await browser.until(ended, timeout_s=15)  # participant_left_timeout 0
        finally:
            await browser.close()
            await http.aclose()
            api.should_exit = media.should_exit = True
            await asyncio.gather(api_task, media_task)
            await worker.end_all("test over")

    asyncio.run(main())
    with runtime.sessions() as session:
        row = session.get(Conversation, cid)
        assert row.shutdown_reason == "participant_left_timeout reached"
        assert [e["event_type"] for e in row.events][:2] == [
            "system.replica_joined", "system.shutdown",
        ]  # fmt: skip


def test_audio_only_sends_no_video(model: MouthbankModel) -> None:
    from likeness.realtime.call import Call

    async def main() -> None:
        conversation = LiveConversation(CID, model.session(), lambda _t: [], SphinxLivePhones)
        call = Call(conversation, ice=[], audio_only=True)
        call.start()
        client = Client()
        try:
            _, answer = await call.join(await client.offer())
            await client.accept(answer)
            await client.until(lambda: len(client.audio) >= 25)
            assert client.frames == []
            video = answer.split("m=video", 1)[1]
            assert "a=sendonly" not in video and "a=sendrecv" not in video
        finally:
            await client.close()
            await call.close()

    asyncio.run(main())


def _replica_with_bundle(runtime: Any, trained: Path) -> str:
    import shutil

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


def test_whip_needs_the_meeting_token_and_a_media_worker(
    trained: Path, runtime: Any, client: Any
) -> None:
    replica_id = _replica_with_bundle(runtime, trained)
    created = client.post("/v2/conversations", json={"replica_id": replica_id,
                                                     "require_auth": True})  # fmt: skip
    cid, token = created.json()["conversation_id"], created.json()["meeting_token"]
    sdp = {"content-type": "application/sdp"}
    whip = f"/v2/conversations/{cid}/whip"
    for url in (whip, f"{whip}?t=wrong"):
        refused = client.post(url, content="v=0", headers=sdp)
        assert refused.status_code == 401
        assert refused.json()["message"] == "This conversation needs its meeting token"
    # the right token, but no media worker is running: a clear 503, not a hang
    alone = client.post(whip, content="v=0", headers={**sdp, "authorization": f"Bearer {token}"})
    assert alone.status_code == 503 and "No media worker" in alone.json()["message"]
    # a backend's WebSocket is authorised by its API key: no meeting token asked
    ws_url = f"/v2/conversations/{cid}/interactions"
    with client.websocket_connect(ws_url, headers={"x-api-key": API_KEY}) as backend:
        assert "No media worker" in backend.receive_json()["message"]
    assert client.post(f"/v2/conversations/{cid}/end").status_code == 200
    ended = client.post(f"{whip}?t={token}", content="v=0", headers=sdp)
    assert ended.status_code == 400 and ended.json()["message"] == "This conversation has ended"


def test_the_media_worker_ends_calls_on_their_timeouts(
    trained: Path, voice: VoiceProcess, runtime: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from likeness.media_worker import MediaWorker, NotHere
    from likeness.models import Conversation

    replica_id = _replica_with_bundle(runtime, trained)
    absent = client.post("/v2/conversations", json={
        "replica_id": replica_id, "properties": {"participant_absent_timeout": 1},
    }).json()["conversation_id"]  # fmt: skip
    too_long = client.post("/v2/conversations", json={
        "replica_id": replica_id, "properties": {"max_call_duration": 2},
    }).json()["conversation_id"]  # fmt: skip
    worker = MediaWorker(runtime, capacity=2)
    monkeypatch.setattr(worker, "_voice", voice)
    monkeypatch.setattr(voice, "close", lambda: None)

    async def main() -> None:
        await worker.serve(absent)
        await worker.serve(too_long)
        with pytest.raises(NotHere) as full:
            await worker.serve("canother")
        assert full.value.status == 503  # capacity 2
        deadline = time.monotonic() + 20
        while worker.served and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await worker.end_all("test over")

    asyncio.run(main())
    with runtime.sessions() as session:
        reasons = {c: session.get(Conversation, c).shutdown_reason for c in (absent, too_long)}
    assert reasons == {
        absent: "participant_absent_timeout reached",
        too_long: "max_call_duration reached",
    }


def test_a_conversation_nobody_joins_ends_on_its_timeouts(runtime: Any, client: Any) -> None:
    from datetime import timedelta

    from likeness.conversation import service
    from likeness.kit.clock import utcnow
    from likeness.kit.db import transaction
    from likeness.models import Conversation

    from .test_conversations import make_replica

    replica_id = make_replica(runtime)

    def create(**props: int) -> str:
        body = {"replica_id": replica_id, "properties": props}
        return str(client.post("/v2/conversations", json=body).json()["conversation_id"])

    absent, too_long = create(participant_absent_timeout=60), create(max_call_duration=30)
    with transaction(runtime.sessions) as session:
        assert service.end_unjoined(session, utcnow() + timedelta(seconds=20)) == []
    claim = service.claim(runtime.sessions, too_long, 600)  # served: its worker watches it
    assert claim is not None
    later = utcnow() + timedelta(seconds=200)  # past 60 and 30 s, not the default 300

    def reasons() -> list[str | None]:
        with transaction(runtime.sessions) as session:
            service.end_unjoined(session, later)
        with runtime.sessions() as session:
            return [session.get(Conversation, c).shutdown_reason for c in (absent, too_long)]

    assert reasons() == ["participant_absent_timeout reached", None]
    assert claim.release()
    assert reasons() == ["participant_absent_timeout reached", "max_call_duration reached"]
