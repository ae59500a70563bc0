"""A live conversation measured at the client: an aiortc participant joins a replica served by
the real realtime stack (LiveConversation + WebRTC) and times what it receives.

    .venv/bin/python benchmarks/conversation.py [--bundle DIR] [--max-streams N]

Default replica: the 1024x768 face-512 one of benchmarks/streaming.py (trained once, cached),
streamed at 512 px tall. Prints, for one conversation: echo text -> its first speaking frame
and its first loud audio at the client, echo audio's first speech chunk -> the same, interrupt
-> silence, frames/s received, and ticks the mouth stalled in speech. A frame at the client is
known by its RTP timestamp (the tick it shows); the audio is later than its frame by the aiortc
client's own jitter buffer, a fixed 4 packets (80 ms; a browser's adapts, ~20-40 ms on a LAN,
and plays both together). Echo audio is sent in real time (100 ms chunks on a fixed schedule);
its speech starts 0.27 s in, in the third chunk, so its figures run from that chunk's sending.

Each latency is split into stages, stamped in the server on the same clock (one process):
message in, the voice's first piece (synthesised and timed) or the first settled phones, the
first speaking tick made (rendered, on the clock), and the rest (queue to the track, encode,
RTP, the client's jitter buffer and decode) up to the client.

Then N = 2, 3, ... conversations at once, their clients in a separate process (as browsers
would be): frames/s each receives, and the server's CPU (its process and its children: the
voice, each call's phone recogniser) and RSS per conversation, until one falls below 25 fps.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import multiprocessing
import os
import resource
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

LOUD, QUIET = 0.02, 0.005  # rms of a received 20 ms audio frame
CID = "cbench"
SPEECH_CHUNK = 2  # the 100 ms chunk that holds the clip's first speech sample (0.27 s)
VIDEO_CLOCK_HZ = 90000  # RTP's video clock


class Stamps:
    """When each stage of the server first happened (perf_counter), per message sent; the
    tick each utterance started at; whether each tick spoke."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.started_tick = -1
        self.speaking: list[bool] = []
        self.first_sent_tick = -1  # the first tick the video track sent

    def mark(self, name: str) -> None:
        self.at.setdefault(name, time.perf_counter())

    def reset(self) -> None:
        self.at.clear()
        self.started_tick = -1

    def stalls(self) -> int:
        """Ticks that did not speak between two that did (the voice and mouth paused)."""
        spoke = [k for k, s in enumerate(self.speaking) if s]
        gaps = [b - a - 1 for a, b in itertools.pairwise(spoke) if 1 < b - a < 10]
        return sum(gaps)


def instrumented(live: Any, stamps: Stamps) -> None:
    """Stamps the server's stages of ``live`` (wrapping its voice, phones, ticks, events)."""
    from likeness.realtime.frames import Started, Stopped
    from likeness.realtime.webrtc.tracks import ReplicaVideoTrack

    speaker = live.speaker
    say, phones_factory, on_speaker = speaker._voice, speaker._phones_factory, live._on_speaker
    make_tick = live._tick

    def timed_say(text: str) -> Any:
        for chunk in say(text):
            stamps.mark("voice")
            yield chunk

    def timed_phones(on_phones: Any) -> Any:
        def heard(utt: int, settled: Any, final: bool) -> None:
            if any(p.name != "SIL" for p in settled.phones):  # speech, not the silence first
                stamps.mark("phones")
            on_phones(utt, settled, final)

        return phones_factory(heard)

    def timed_events(event: Any) -> None:
        if isinstance(event, Started):
            stamps.mark("tick")
            stamps.started_tick = live.ticks
        if isinstance(event, Stopped) and event.interrupted:
            stamps.mark("silent tick")
        on_speaker(event)

    def timed_tick() -> Any:
        tick = make_tick()
        stamps.speaking.append(tick.speaking)
        return tick

    recv = ReplicaVideoTrack.recv

    async def timed_recv(track: Any) -> Any:
        frame = await recv(track)
        if stamps.first_sent_tick < 0:
            stamps.first_sent_tick = int(frame.pts)
        return frame

    speaker._voice, speaker._phones_factory = timed_say, timed_phones
    live._on_speaker, live._tick = timed_events, timed_tick
    ReplicaVideoTrack.recv = timed_recv  # type: ignore[method-assign]  # this benchmark's one call


def stages(since: float, stamps: Stamps, names: list[str], client_s: float) -> str:
    """'a 12 + b 30 + ... ms': each stage's share of the latency from ``since``."""
    parts, last = [], since
    for name in names:
        if name in stamps.at:
            parts.append(f"{name} {(stamps.at[name] - last) * 1000:.0f}")
            last = stamps.at[name]
    parts.append(f"to client {(since + client_s - last) * 1000:.0f}")
    return " + ".join(parts) + " ms"


def envelope(event_type: str, **props: Any) -> str:
    return json.dumps(
        {
            "message_type": "conversation",
            "event_type": event_type,
            "conversation_id": CID,
            "properties": props,
        }
    )


class Participant:
    def __init__(self) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("app-message")
        self.video: list[tuple[float, int]] = []  # (arrival, RTP timestamp)
        self.audio: list[tuple[float, float]] = []  # (arrival, rms)
        self.pc.on("track", lambda t: asyncio.ensure_future(self._read(t)))

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                now = time.perf_counter()
                if track.kind == "video":
                    self.video.append((now, int(frame.pts)))
                else:
                    pcm = frame.to_ndarray().astype(np.float32) / 32768.0
                    self.audio.append((now, float(np.sqrt(np.mean(pcm**2)))))
        except MediaStreamError:
            pass

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answered(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        while self.channel.readyState != "open" or len(self.video) < 10:
            await asyncio.sleep(0.01)

    async def join(self, call: Any) -> None:
        _, answer = await call.join(await self.offer())
        await self.answered(answer)

    async def first(self, since: float, loud: bool, timeout_s: float = 10.0) -> float:
        """Seconds from ``since`` to the first audio frame that is loud (or quiet)."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            for at, rms in self.audio:
                if at > since and (rms > LOUD if loud else rms < QUIET):
                    return at - since
            await asyncio.sleep(0.005)
        return float("nan")

    async def frame_of(self, tick: Any, first_sent: int, fps: float, since: float) -> float:
        """Seconds from ``since`` to the arrival of the frame of tick ``tick()`` (or the next
        one that came: a late frame may be dropped on the way)."""
        per_tick = VIDEO_CLOCK_HZ / fps
        deadline = time.perf_counter() + 10.0
        while time.perf_counter() < deadline:
            if tick() >= 0:
                origin = self.video[0][1] - first_sent * per_tick
                for at, pts in self.video:
                    if round((pts - origin) / per_tick) >= tick():
                        return at - since
            await asyncio.sleep(0.005)
        return float("nan")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def one(model: Any, voice: Any, max_height: int) -> None:
    from likeness.media.audio import read_audio, to_int16
    from likeness.providers.sphinx_live import SphinxLivePhones
    from likeness.realtime.call import Call
    from likeness.realtime.session import LiveConversation, Look

    live = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones, Look(max_height))
    stamps = Stamps()
    instrumented(live, stamps)
    call = Call(live, ice=[])
    call.start()
    client = Participant()
    await client.join(call)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    frames0 = len(client.video)

    def started() -> int:
        return stamps.started_tick

    async def frame_and_audio(sent: float) -> tuple[float, float]:
        frame = asyncio.ensure_future(
            client.frame_of(started, stamps.first_sent_tick, model.fps, sent)
        )
        audio = await client.first(sent, loud=True)
        return await frame, audio

    stamps.reset()
    sent = time.perf_counter()
    client.channel.send(envelope("conversation.echo", text="Hello there, how are you today?"))
    text_frame_s, text_s = await frame_and_audio(sent)
    text_stages = stages(sent, stamps, ["voice", "tick"], text_s)
    await asyncio.sleep(3.0)

    samples, _ = read_audio(Path(__file__).resolve().parent.parent / "tests" / "fixtures"
                            / "librivox_0880.wav", 24000)  # fmt: skip
    pcm = to_int16(samples[: 24000 * 3]).tobytes()
    step = 4800  # 100 ms chunks, as pipecat streams them
    stamps.reset()
    t0 = time.perf_counter()
    for n, i in enumerate(range(0, len(pcm), step)):
        await asyncio.sleep(max(0.0, t0 + 0.1 * n - time.perf_counter()))  # real time
        chunk = base64.b64encode(pcm[i : i + step]).decode()
        if n == SPEECH_CHUNK:
            sent = time.perf_counter()
        client.channel.send(envelope(
            "conversation.echo", modality="audio", audio=chunk, sample_rate=24000,
            inference_id="a1", done=i + step >= len(pcm),
        ))  # fmt: skip
        if n == SPEECH_CHUNK:
            audio_task = asyncio.ensure_future(frame_and_audio(sent))
    audio_frame_s, audio_s = await audio_task
    audio_stages = stages(sent, stamps, ["phones", "tick"], audio_s)
    await asyncio.sleep(1.0)

    client.channel.send(envelope("conversation.echo", text="This is a long sentence to be cut."))
    await client.first(time.perf_counter(), loud=True)
    await asyncio.sleep(0.5)
    stamps.reset()
    sent = time.perf_counter()
    client.channel.send(envelope("conversation.interrupt"))
    interrupt_s = await client.first(sent, loud=False)
    interrupt_stages = stages(sent, stamps, ["silent tick"], interrupt_s)
    await asyncio.sleep(1.0)

    wall = time.perf_counter() - wall0
    fps = (len(client.video) - frames0) / wall
    cpu = (time.process_time() - cpu0) / wall * 100
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"echo text -> first speaking frame at the client: {_ms(text_frame_s)}; "
          f"its first loud audio: {_ms(text_s)}")  # fmt: skip
    print(f"    {text_stages}")
    print(
        "echo audio, the chunk with its first speech sample -> first lip-synced frame at the "
        f"client: {_ms(audio_frame_s)}; its first loud audio: {_ms(audio_s)}"
    )
    print(f"    {audio_stages}")
    print(f"interrupt -> silence at the client: {_ms(interrupt_s)}")
    print(f"    {interrupt_stages}")
    print(f"frames/s received: {fps:.1f}; ticks the speech stalled: {stamps.stalls()}; "
          f"process CPU {cpu:.0f} % of a core (client included)")  # fmt: skip
    print(f"peak RSS of the process: {rss_mb:.0f} MB")
    await client.pc.close()
    await call.close()


# -- concurrent conversations, their clients in another process --------------------------------
def clients_main(n: int, pipe: Connection) -> None:
    """The client process: ``n`` participants, offers out and answers in through ``pipe``;
    each says a long echo, then the frames/s each received over 5 s go back."""

    async def run() -> list[float]:
        clients = [Participant() for _ in range(n)]
        for client in clients:
            pipe.send(await client.offer())
            await client.answered(pipe.recv())
        pipe.send("joined")
        pipe.recv()  # the server is measuring
        text = "Counting frames while I talk. " * 3
        for client in clients:
            client.channel.send(envelope("conversation.echo", text=text))
        start = [len(c.video) for c in clients]
        await asyncio.sleep(5.0)
        rates = [(len(c.video) - s) / 5.0 for c, s in zip(clients, start, strict=True)]
        for client in clients:
            await client.pc.close()
        return rates

    pipe.send(asyncio.run(run()))


def _children() -> list[int]:
    pids = []
    for task in Path("/proc/self/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_tree(but: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of this process and its children, but the one ``but``."""
    cpu, rss = time.process_time(), _rss_mb(os.getpid())
    for pid in _children():
        if pid != but:
            with contextlib.suppress(FileNotFoundError):  # ended meanwhile
                cpu, rss = cpu + _cpu_s(pid), rss + _rss_mb(pid)
    return cpu, rss


async def concurrent(
    model: Any, voice: Any, max_height: int, n: int
) -> tuple[list[float], float, float]:
    """(frames/s each client received, server CPU % of a core and RSS MB per conversation)."""
    from likeness.providers.sphinx_live import SphinxLivePhones
    from likeness.realtime.call import Call
    from likeness.realtime.session import LiveConversation, Look

    mine, theirs = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=clients_main, args=(n, theirs))
    process.start()
    loop = asyncio.get_running_loop()
    _, rss0 = server_tree(process.pid or 0)
    calls = []
    for _ in range(n):
        live = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones, Look(max_height))
        call = Call(live, ice=[])
        call.start()
        offer = await loop.run_in_executor(None, mine.recv)
        mine.send((await call.join(offer))[1])
        calls.append(call)
    await loop.run_in_executor(None, mine.recv)  # all joined
    cpu0, _ = server_tree(process.pid or 0)
    wall0 = time.perf_counter()
    mine.send("go")
    rates = await loop.run_in_executor(None, mine.recv)
    cpu1, rss1 = server_tree(process.pid or 0)
    wall = time.perf_counter() - wall0
    for call in calls:
        await call.close()
    process.join()
    return rates, (cpu1 - cpu0) / wall * 100 / n, (rss1 - rss0) / n


# -- the full pipeline: a participant talks, the replica answers ---------------------------------
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SAID = {  # the LibriVox clips' transcripts (Debian pocketsphinx-testdata)
    "librivox_0870.wav": "and mister john dashwood had then leisure to consider how much there "
    "might be prudently in his power to do for them",
    "librivox_0880.wav": "he was not an ill disposed young man",
}
TURN_STAGES = ["vad", "asr", "llm", "sentence", "first frame"]


class Microphone:
    """A participant's microphone as an aiortc track: 20 ms frames of 48 kHz in real time,
    silence but for what ``say`` queues; ``speech_end`` is stamped when the frame holding the
    last speech sample leaves."""

    def __init__(self) -> None:
        from aiortc.mediastreams import MediaStreamTrack

        mic = self

        class Track(MediaStreamTrack):
            kind = "audio"

            async def recv(self) -> Any:
                return await mic.next_frame()

        self.track = Track()
        self._pending = np.zeros(0, np.int16)
        self._end_in = -1  # samples until the last speech sample leaves
        self._start: float | None = None
        self._sent = 0
        self.speech_end = 0.0

    def say(self, samples_48k: np.ndarray, speech_end: int) -> None:
        from likeness.media.audio import to_int16

        self._end_in = len(self._pending) + speech_end
        self._pending = np.concatenate([self._pending, to_int16(samples_48k)])

    async def next_frame(self) -> Any:
        from fractions import Fraction

        import av

        if self._start is None:
            self._start = time.perf_counter()
        due = self._start + self._sent / 48000
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        piece, self._pending = self._pending[:960], self._pending[960:]
        piece = np.concatenate([piece, np.zeros(960 - len(piece), np.int16)])
        if 0 <= self._end_in < 960:
            self.speech_end = time.perf_counter()
        self._end_in -= 960
        frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self._sent, Fraction(1, 48000)
        self._sent += 960
        return frame


def _speech_end(samples: np.ndarray, rate: int) -> int:
    """The sample after the clip's last 20 ms of speech (rms over 0.01)."""
    step = rate // 50
    loud = [i for i in range(0, len(samples) - step, step)
            if np.sqrt(np.mean(samples[i : i + step] ** 2)) > 0.01]  # fmt: skip
    return loud[-1] + step if loud else len(samples)


def _wer(reference: str, heard: str) -> float:
    ref = reference.split()
    hyp = "".join(c for c in heard.lower() if c.isalnum() or c.isspace()).split()
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[:], i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return d[-1] / len(ref)


async def full_turns(model: Any, voice: Any, max_height: int, llm_url: str | None) -> None:
    """Each LibriVox clip said into the microphone through WebRTC; the replica answers with
    the offline LLM (or ``llm_url``, an OpenAI-compatible endpoint). Prints, per turn, the
    person's end of speech -> the first loud replica audio at the client, split into the
    server's stages: the VAD deciding the turn ended (its pause setting), the last words
    recognised, the LLM's first piece, the first sentence handed to the voice, the first
    speaking frame on the clock (voice + lips), and the rest to the client (queue, encode,
    network, jitter buffer); and the word error rate of what was heard."""
    from likeness.media.audio import read_audio
    from likeness.providers import asr_whisper
    from likeness.providers.base import Llm
    from likeness.providers.llm_local import LocalLlm
    from likeness.providers.llm_openai import Endpoint, OpenAiLlm
    from likeness.providers.sphinx_live import SphinxLivePhones
    from likeness.providers.vad_silero import SileroVad, Tuning
    from likeness.realtime.call import Call
    from likeness.realtime.pipeline import FullPipeline, Persona
    from likeness.realtime.session import LiveConversation, Look

    llm: Llm = OpenAiLlm(Endpoint(llm_url, "", trusted=True)) if llm_url else LocalLlm()
    await asyncio.to_thread(asr_whisper.warm)
    live = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones, Look(max_height))
    tuning = Tuning()
    persona = Persona("You are Anna, a friendly guide. Answer in one short sentence.")
    pipeline = FullPipeline(live, SileroVad(tuning), tuning, asr_whisper.WhisperAsr(), llm,
                            persona, now=time.perf_counter)  # fmt: skip
    if isinstance(llm, LocalLlm):
        await asyncio.to_thread(llm.warm, pipeline.dialogue.messages())
    heard: list[str] = []
    on_out = pipeline._heard

    def spy(event: Any) -> None:
        if hasattr(event, "text"):
            heard.append(event.text)
        on_out(event)

    pipeline.hearing._out = spy
    call = Call(live, ice=[], on_audio=pipeline.hear)
    call.start()
    pipeline.start()
    client = Participant()
    mic = Microphone()
    transceiver = client.pc.getTransceivers()[0]
    transceiver.direction = "sendrecv"
    transceiver.sender.replaceTrack(mic.track)
    await client.join(call)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for name, said in SAID.items():
        samples, _ = read_audio(FIXTURES / name, 48000)
        heard.clear()
        mic.say(samples, _speech_end(samples, 48000))
        await asyncio.sleep(len(samples) / 48000)
        audio_s = await client.first(mic.speech_end, loud=True, timeout_s=15.0)
        stamps = Stamps()
        stamps.at = {k: v for k, v in pipeline.stamps.items() if k != "speech end"}
        vad_end = pipeline.stamps.get("speech end", float("nan")) - mic.speech_end
        print(f"{name}: end of speech -> first replica audio at the client: {_ms(audio_s)}")
        print(f"    {stages(mic.speech_end, stamps, TURN_STAGES, audio_s)} "
              f"(the VAD placed the end {_ms(vad_end)} from the client's)")  # fmt: skip
        text = heard[0] if heard else ""
        print(f"    heard {text!r}: WER {_wer(said, text):.0%}")
        deadline = time.perf_counter() + 30.0
        while (live.speaking or pipeline._reply) and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)  # the answer is over
        await asyncio.sleep(1.0)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100
    print(f"process CPU over the turns: {cpu:.0f} % of a core (client included)")
    await client.pc.close()
    await pipeline.close()
    await call.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, help="a trained mouthbank bundle directory")
    parser.add_argument("--max-height", type=int, default=512)
    parser.add_argument("--max-streams", type=int, default=4)
    parser.add_argument("--full-only", action="store_true", help="only the full pipeline's turns")
    parser.add_argument("--llm-url", help="an OpenAI-compatible base URL (default: offline)")
    args = parser.parse_args()
    from likeness.engines.mouthbank import MouthbankEngine
    from likeness.providers.voice_process import VoiceProcess

    if args.bundle is None:
        from streaming import bundle_for, face_clip

        args.bundle = bundle_for(face_clip())
    model = MouthbankEngine().load(args.bundle)
    print(f"replica {model.width}x{model.height} at {model.fps:g} fps, streamed <= "
          f"{args.max_height} px tall")  # fmt: skip
    voice = VoiceProcess()
    list(voice.say("Ready."))
    asyncio.run(full_turns(model, voice, args.max_height, args.llm_url))
    if args.full_only:
        voice.close()
        return
    asyncio.run(one(model, voice, args.max_height))
    for n in range(2, args.max_streams + 1):
        rates, cpu, rss = asyncio.run(concurrent(model, voice, args.max_height, n))
        each = ", ".join(f"{r:.1f}" for r in rates)
        print(f"{n} concurrent conversations: frames/s {each}; server per conversation: "
              f"CPU {cpu:.0f} % of a core, RSS {rss:.0f} MB")  # fmt: skip
        if min(rates) < 25:
            break
    voice.close()


if __name__ == "__main__":
    main()
