"""A live conversation measured at the client: an aiortc participant joins a replica served by
the real realtime stack (LiveConversation + WebRTC) and times what it receives.

    .venv/bin/python benchmarks/conversation.py [--bundle DIR] [--max-streams N]

Default replica: the 1024x768 face-512 one of benchmarks/streaming.py (trained once, cached),
streamed at 512 px tall. Prints: echo text -> first loud audio at the client (the replica's
first speaking frame goes out with it: one clock), echo audio's first chunk -> first loud
audio, interrupt -> silence, frames/s received, CPU and RSS per conversation, and how many
concurrent conversations hold >= 25 fps. Client and server share this process and its cores,
so the figures are an upper bound of the server's cost; the latencies include the aiortc
client's own jitter buffer (a browser's adapts lower). Echo audio is sent in real time (100 ms
chunks every 100 ms); its speech starts 0.26 s in, in the third chunk, so the echo audio figure
runs from that chunk's sending (the first speech sample's arrival), not from the first chunk's.

Each latency is split into stages, stamped in the server on the same clock (one process):
message in, the voice's first sentence (synthesised and aligned) or the first settled phones,
the first speaking tick made (rendered, on the clock), and the rest (queue to the track,
encode, RTP, the client's jitter buffer and decode) up to the client.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

LOUD, QUIET = 0.02, 0.005  # rms of a received 20 ms audio frame
CID = "cbench"
SPEECH_CHUNK = 2  # the 100 ms chunk that holds the clip's first speech sample (0.26 s)


class Stamps:
    """When each stage of the server first happened (perf_counter), per message sent."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.at.setdefault(name, time.perf_counter())

    def reset(self) -> None:
        self.at.clear()


def instrumented(live: Any, voice: Any, stamps: Stamps) -> None:
    """Stamps the server's stages of ``live`` (wrapping its voice, phones and events)."""
    from likeness.realtime.frames import Started, Stopped

    speaker = live.speaker
    say, phones_factory, on_speaker = speaker._voice, speaker._phones_factory, live._on_speaker

    def timed_say(text: str) -> Any:
        for chunk in say(text):
            stamps.mark("voice")
            yield chunk

    def timed_phones(on_phones: Any) -> Any:
        def heard(utt: int, settled: Any, final: bool) -> None:
            if settled.phones:
                stamps.mark("phones")
            on_phones(utt, settled, final)

        return phones_factory(heard)

    def timed_events(event: Any) -> None:
        if isinstance(event, Started):
            stamps.mark("tick")
        if isinstance(event, Stopped) and event.interrupted:
            stamps.mark("silent tick")
        on_speaker(event)

    speaker._voice, speaker._phones_factory = timed_say, timed_phones
    live._on_speaker = timed_events


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
        self.video: list[float] = []  # arrival times
        self.audio: list[tuple[float, float]] = []  # (arrival, rms)
        self.pc.on("track", lambda t: asyncio.ensure_future(self._read(t)))

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                now = time.perf_counter()
                if track.kind == "video":
                    self.video.append(now)
                else:
                    pcm = frame.to_ndarray().astype(np.float32) / 32768.0
                    self.audio.append((now, float(np.sqrt(np.mean(pcm**2)))))
        except MediaStreamError:
            pass

    async def join(self, call: Any) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setLocalDescription(await self.pc.createOffer())
        _, answer = await call.join(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        while self.channel.readyState != "open" or len(self.video) < 10:
            await asyncio.sleep(0.01)

    async def first(self, since: float, loud: bool, timeout_s: float = 10.0) -> float:
        """Seconds from ``since`` to the first audio frame that is loud (or quiet)."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            for at, rms in self.audio:
                if at > since and (rms > LOUD if loud else rms < QUIET):
                    return at - since
            await asyncio.sleep(0.005)
        return float("nan")


async def one(model: Any, voice: Any, max_height: int) -> None:
    from likeness.media.audio import read_audio, to_int16
    from likeness.providers.sphinx_live import SphinxLivePhones
    from likeness.realtime.call import Call
    from likeness.realtime.session import LiveConversation, Look

    live = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones, Look(max_height))
    stamps = Stamps()
    instrumented(live, voice, stamps)
    call = Call(live, ice=[])
    call.start()
    client = Participant()
    await client.join(call)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    frames0 = len(client.video)

    stamps.reset()
    sent = time.perf_counter()
    client.channel.send(envelope("conversation.echo", text="Hello there, how are you today?"))
    text_s = await client.first(sent, loud=True)
    text_stages = stages(sent, stamps, ["voice", "tick"], text_s)
    await asyncio.sleep(3.0)

    samples, _ = read_audio(Path(__file__).resolve().parent.parent / "tests" / "fixtures"
                            / "librivox_0880.wav", 24000)  # fmt: skip
    pcm = to_int16(samples[: 24000 * 3]).tobytes()
    step = 4800  # 100 ms chunks, as pipecat streams them
    stamps.reset()
    for n, i in enumerate(range(0, len(pcm), step)):
        chunk = base64.b64encode(pcm[i : i + step]).decode()
        if n == SPEECH_CHUNK:
            sent = time.perf_counter()
        client.channel.send(envelope(
            "conversation.echo", modality="audio", audio=chunk, sample_rate=24000,
            inference_id="a1", done=i + step >= len(pcm),
        ))  # fmt: skip
        if n == SPEECH_CHUNK:
            audio_task = asyncio.ensure_future(client.first(sent, loud=True))
        await asyncio.sleep(0.1)
    audio_s = await audio_task
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
    print(f"echo text -> first speaking audio at the client: {text_s * 1000:.0f} ms")
    print(f"    {text_stages}")
    print(
        "echo audio, the chunk with its first speech sample -> first lip-synced audio at "
        f"the client: {audio_s * 1000:.0f} ms"
    )
    print(f"    {audio_stages}")
    print(f"interrupt -> silence at the client: {interrupt_s * 1000:.0f} ms")
    print(f"    {interrupt_stages}")
    print(f"frames/s received: {fps:.1f}; process CPU {cpu:.0f} % of a core (client included)")
    print(f"peak RSS of the process: {rss_mb:.0f} MB")
    await client.pc.close()
    await call.close()


async def concurrent(model: Any, voice: Any, max_height: int, n: int) -> list[float]:
    from likeness.providers.sphinx_live import SphinxLivePhones
    from likeness.realtime.call import Call
    from likeness.realtime.session import LiveConversation, Look

    calls, clients = [], []
    for _ in range(n):
        live = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones, Look(max_height))
        call = Call(live, ice=[])
        call.start()
        client = Participant()
        await client.join(call)
        calls.append(call)
        clients.append(client)
    for client in clients:
        client.channel.send(
            envelope("conversation.echo", text="Counting frames while I talk. " * 3)
        )
    start = [len(c.video) for c in clients]
    await asyncio.sleep(5.0)
    rates = [(len(c.video) - s) / 5.0 for c, s in zip(clients, start, strict=True)]
    for client, call in zip(clients, calls, strict=True):
        await client.pc.close()
        await call.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, help="a trained mouthbank bundle directory")
    parser.add_argument("--max-height", type=int, default=512)
    parser.add_argument("--max-streams", type=int, default=4)
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
    asyncio.run(one(model, voice, args.max_height))
    for n in range(2, args.max_streams + 1):
        rates = asyncio.run(concurrent(model, voice, args.max_height, n))
        print(f"{n} concurrent conversations: frames/s " + ", ".join(f"{r:.1f}" for r in rates))
        if min(rates) < 25:
            break
    voice.close()


if __name__ == "__main__":
    main()
