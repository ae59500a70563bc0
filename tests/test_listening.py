"""The full pipeline of a live conversation without a network: real speech (LibriVox) in as
the participant's microphone, the real VAD (Silero) and recogniser, an LLM at the edge (a
scripted one that records what it was asked), the real voice and replica out. Turn-taking,
barge-in, silence and noise, and the protocol messages only a full pipeline takes."""

from __future__ import annotations

import asyncio
import threading
import time
import wave
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from likeness.engines.mouthbank import MouthbankModel
from likeness.media.audio import read_audio, to_int16
from likeness.providers.asr_whisper import WhisperAsr
from likeness.providers.base import Llm, Message, SpeechChunk, ToolCall
from likeness.providers.sphinx_live import SphinxLivePhones
from likeness.providers.vad_silero import Decisions, SileroFrames, SileroVad, Tuning
from likeness.providers.voice_process import VoiceProcess
from likeness.realtime import protocol
from likeness.realtime.pipeline import FullPipeline, Persona
from likeness.realtime.session import LiveConversation

from .conftest import FIXTURES
from .test_realtime import CID, Call, envelope, run_call

RATE = 16000
SAID_0880 = "he was not an ill disposed young man"


class ScriptedLlm:
    """An LLM at the edge: answers ``answer`` a word at a time and records every request."""

    def __init__(self, answer: str, word_s: float = 0.01) -> None:
        self.answer = answer
        self.word_s = word_s
        self.asked: list[list[Message]] = []

    async def reply(
        self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] = ()
    ) -> AsyncGenerator[str | ToolCall, None]:
        self.asked.append(list(messages))
        for i, word in enumerate(self.answer.split(" ")):
            await asyncio.sleep(self.word_s)
            yield word if i == 0 else f" {word}"

    async def aclose(self) -> None:
        pass


def speech(name: str) -> np.ndarray:
    return read_audio(FIXTURES / name, RATE)[0]


def wer(reference: str, heard: str) -> float:
    ref, hyp = reference.split(), heard.lower().replace(".", "").replace(",", "").split()
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return float(d[-1]) / len(ref)


async def say(pipeline: FullPipeline, samples: np.ndarray, chunk_s: float = 0.02) -> None:
    """The microphone: ``samples`` in 20 ms frames, in real time."""
    step = int(RATE * chunk_s)
    for i in range(0, len(samples), step):
        pipeline.hearing.feed(samples[i : i + step])
        await asyncio.sleep(chunk_s)


def full(
    model: MouthbankModel, voice: VoiceProcess, llm: Llm, persona: Persona | None = None
) -> tuple[LiveConversation, FullPipeline]:
    conversation = LiveConversation(CID, model.session(), voice.say, SphinxLivePhones)
    tuning = Tuning()
    pipeline = FullPipeline(
        conversation, SileroVad(tuning), tuning, WhisperAsr(), llm, persona or Persona("Be Bob.")
    )
    return conversation, pipeline


def test_vad_hears_speech_and_not_silence_or_noise() -> None:
    frames = SileroFrames()
    rng = np.random.default_rng(0)
    quiet = np.zeros(RATE * 2, np.float32)
    hiss = (rng.standard_normal(RATE * 5) * 0.05).astype(np.float32)
    probs = frames.feed(np.concatenate([quiet, hiss, speech("librivox_0880.wav")]))
    n_quiet, n_hiss = len(quiet) // 512, len(hiss) // 512
    assert max(probs[: n_quiet + n_hiss]) < 0.5  # silence and white noise are not speech
    assert np.mean(np.array(probs[n_quiet + n_hiss :]) >= 0.5) > 0.6
    decide = Decisions(Tuning(start_s=0.128, stop_s=0.5))
    turns = [a for a in (decide.frame(p) for p in probs) if a is not None]
    assert [a.speaking for a in turns] == [True]  # the clip ends in speech: no stop yet
    assert 7.0 - 0.3 < turns[0].at_s < 7.0 + 0.5  # speech starts just after quiet + hiss


def test_a_turn_is_heard_answered_and_kept(model: MouthbankModel, voice: VoiceProcess) -> None:
    llm = ScriptedLlm("I am Bob. Nice to meet you.")
    conversation, pipeline = full(model, voice, llm)
    written: list[list[dict[str, str]]] = []
    pipeline._on_transcript = written.append

    async def script(call: Call) -> None:
        pipeline.start()
        await say(pipeline, np.concatenate([speech("librivox_0880.wav"), np.zeros(RATE)]))
        await call.until(lambda: call.has("conversation.replica.stopped_speaking"), 60)
        await pipeline.close()

    call = run_call(conversation, script)
    types = [t for t in call.types() if t != "conversation.utterance.streaming"]
    assert types == [
        "conversation.user.started_speaking",
        "conversation.user.stopped_speaking",
        "conversation.utterance",
        "conversation.replica.started_speaking",
        "conversation.utterance",
        "conversation.replica.stopped_speaking",
    ]
    heard = call.events[2]["properties"]
    assert heard["role"] == "user"
    error = wer(SAID_0880, heard["speech"])
    print(f"\nheard {heard['speech']!r}: WER {error:.0%}")
    assert error <= 0.5
    assert llm.asked[0][0] == Message("system", "Be Bob.")
    assert llm.asked[0][-1] == Message("user", heard["speech"])
    replica = [e for e in call.events if e["event_type"] == "conversation.utterance"][1]
    assert replica["properties"]["role"] == "replica"
    assert replica["properties"]["speech"].startswith("I am Bob.")
    assert replica["inference_id"] == call.events[2]["inference_id"]  # the turn's answer
    assert call.has("conversation.utterance.streaming", speech="I am Bob. Nice to meet you.")
    assert written[-1] == [
        {"role": "system", "content": "Be Bob."},
        {"role": "user", "content": heard["speech"]},
        {"role": "assistant", "content": "I am Bob. Nice to meet you."},
    ]


def test_talking_over_the_replica_interrupts_it_and_cuts_the_context(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    answer = "Well, let me tell you a long story. It begins long ago. " * 3
    llm = ScriptedLlm(answer.strip())
    conversation, pipeline = full(model, voice, llm)
    stopped_at: list[float] = []

    async def script(call: Call) -> None:
        pipeline.start()
        pipeline.handle(protocol.Respond("Tell me a story."))
        await call.until(lambda: call.has("conversation.replica.started_speaking"), 60)
        await asyncio.sleep(0.5)
        loop = asyncio.get_running_loop()
        talking = asyncio.ensure_future(say(pipeline, speech("librivox_0880.wav")))
        talk_from = loop.time()
        await call.until(lambda: call.has("conversation.replica_interrupted"), 10)
        await call.until(lambda: call.has("conversation.replica.stopped_speaking"), 10)
        stopped_at.append(loop.time() - talk_from)
        talking.cancel()
        await pipeline.close()
        await asyncio.sleep(0.5)

    call = run_call(conversation, script)
    stopped = [e for e in call.events if e["event_type"] == "conversation.replica.stopped_speaking"]
    assert stopped[0]["properties"]["interrupted"] is True
    # the speech starts ~0.1 s into the clip; the VAD takes start_s of it, the clock a tick
    print(f"\ntalking over -> stopped: {stopped_at[0] * 1000:.0f} ms")
    said = pipeline.dialogue.messages()[2]
    assert said.role == "assistant" and answer.startswith(said.content)
    assert len(said.content) < len(answer.strip())  # the rest was dropped
    quiet = [t for t in call.ticks if t.index > call.ticks[-1].index - 10]
    assert not any(t.speaking for t in quiet)
    assert call.types()[-3:] == [
        "conversation.user.started_speaking",
        "conversation.replica_interrupted",
        "conversation.replica.stopped_speaking",
    ]


def test_speaking_again_before_the_answer_is_heard_takes_the_turn_back(
    model: MouthbankModel, voice: VoiceProcess
) -> None:
    llm = ScriptedLlm("Once upon a time there was a man.")
    conversation, pipeline = full(model, voice, llm)

    def slow_voice(text: str) -> Iterator[SpeechChunk]:  # the answer waits for its voice
        time.sleep(1.5)
        yield from voice.say(text)

    conversation.speaker._voice = slow_voice

    async def script(call: Call) -> None:
        pipeline.start()
        pipeline.handle(protocol.Respond("Tell me a story."))
        await say(pipeline, np.concatenate([speech("librivox_0880.wav"), np.zeros(RATE)]))
        await call.until(lambda: call.has("conversation.replica.stopped_speaking"), 60)
        await pipeline.close()

    call = run_call(conversation, script)
    assert "conversation.replica_interrupted" not in call.types()
    assert call.types().count("conversation.replica.started_speaking") == 1  # one answer
    heard = next(e for e in call.events if e["event_type"] == "conversation.utterance")
    first, second = llm.asked
    assert first[-1] == Message("user", "Tell me a story.")
    assert second[-1] == Message("user", f"Tell me a story. {heard['properties']['speech']}")


def test_a_monologue_is_cut_into_turns(model: MouthbankModel, voice: VoiceProcess) -> None:
    llm = ScriptedLlm("Go on.")
    persona = Persona("Be Bob.", pause="superlow")  # the clips' own pauses end no turn
    conversation, pipeline = full(model, voice, llm, persona)
    pipeline.hearing.max_turn_s = 2.5  # as MAX_TURN_S cuts a long one
    words = np.concatenate([speech("librivox_0870.wav"), speech("librivox_0880.wav")])

    async def script(call: Call) -> None:
        pipeline.start()
        await say(pipeline, np.concatenate([words, np.zeros(RATE * 2)]))
        await call.until(lambda: len(llm.asked) >= 2, 30)
        await pipeline.close()

    call = run_call(conversation, script)
    turns = call.types().count("conversation.user.stopped_speaking")
    assert turns >= 2 and call.types().count("conversation.user.started_speaking") == turns
    said = [
        e["properties"]["speech"]
        for e in call.events
        if e["event_type"] == "conversation.utterance" and e["properties"]["role"] == "user"
    ]
    assert len(said) >= 2 and "dashwood" in " ".join(said).lower()


def test_silence_and_noise_make_no_turn(model: MouthbankModel, voice: VoiceProcess) -> None:
    llm = ScriptedLlm("Never.")
    conversation, pipeline = full(model, voice, llm)
    rng = np.random.default_rng(1)
    hush = np.zeros(RATE * 60, np.float32)
    hiss = (rng.standard_normal(RATE * 20) * 0.05).astype(np.float32)

    async def script(call: Call) -> None:
        pipeline.start()
        for piece in np.array_split(np.concatenate([hush, hiss]), 400):  # faster than real time
            pipeline.hearing.feed(piece)
            await asyncio.sleep(0)
        await asyncio.sleep(0.5)
        await pipeline.close()

    call = run_call(conversation, script)
    assert call.types() == [] and llm.asked == []


def test_respond_and_the_context_messages(model: MouthbankModel, voice: VoiceProcess) -> None:
    llm = ScriptedLlm("Sure thing, my friend.")
    persona = Persona("Be Bob.", context="Bob sells boats.", conversational_context="Sunny.")
    conversation, pipeline = full(model, voice, llm, persona)

    async def script(call: Call) -> None:
        conversation.handle(envelope("conversation.append_llm_context", context="Rainy now."))
        conversation.handle(envelope("conversation.respond", text="Hello?"))
        await call.until(lambda: call.has("conversation.replica.stopped_speaking"), 60)
        conversation.handle(envelope("conversation.overwrite_llm_context", context="Windy."))
        conversation.handle(
            envelope("conversation.sensitivity", participant_pause_sensitivity="high",
                     participant_interrupt_sensitivity="low")
        )  # fmt: skip
        conversation.handle(envelope("conversation.sensitivity", participant_pause_sensitivity=3))
        conversation.handle(envelope("conversation.respond", text="And now?"))
        await call.until(lambda: len(llm.asked) == 2)

    call = run_call(conversation, script)
    first, second = llm.asked
    assert first == [
        Message("system", "Be Bob.\n\nBob sells boats.\n\nSunny.\nRainy now."),
        Message("user", "Hello?"),
    ]
    assert second == [
        Message("system", "Be Bob.\n\nBob sells boats.\n\nWindy."),
        Message("user", "Hello?"),
        Message("assistant", "Sure thing, my friend."),
        Message("user", "And now?"),
    ]
    assert (pipeline._tuning.stop_s, pipeline._tuning.start_s) == (0.3, 0.35)
    errors = [e["properties"] for e in call.events if e["event_type"] == "conversation.error"]
    assert errors == [
        {
            "message": "properties.participant_pause_sensitivity must be one of superlow, "
            "verylow, low, medium, high, auto",
            "event_type": "conversation.sensitivity",
        }
    ]


@pytest.mark.parametrize(
    "event",
    [
        envelope("conversation.respond", text="hi"),
        envelope("conversation.append_llm_context", context="x"),
        envelope("conversation.overwrite_llm_context", context="x"),
        envelope("conversation.sensitivity", participant_pause_sensitivity="low"),
    ],
)
def test_echo_mode_answers_the_listening_messages_with_an_error(
    model: MouthbankModel, event: str
) -> None:
    conversation = LiveConversation(CID, model.session(), lambda _t: [], SphinxLivePhones)
    events = conversation.events()
    conversation.handle(event)
    conversation._release()
    error: dict[str, Any] = events._items.popleft()
    assert error["event_type"] == "conversation.error"
    assert "pipeline_mode full" in error["properties"]["message"]


# -- as deployed: a persona, a media worker, a WebRTC participant with a microphone -------------
def test_a_full_persona_hears_a_webrtc_microphone_and_answers(
    trained: Path, voice: VoiceProcess, runtime: Any, client: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from aiortc.contrib.media import MediaPlayer

    from likeness.media_worker import MediaWorker
    from likeness.models import Conversation

    from .test_llm import _Endpoint, _Handler
    from .test_realtime import Client, _replica_with_bundle

    replica_id = _replica_with_bundle(runtime, trained)
    endpoint = _Endpoint(("127.0.0.1", 0), _Handler)  # OpenAI-compatible, at the edge
    endpoint.requests = []
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{endpoint.server_address[1]}/ok/v1"
    persona = client.post("/v2/personas", json={
        "persona_name": "Bob", "system_prompt": "Be Bob.", "default_replica_id": replica_id,
        "layers": {"stt": {"participant_pause_sensitivity": "high"},
                   "llm": {"model": "m1", "base_url": base_url}},
    })  # fmt: skip
    assert persona.status_code == 200, persona.text
    created = client.post(
        "/v2/conversations",
        json={"persona_id": persona.json()["persona_id"], "conversational_context": "At sea."},
    )
    cid = created.json()["conversation_id"]
    mic = tmp_path / "mic.wav"
    with wave.open(str(mic), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(RATE)
        said = np.concatenate(
            [np.zeros(RATE // 2), speech("librivox_0880.wav"), np.zeros(RATE * 3)]
        )
        out.writeframes(to_int16(said.astype(np.float32)).tobytes())
    worker = MediaWorker(runtime, 2)  # the persona's LLM, Whisper
    monkeypatch.setattr(worker, "_voice", voice)  # the session's warm voice
    monkeypatch.setattr(voice, "close", lambda: None)

    async def main() -> None:
        served = await worker.serve(cid)
        participant = Client()
        player = MediaPlayer(str(mic))
        microphone = participant.pc.getTransceivers()[0]
        microphone.direction = "sendrecv"
        microphone.sender.replaceTrack(player.audio)
        try:
            _, answer = await served.call.join(await participant.offer())
            await participant.accept(answer)
            await participant.until(
                lambda: participant.has("conversation.replica.stopped_speaking"), 60
            )

            def kept() -> bool:
                with runtime.sessions() as session:
                    return len(session.get(Conversation, cid).transcript) == 3

            await participant.until(kept, 10)
        finally:
            await participant.close()
            await worker.end_all("end_conversation_endpoint_hit")
            endpoint.shutdown()
            endpoint.server_close()

        types = [e["event_type"] for e in participant.events]
        assert [t for t in types if t != "conversation.utterance.streaming"] == [
            "conversation.user.started_speaking",
            "conversation.user.stopped_speaking",
            "conversation.utterance",
            "conversation.replica.started_speaking",
            "conversation.utterance",
            "conversation.replica.stopped_speaking",
        ]
        heard = participant.events[2]["properties"]["speech"]
        print(f"\nheard through WebRTC {heard!r}: WER {wer(SAID_0880, heard):.0%}")
        assert wer(SAID_0880, heard) <= 0.5
        (request,) = endpoint.requests  # the words reached the LLM
        assert request["path"] == "/ok/v1/chat/completions"
        assert request["json"]["messages"] == [
            {"role": "system", "content": "Be Bob.\n\nAt sea."},
            {"role": "user", "content": heard},
        ]
        replica = [e for e in participant.events if e["event_type"] == "conversation.utterance"]
        assert replica[1]["properties"] == {
            "role": "replica", "speech": "Hello there.", "inference_id": replica[0]["inference_id"]
        }  # fmt: skip

    asyncio.run(main())
    with runtime.sessions() as session:
        row = session.get(Conversation, cid)
        assert row.transcript[0] == {"role": "system", "content": "Be Bob.\n\nAt sea."}
        assert row.transcript[2] == {"role": "assistant", "content": "Hello there."}
        ready = [e for e in row.events if e["event_type"] == "application.transcription_ready"]
        assert ready[0]["properties"]["transcript"] == row.transcript


def test_a_text_only_chat_answers_over_the_interactions_socket(runtime: Any, client: Any) -> None:
    import json

    from websockets.asyncio.client import connect

    from likeness.app import create_app
    from likeness.conversation.workers import WorkerAddress, record
    from likeness.media_worker import MediaWorker, build_media_app

    from .conftest import API_KEY
    from .test_llm import _Endpoint, _Handler
    from .test_realtime import _serving

    endpoint = _Endpoint(("127.0.0.1", 0), _Handler)
    endpoint.requests = []
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{endpoint.server_address[1]}/ok/v1"
    persona = client.post("/v2/personas", json={
        "persona_name": "Ann", "system_prompt": "Be Ann.",
        "layers": {"llm": {"base_url": base_url}},
    })  # fmt: skip
    created = client.post("/v2/conversations", json={"persona_id": persona.json()["persona_id"],
                                                     "chat": True})  # fmt: skip
    assert created.status_code == 200, created.text
    cid = created.json()["conversation_id"]
    worker = MediaWorker(runtime, capacity=2)

    async def main() -> list[dict[str, Any]]:
        media, media_task, media_at = await _serving(build_media_app(worker, "secret"))
        record(runtime.settings.resolved_data_dir, WorkerAddress(f"http://{media_at}", "secret"), 2)
        api, api_task, api_at = await _serving(create_app(runtime=runtime))
        events: list[dict[str, Any]] = []
        try:
            url = f"ws://{api_at}/v2/conversations/{cid}/interactions"
            async with connect(url, additional_headers={"x-api-key": API_KEY}) as backend:
                await backend.send(envelope("conversation.echo", text="Hi.").replace(CID, cid))
                await backend.send(envelope("conversation.respond", text="Who are you?")
                                   .replace(CID, cid))  # fmt: skip
                while not events or events[-1]["event_type"] != (
                    "conversation.replica.stopped_speaking"
                ):
                    events.append(json.loads(await asyncio.wait_for(backend.recv(), 30)))
        finally:
            api.should_exit = media.should_exit = True
            await asyncio.gather(api_task, media_task)
            await worker.end_all("end_conversation_endpoint_hit")
            endpoint.shutdown()
            endpoint.server_close()
        return events

    events = asyncio.run(main())
    assert [e["event_type"] for e in events] == [
        "conversation.error",  # a chat says nothing aloud: no echo
        "conversation.replica.started_speaking",
        "conversation.utterance",
        "conversation.utterance.streaming",
        "conversation.replica.stopped_speaking",
    ]
    assert events[2]["properties"]["speech"] == "Hello there."
    assert events[4]["properties"]["interrupted"] is False
    (request,) = endpoint.requests
    assert request["json"]["messages"][-1] == {"role": "user", "content": "Who are you?"}
    with runtime.sessions() as session:
        from likeness.models import Conversation

        row = session.get(Conversation, cid)
        assert row.transcript[1:] == [
            {"role": "user", "content": "Who are you?"},
            {"role": "assistant", "content": "Hello there."},
        ]
