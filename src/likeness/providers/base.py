"""The provider ports: what likeness asks of a voice-activity detector, a speech recogniser, a
phone recogniser, a language model and a voice, as small Protocols, and the plain values that
pass through them.

Engines, training and the real-time processors import only this module; the concrete
providers (PocketSphinx, Piper, …) are picked where the app is wired together. lint-imports
holds that line (pyproject.toml).

**Streams.** A live port takes an async iterable in (audio chunks as they arrive) and returns a
``Stream``: an async iterator that can be closed. Closing it, or cancelling the task that
iterates it, is how an interrupt cancels work: the provider stops its decoder, child process or
HTTP request and yields nothing more. Every async generator is a ``Stream``.

**Times** are seconds from the first sample of the stream, utterance or chunk they describe,
as each docstring says. Audio is (N,) float32 mono in [-1, 1] at the rate it states; a
provider resamples to what it needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Phone:
    """One CMU phone ("P", "AA", …; "SIL" for silence), in seconds from the audio's start."""

    name: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Word:
    """One spoken word, lower case, in seconds from the audio's start."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class AudioChunk:
    """samples: (N,) float32 mono in [-1, 1]."""

    samples: np.ndarray
    sample_rate_hz: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz


class Stream(Protocol[T_co]):
    """What a live port returns: an async iterator of results; ``aclose()`` cancels the work.
    (An ``AsyncIterator`` that can be closed; Python 3.11 cannot spell it as a subclass.)"""

    def __aiter__(self) -> AsyncIterator[T_co]: ...
    async def __anext__(self) -> T_co: ...
    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class VoiceActivity:
    """The person started (``speaking``) or stopped speaking, at ``at_s`` from the stream's
    first sample."""

    speaking: bool
    at_s: float


@runtime_checkable
class Vad(Protocol):
    def detect(self, audio: AsyncIterable[AudioChunk]) -> Stream[VoiceActivity]:
        """Starts and stops, alternating, the first a start; each as soon as it is decided (a
        stop only after the silence that decides it)."""
        ...


@dataclass(frozen=True)
class Transcript:
    """What was heard of one segment of speech, in seconds from the stream's first sample.
    ``final``: the segment is closed; else a partial that the next transcript replaces."""

    text: str
    final: bool
    start_s: float
    end_s: float


@runtime_checkable
class Asr(Protocol):
    def recognise(self, samples: np.ndarray, sample_rate_hz: int) -> str:
        """Offline: the words of the whole audio, lower case."""
        ...

    def hearing(
        self, samples: np.ndarray, sample_rate_hz: int
    ) -> AbstractContextManager[Callable[[], str]]:
        """Offline, beside the caller's own work: starts recognising the whole audio and
        gives a function that waits for its words (as ``recognise``'s). Leaving the block
        ends the work, whether or not its words were waited for."""
        ...

    def stream(self, audio: AsyncIterable[AudioChunk]) -> Stream[Transcript]:
        """Live: partials as the words come, and a final transcript for each segment the
        recogniser closes (the last one when the input ends)."""
        ...


@dataclass(frozen=True)
class SettledPhones:
    """Phones newly final, in order; every phone that ends before ``until_s`` has now been
    given. Seconds from the audio's first sample."""

    phones: tuple[Phone, ...]
    until_s: float


@runtime_checkable
class PhoneRecognizer(Protocol):
    """The phones of speech: what an engine closes and opens the lips on."""

    def phones(
        self, samples: np.ndarray, sample_rate_hz: int, text: str | None = None
    ) -> list[Phone]:
        """Offline: aligned to ``text`` when it is given and fits, else recognised."""
        ...

    def settle(self, samples: np.ndarray, sample_rate_hz: int) -> Iterator[SettledPhones]:
        """Offline, as it goes: a renderer draws the frames whose phones are final while the
        rest is still being recognised. Closing the iterator ends the work."""
        ...

    def stream(self, audio: AsyncIterable[AudioChunk]) -> Stream[SettledPhones]:
        """Live: the same, for audio that is still arriving."""
        ...


@dataclass(frozen=True)
class Message:
    """One turn of a conversation as a chat model sees it."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class ToolCall:
    """A function the model asks the application to call (likeness never runs it: the app gets
    a ``conversation.tool_call`` event). ``arguments``: JSON text, as the model wrote it."""

    name: str
    arguments: str
    call_id: str | None = None


@runtime_checkable
class Llm(Protocol):
    def reply(
        self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] = ()
    ) -> Stream[str | ToolCall]:
        """The assistant's next turn, a piece (a token or a few) at a time as it is generated,
        and any tool calls (OpenAI ``tools`` objects offered in ``tools``) once each is whole.
        Never raises: a model that fails says a fallback line instead. Closing the stream
        cancels the request: an interrupted turn stops costing."""
        ...

    async def aclose(self) -> None:
        """Releases what the model holds for this conversation (connections, a context)."""
        ...


@dataclass(frozen=True)
class SpeechChunk:
    """A piece of synthesised speech with the timing of what it says, so that lips can follow.

    samples: (N,) float32 mono; ``words`` and ``phones`` in seconds from this chunk's first
    sample (empty when the voice cannot time them)."""

    samples: np.ndarray
    sample_rate_hz: int
    text: str
    words: tuple[Word, ...]
    phones: tuple[Phone, ...]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz


@runtime_checkable
class Tts(Protocol):
    def speak(self, text: str) -> Stream[SpeechChunk]:
        """The chunks of ``text`` spoken, in order, the first as soon as it is ready."""
        ...


class ScriptVoice(Protocol):
    """An offline render's voice: a whole script → ((N,) float32 mono, sample_rate_hz, its
    phones in seconds from the first sample)."""

    def __call__(self, text: str) -> tuple[np.ndarray, int, list[Phone]]: ...
