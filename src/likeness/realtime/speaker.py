"""The replica's live mouth: utterances in (echo text, streamed echo audio), one tick of
picture and sound out per frame of the clock (frames.py).

Every bit of engine state is touched only by ``tick()`` (the media thread): the other threads
(the event loop, the voice, the phone recogniser) post commands to an inbox that the next tick
drains. A frame goes out with exactly the audio under it, or, while the frames of the speech
are not ready yet (the voice still synthesising, phones still settling), the replica idles and
the utterance waits: speech never runs ahead of its lips.

The lips come from phones: the voice's own, timed by the voice, for text; phones recognised
as the audio streams in (providers/sphinx_live.py) for audio. Frames are rendered only where
phones are known, a few frames ahead of the clock.

Streamed audio starts at its first sound (what silence leads it is not replayed), and once
its phones are known a chunk's length ahead: the recogniser's phones advance a chunk at a
time, so a start with less would stall the mouth (and the voice) mid-word.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Protocol

import av
import numpy as np

from likeness.engines.base import EngineSession, RenderedFrame
from likeness.media.audio import resample
from likeness.media.audio import warm as warm_resampling
from likeness.providers.base import Phone, SettledPhones, SpeechChunk
from likeness.realtime.frames import (
    OUTPUT_RATE_HZ,
    Refused,
    Sentence,
    SpeakerEvent,
    Started,
    Stopped,
    Tick,
    audio_span,
)
from likeness.rendering.frames import AudioFrame, VideoFrame, frame_rate

Voice = Callable[[str], Iterable[SpeechChunk]]  # a text's sentences, each as soon as ready
OnPhones = Callable[[int, SettledPhones, bool], None]  # (utterance, phones, no more to come)


class LivePhones(Protocol):
    """Phones of live audio, utterance after utterance (providers/sphinx_live.py)."""

    def begin(self) -> int:
        """The number of the utterance that the next feed() calls belong to."""
        ...

    def feed(self, samples: np.ndarray, sample_rate_hz: int) -> None: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...


PhonesFactory = Callable[[OnPhones], LivePhones]

AHEAD_FRAMES = 3  # rendered ahead of the clock: enough to ride out a slow tick
FEATURE_AHEAD_S = 0.1  # audio past a frame that its features look at
SOUND_RMS = 0.015  # -36 dBFS: over a recording's noise, under any voice's speech
LEAD_IN_S = 0.03  # kept before the first sound (its soft onset)
MAX_SKIP_S = 0.5  # of leading silence, at most
MAX_START_WAIT_S = 0.2  # phones ahead that an audio utterance waits for, at most
MAX_UTTERANCES = 8  # queued echoes; past that an echo is refused, never buffered without end
MAX_UTTERANCE_S = 120.0


@dataclass
class _Utterance:
    inference_id: str
    text: str | None
    live_utt: int | None = None
    rate: int = 0
    sounding: bool = True  # streamed audio: False until its first sound
    lead: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # before it
    origin: int = 0  # input samples dropped before the start
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    received: int = 0  # input samples from the start
    fed: int = 0  # input samples given to the engine
    phones: list[Phone] = field(default_factory=list)  # seconds from the first input sample
    phones_until_s: float = math.inf  # text: its phones come with its audio
    chunk_s: float = 0.0  # the longest chunk of streamed audio so far
    done: bool = False  # no more audio will come
    ended: bool = False  # the engine was told so
    out: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    out_offset: int = 0  # output samples already trimmed off ``out``
    resampler: av.AudioResampler | None = None
    sentences: deque[tuple[int, str]] = field(default_factory=deque)  # (output sample, said)
    said: str = ""
    frames: deque[RenderedFrame] = field(default_factory=deque)
    emitted: int = 0
    started: bool = False


@dataclass(frozen=True)
class _New:
    inference_id: str
    text: str | None
    live_utt: int | None


@dataclass(frozen=True)
class _Audio:
    inference_id: str
    samples: np.ndarray  # (N,) float32
    rate: int
    done: bool
    phones: tuple[Phone, ...] = ()  # text: this piece's phones, from its first sample
    sentence: str | None = None


@dataclass(frozen=True)
class _Failed:
    inference_id: str
    message: str


@dataclass(frozen=True)
class _Interrupt:
    pass


@dataclass(frozen=True)
class _Heard:
    utt: int
    settled: SettledPhones
    final: bool


_Command = _New | _Audio | _Failed | _Interrupt | _Heard


class Speaker:
    def __init__(
        self,
        session: EngineSession,
        voice: Voice,
        phones: PhonesFactory,
        news: Callable[[], None] = lambda: None,
    ) -> None:
        """``news`` is called (on any thread) when speech or its phones arrive: the clock
        may tick early then, so that the first frame of speech waits for no tick."""
        self.session = session
        self._news = news
        self.fps = session.fps
        self.time_base = 1 / frame_rate(self.fps)
        self._voice = voice
        self._phones_factory = phones
        self._inbox: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._queue: deque[_Utterance] = deque()
        self._index = 0
        self._generation = 0  # bumped by interrupt: the voice drops work of older ones
        self._tts = ThreadPoolExecutor(1, thread_name_prefix="voice")
        # the first sentence is resampled on the media thread: its import is done here, off
        # that thread and before any answer (it stalled the first answer's clock by ~0.7 s)
        self.warmed = self._tts.submit(warm_resampling)
        self._phones: LivePhones | None = None
        self._lock = threading.Lock()  # the calling side's own state (below)
        self._open_audio: tuple[str, int] | None = None  # (inference_id, sample rate)

    # -- the calling side (any one thread) ------------------------------------------------
    def say_text(self, text: str, inference_id: str) -> None:
        """Say ``text`` with the voice; sentence by sentence, so the first is heard soon."""
        with self._lock:
            self._close_audio()
            self._inbox.put(_New(inference_id, text, None))
            generation = self._generation
        self._tts.submit(self._synthesise, [text], inference_id, generation)

    def say_sentences(self, sentences: Iterable[str], inference_id: str) -> None:
        """Say sentences as they come (an LLM still writing): the voice's thread takes them
        from ``sentences``, which may block until the next one is written; the utterance ends
        with the iterable. Its ``Started`` event carries no text (the caller knows it)."""
        with self._lock:
            self._close_audio()
            self._inbox.put(_New(inference_id, None, None))
            generation = self._generation
        self._tts.submit(self._synthesise, sentences, inference_id, generation)

    def say_audio(self, pcm: bytes, sample_rate_hz: int, inference_id: str, done: bool) -> None:
        """One chunk of streamed (N,) int16 mono PCM; a new ``inference_id`` starts a new
        utterance (and ends the previous one)."""
        samples = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0
        with self._lock:
            if self._open_audio is None or self._open_audio[0] != inference_id:
                self._close_audio()
                live = self._live()
                self._inbox.put(_New(inference_id, None, live.begin()))
                self._open_audio = (inference_id, sample_rate_hz)
            elif self._open_audio[1] != sample_rate_hz:
                raise ValueError(
                    f"sample_rate changed within utterance {inference_id} "
                    f"({self._open_audio[1]} then {sample_rate_hz} Hz)"
                )
            self._live().feed(samples, sample_rate_hz)
            self._inbox.put(_Audio(inference_id, samples, sample_rate_hz, done))
            if done:
                self._live().finish()
                self._open_audio = None

    def interrupt(self) -> None:
        with self._lock:
            self._close_audio()
            self._generation += 1
            self._inbox.put(_Interrupt())

    def close(self) -> None:
        self._tts.shutdown(wait=False, cancel_futures=True)
        if self._phones is not None:
            self._phones.close()

    def _live(self) -> LivePhones:
        if self._phones is None:
            inbox = self._inbox
            news = self._news

            def heard(utt: int, settled: SettledPhones, final: bool) -> None:
                inbox.put(_Heard(utt, settled, final))
                news()

            self._phones = self._phones_factory(heard)
        return self._phones

    def _close_audio(self) -> None:
        """An audio utterance left open (no ``done``) ends where its chunks ended."""
        if self._open_audio is not None:
            self._inbox.put(_Audio(self._open_audio[0], np.zeros(0, np.float32), 16000, True))
            self._live().finish()
            self._open_audio = None

    def _synthesise(self, texts: Iterable[str], inference_id: str, generation: int) -> None:
        try:
            for text in texts:
                if generation != self._generation:
                    return
                with contextlib.closing(iter(self._voice(text))) as chunks:  # type: ignore[type-var]
                    for chunk in chunks:
                        if generation != self._generation:
                            return  # interrupted: the rest is never made
                        rate = chunk.sample_rate_hz
                        piece = _Audio(
                            inference_id, chunk.samples, rate, False, chunk.phones, chunk.text
                        )
                        self._inbox.put(piece)
                        self._news()
            self._inbox.put(_Audio(inference_id, np.zeros(0, np.float32), 16000, True))
        except Exception as exc:  # the voice's failure is this utterance's, not the call's
            self._inbox.put(_Failed(inference_id, f"the voice could not say it: {exc}"))

    # -- the media thread ------------------------------------------------------------------
    def tick(self) -> Tick:
        """The next frame of the clock and the audio under it."""
        events: list[SpeakerEvent] = []
        self._drain(events)
        utt = self._queue[0] if self._queue else None
        if utt is not None:
            self._render_ahead(utt)
            if utt.ended and not utt.frames:  # over with nothing (more) to show: answer it
                self._queue.popleft()
                if utt.started:
                    events.append(
                        Stopped(utt.inference_id, utt.emitted / self.fps, False, utt.text)
                    )
                else:
                    events.append(Refused(utt.inference_id, "the echo had no audio to say"))
                utt = None
        frame, audio, speaking = None, None, False
        if utt is not None and utt.frames and (utt.started or self._may_start(utt)):
            k = utt.emitted
            start, stop = audio_span(k, self.fps)
            if utt.out_offset + len(utt.out) >= stop or utt.ended:
                frame = utt.frames.popleft()
                audio = self._take(utt, start, stop)
                speaking = True
                if not utt.started:
                    utt.started = True
                    events.append(Started(utt.inference_id, utt.text))
                while utt.sentences and utt.sentences[0][0] < stop:
                    events.append(Sentence(utt.inference_id, utt.sentences.popleft()[1]))
                utt.emitted += 1
                if utt.ended and not utt.frames:
                    self._queue.popleft()
                    heard = utt.emitted / self.fps
                    events.append(Stopped(utt.inference_id, heard, False, utt.text))
        if frame is None:
            frame = self.session.idle_frame()
        if audio is None:
            start, stop = audio_span(self._index, self.fps)
            audio = np.zeros(stop - start, np.float32)
        start, _ = audio_span(self._index, self.fps)
        tick = Tick(
            self._index,
            VideoFrame(frame.picture, self._index, self.time_base, speaking),
            AudioFrame(audio, OUTPUT_RATE_HZ, start),
            speaking,
            tuple(events),
        )
        self._index += 1
        return tick

    def _drain(self, events: list[SpeakerEvent]) -> None:
        while True:
            try:
                command = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, _Interrupt):
                if self._queue and self._queue[0].started:
                    utt = self._queue[0]
                    events.append(Stopped(utt.inference_id, utt.emitted / self.fps, True, utt.text))
                self._queue.clear()
                self.session.clear()
            elif isinstance(command, _New):
                if len(self._queue) >= MAX_UTTERANCES:
                    message = f"too many queued utterances (at most {MAX_UTTERANCES})"
                    events.append(Refused(command.inference_id, message))
                else:
                    new = _Utterance(command.inference_id, command.text, command.live_utt)
                    if command.live_utt is not None:  # audio: lips wait for its phones
                        new.phones_until_s = 0.0
                        new.sounding = False
                    self._queue.append(new)
            elif isinstance(command, _Heard):
                heard = self._find(live_utt=command.utt)
                if heard is not None:
                    heard.phones = _joined(heard.phones, command.settled.phones)
                    heard.phones_until_s = math.inf if command.final else command.settled.until_s
                    if heard is self._queue[0] and command.settled.phones and heard.fed:
                        self.session.push_phones(_from_start(heard))
            elif isinstance(command, _Failed):
                failed = self._find(inference_id=command.inference_id)
                if failed is not None and not failed.started:
                    self._drop(failed)
                    events.append(Refused(failed.inference_id, command.message))
                elif failed is not None:
                    failed.done = True
            else:
                target = self._find(inference_id=command.inference_id)
                if target is not None and not target.done:
                    self._append(target, command, events)

    def _find(
        self, inference_id: str | None = None, live_utt: int | None = None
    ) -> _Utterance | None:
        for utt in self._queue:
            if inference_id is not None and utt.inference_id == inference_id:
                return utt
            if live_utt is not None and utt.live_utt == live_utt:
                return utt
        return None

    def _drop(self, utt: _Utterance) -> None:
        if self._queue and self._queue[0] is utt:
            self.session.clear()
        self._queue.remove(utt)

    def _append(self, utt: _Utterance, audio: _Audio, events: list[SpeakerEvent]) -> None:
        if utt.rate == 0:
            utt.rate = audio.rate
        if utt.received + len(audio.samples) > MAX_UTTERANCE_S * utt.rate:
            audio = _Audio(audio.inference_id, np.zeros(0, np.float32), utt.rate, True)
            events.append(Refused(utt.inference_id, f"utterance cut at {MAX_UTTERANCE_S:.0f} s"))
        if audio.sentence is None:
            utt.chunk_s = max(utt.chunk_s, len(audio.samples) / utt.rate)
        if not utt.sounding:
            audio = replace(audio, samples=self._from_sound(utt, audio))
            if not utt.sounding:
                return
        offset_s = utt.received / utt.rate
        if audio.sentence is not None:
            utt.said = f"{utt.said} {audio.sentence}".strip()
            utt.sentences.append((utt.out_offset + len(utt.out), utt.said))
        shifted = [Phone(p.name, offset_s + p.start_s, offset_s + p.end_s) for p in audio.phones]
        utt.phones += shifted
        if audio.phones and utt is self._queue[0]:
            self.session.push_phones(_from_start(utt))
        utt.pending = np.concatenate([utt.pending, audio.samples])
        utt.received += len(audio.samples)
        utt.out = np.concatenate([utt.out, self._to_output(utt, audio)])
        utt.done = audio.done

    @staticmethod
    def _from_sound(utt: _Utterance, audio: _Audio) -> np.ndarray:
        """Streamed audio before its first sound (three 10 ms windows in a row as loud as
        SOUND_RMS) is held; from the sound on, the samples from LEAD_IN_S before it are the
        utterance's. At most MAX_SKIP_S is skipped (a voice too quiet to be found is not
        lost), and an utterance that ends silent is said as it is."""
        held = np.concatenate([utt.lead, audio.samples])
        window = max(1, utt.rate // 100)
        n = len(held) // window
        loud = np.sqrt(np.mean(held[: n * window].reshape(n, window) ** 2, axis=1)) >= SOUND_RMS
        sound = np.flatnonzero(loud[:-2] & loud[1:-1] & loud[2:]) if n >= 3 else loud[:0]
        lead_in = int(LEAD_IN_S * utt.rate)
        may_skip = max(0, int(MAX_SKIP_S * utt.rate) - utt.origin)
        if sound.size:
            start = min(max(0, int(sound[0]) * window - lead_in), may_skip)
        elif audio.done:
            start = 0
        else:  # keep what a sound found in the next chunk could still need
            start = min(max(0, (n - 2) * window - lead_in), may_skip)
            if start < may_skip:
                utt.origin += start
                utt.lead = held[start:]
                return held[:0]
        utt.sounding, utt.origin, utt.lead = True, utt.origin + start, held[:0]
        return held[start:]

    def _to_output(self, utt: _Utterance, audio: _Audio) -> np.ndarray:
        """The audio at the output rate. Text comes in whole sentences (resampled at once);
        streamed chunks go through one resampler per utterance, so chunk joins are clean."""
        if audio.sentence is not None:
            return resample(audio.samples, audio.rate, OUTPUT_RATE_HZ)
        if utt.resampler is None and not len(audio.samples):
            return np.zeros(0, np.float32)
        if utt.resampler is None:
            utt.resampler = av.AudioResampler(format="flt", layout="mono", rate=OUTPUT_RATE_HZ)
        pieces = []
        if len(audio.samples):
            frame = av.AudioFrame.from_ndarray(
                audio.samples.reshape(1, -1), format="flt", layout="mono"
            )
            frame.sample_rate = audio.rate
            frame.time_base = Fraction(1, audio.rate)
            pieces += utt.resampler.resample(frame)
        if audio.done:
            pieces += utt.resampler.resample(None)
        if not pieces:
            return np.zeros(0, np.float32)
        return np.concatenate([p.to_ndarray().reshape(-1) for p in pieces]).astype(np.float32)

    def _render_ahead(self, utt: _Utterance) -> None:
        """Give the engine the audio of the next few frames (where phones are known) and
        take the frames it can make."""
        # Before its first frame is out, an utterance makes just what that frame needs: the
        # tick that sends it does not wait on frames that the next ticks can make.
        most = AHEAD_FRAMES if utt.started else 1
        if len(utt.frames) >= most or utt.ended or utt.rate == 0 or not utt.sounding:
            return
        ahead = most + 1 if utt.started else 0
        want_s = (utt.emitted + len(utt.frames) + ahead) / self.fps + FEATURE_AHEAD_S
        limit = min(utt.received, int(want_s * utt.rate))
        # Audio only up to the phones known: a frame is made once the audio past its end is
        # (its features look ahead), so every frame made has its phones.
        if utt.phones_until_s != math.inf:
            limit = min(limit, int(self._known_s(utt) * utt.rate))
        if limit > utt.fed:
            if utt.fed == 0 and utt.phones:
                self.session.push_phones(_from_start(utt))
            take = limit - utt.fed
            self.session.push_audio(utt.pending[:take], utt.rate)
            utt.pending = utt.pending[take:]
            utt.fed = limit
        if utt.done and utt.phones_until_s == math.inf and utt.fed == utt.received:
            self.session.end_audio()
            utt.ended = True
        utt.frames.extend(self.session.pull())

    @staticmethod
    def _known_s(utt: _Utterance) -> float:
        """Seconds from the start whose phones are known."""
        return utt.phones_until_s - utt.origin / max(utt.rate, 1)

    def _may_start(self, utt: _Utterance) -> bool:
        """Streamed audio starts once its phones are known a chunk (and the look-ahead of
        the frames' features) past its start, or all are: streamed in real time, the mouth
        then does not stall while the next chunk comes."""
        if utt.text is not None or utt.phones_until_s == math.inf:
            return True
        return self._known_s(utt) >= min(utt.chunk_s, MAX_START_WAIT_S) + FEATURE_AHEAD_S

    def _take(self, utt: _Utterance, start: int, stop: int) -> np.ndarray:
        """Output samples [start, stop) of the utterance, zero past its end; trims the rest."""
        lo, hi = start - utt.out_offset, stop - utt.out_offset
        audio = utt.out[max(lo, 0) : hi]
        if len(audio) < stop - start:
            audio = np.concatenate([audio, np.zeros(stop - start - len(audio), np.float32)])
        utt.out = utt.out[max(hi, 0) :]
        utt.out_offset = stop
        return audio


def _joined(phones: list[Phone], more: Iterable[Phone]) -> list[Phone]:
    """``phones`` then ``more``, a phone continued across the two (the recogniser cuts the
    phone at its settled edge) made one again."""
    out = list(phones)
    for phone in more:
        last = out[-1] if out else None
        if last is not None and last.name == phone.name and abs(last.end_s - phone.start_s) < 1e-6:
            out[-1] = Phone(last.name, last.start_s, phone.end_s)
        else:
            out.append(phone)
    return out


def _from_start(utt: _Utterance) -> list[Phone]:
    """The utterance's phones in seconds from its start (streamed audio: its first sound)."""
    origin_s = utt.origin / max(utt.rate, 1)
    return [
        Phone(p.name, max(0.0, p.start_s - origin_s), p.end_s - origin_s)
        for p in utt.phones
        if p.end_s > origin_s
    ]
