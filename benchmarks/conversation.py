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
chunks every 100 ms) and its speech starts 0.25 s in: the figure includes that 0.25 s.
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
    call = Call(live, ice=[])
    call.start()
    client = Participant()
    await client.join(call)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    frames0 = len(client.video)

    sent = time.perf_counter()
    client.channel.send(envelope("conversation.echo", text="Hello there, how are you today?"))
    text_ms = await client.first(sent, loud=True) * 1000
    await asyncio.sleep(3.0)

    samples, _ = read_audio(Path(__file__).resolve().parent.parent / "tests" / "fixtures"
                            / "librivox_0880.wav", 24000)  # fmt: skip
    pcm = to_int16(samples[: 24000 * 3]).tobytes()
    step = 4800  # 100 ms chunks, as pipecat streams them
    sent = time.perf_counter()
    for i in range(0, len(pcm), step):
        chunk = base64.b64encode(pcm[i : i + step]).decode()
        client.channel.send(envelope(
            "conversation.echo", modality="audio", audio=chunk, sample_rate=24000,
            inference_id="a1", done=i + step >= len(pcm),
        ))  # fmt: skip
        if i == 0:
            audio_task = asyncio.ensure_future(client.first(sent, loud=True))
        await asyncio.sleep(0.1)
    audio_ms = await audio_task * 1000
    await asyncio.sleep(1.0)

    client.channel.send(envelope("conversation.echo", text="This is a long sentence to be cut."))
    await client.first(time.perf_counter(), loud=True)
    await asyncio.sleep(0.5)
    sent = time.perf_counter()
    client.channel.send(envelope("conversation.interrupt"))
    interrupt_ms = await client.first(sent, loud=False) * 1000
    await asyncio.sleep(1.0)

    wall = time.perf_counter() - wall0
    fps = (len(client.video) - frames0) / wall
    cpu = (time.process_time() - cpu0) / wall * 100
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"echo text -> first speaking audio at the client: {text_ms:.0f} ms")
    print(f"echo audio first chunk -> first lip-synced audio at the client: {audio_ms:.0f} ms")
    print(f"interrupt -> silence at the client: {interrupt_ms:.0f} ms")
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
