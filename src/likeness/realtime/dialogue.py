"""What a conversation's LLM reads, and how its answer becomes speech: pure, no I/O.

- ``Dialogue``: the system message (the persona's ``system_prompt`` and ``context``, then the
  conversation's ``conversational_context``, which ``conversation.append_llm_context`` and
  ``conversation.overwrite_llm_context`` change), then the turns. A replica turn that was
  interrupted is cut to what was actually said: the model must not believe it said the rest.
  Old turns are left out once the whole passes a character budget (the system message stays).
- ``SentenceChunker``: the model's pieces (tokens) → speakable chunks, each a whole sentence,
  but the first one cut early at a clause break, so the voice starts while the model writes.
- ``tool_call_properties``: a ``ToolCall`` → the properties of ``conversation.tool_call``
  (Tavus: ``name`` and ``arguments``, a JSON string; and the model's ``tool_call_id``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from likeness.providers.base import Message, ToolCall

MAX_CHARS = 24_000  # ~6k tokens: past it the oldest turns are left out


@dataclass
class _Turn:
    role: Literal["user", "assistant"]
    content: str
    inference_id: str | None = None


class Dialogue:
    def __init__(
        self,
        system_prompt: str | None = None,
        context: str | None = None,
        conversational_context: str | None = None,
        *,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self.system_prompt = system_prompt
        self.context = context
        self.conversational_context = conversational_context
        self.max_chars = max_chars
        self._turns: list[_Turn] = []

    # -- the context ---------------------------------------------------------------------
    def append_context(self, text: str) -> None:
        """``conversation.append_llm_context``: added to the conversational context (it
        becomes the conversational context when there was none)."""
        old = (self.conversational_context or "").strip()
        self.conversational_context = f"{old}\n{text.strip()}" if old else text.strip()

    def overwrite_context(self, text: str) -> None:
        """``conversation.overwrite_llm_context``: replaces the conversational context."""
        self.conversational_context = text.strip()

    def system(self) -> str:
        parts = (self.system_prompt, self.context, self.conversational_context)
        return "\n\n".join(p.strip() for p in parts if p and p.strip())

    # -- the turns -----------------------------------------------------------------------
    def user(self, text: str) -> None:
        """The person said ``text`` (heard, or sent with ``conversation.respond``). Said right
        after another user turn (no answer between), it joins that turn."""
        text = text.strip()
        if not text:
            return
        if self._turns and self._turns[-1].role == "user":
            self._turns[-1].content = f"{self._turns[-1].content} {text}"
        else:
            self._turns.append(_Turn("user", text))

    def replica(self, inference_id: str, text: str) -> None:
        """The replica's answer ``inference_id`` is ``text`` (the whole of what the model
        wrote; called again for the same id, it replaces it)."""
        for turn in self._turns:
            if turn.inference_id == inference_id:
                turn.content = text.strip()
                return
        if text.strip():
            self._turns.append(_Turn("assistant", text.strip(), inference_id))

    def interrupted(self, inference_id: str, said: str) -> None:
        """The answer ``inference_id`` was cut off: it keeps only ``said`` (what was heard;
        none of it, and the turn goes)."""
        for n, turn in enumerate(self._turns):
            if turn.inference_id == inference_id:
                if said.strip():
                    turn.content = said.strip()
                else:
                    del self._turns[n]
                return

    def messages(self) -> list[Message]:
        """What the model reads: the system message, then as many of the latest turns as fit
        ``max_chars`` (always the last one)."""
        system = self.system()
        budget = self.max_chars - len(system)
        kept: list[Message] = []
        for turn in reversed(self._turns):
            budget -= len(turn.content)
            if kept and budget < 0:
                break
            kept.append(Message(turn.role, turn.content))
        kept.reverse()
        return ([Message("system", system)] if system else []) + kept

    def transcript(self) -> list[dict[str, str]]:
        """Every turn as Tavus's ``transcript`` lists them: ``[{role, content}]``, the system
        message first."""
        system = self.system()
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": t.role, "content": t.content} for t in self._turns]


# -- speech ----------------------------------------------------------------------------------
# A sentence ends at . ! ? or … (and any closing quotes or brackets) before a space, or at a
# line break; a clause at , ; : or a dash before a space.
_SENTENCE_END = re.compile(r"(?:[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+|\n+)")
_CLAUSE_END = re.compile(r"(?:[,;:]|\s[-\u2013\u2014])\s+")
# "Dr. Smith", "e.g. this", "J. K." are not sentence ends.
_ABBREVIATION = re.compile(
    r"(?:\b(?i:mr|mrs|ms|dr|prof|st|jr|sr|vs|e\.g|i\.e)|(?:^|\s)[A-HJ-Z])\.\s+$"
)
_MARKUP = re.compile(r"[*#`]+")  # markdown the voice would spell out


class SentenceChunker:
    """Pieces of text in (``push``), speakable chunks out; ``flush`` at the end of the text.

    Every chunk is a whole sentence, except: the first is cut at a clause break once it has
    ``first_words`` words, so the voice can start early; a run-on past ``max_chars`` is cut
    at its last clause break or space. Chunks hold at least one letter or digit (a voice says
    nothing for "..."), without markdown."""

    def __init__(self, first_words: int = 4, max_chars: int = 200) -> None:
        self.first_words = first_words
        self.max_chars = max_chars
        self._text = ""
        self._given = 0

    def push(self, piece: str) -> list[str]:
        self._text += piece
        out: list[str] = []
        while (cut := self._cut()) is not None:
            chunk = _speakable(self._text[:cut])
            self._text = self._text[cut:]
            self._given += len(chunk)
            out += chunk
        return out

    def flush(self) -> list[str]:
        out, self._text = _speakable(self._text), ""
        self._given += len(out)
        return out

    def _cut(self) -> int | None:
        for end in _SENTENCE_END.finditer(self._text):
            if not _ABBREVIATION.search(self._text[: end.end()]):
                return end.end()
        if self._given == 0:
            for end in _CLAUSE_END.finditer(self._text):
                if len(self._text[: end.start()].split()) >= self.first_words:
                    return end.end()
        if len(self._text) > self.max_chars:
            head = self._text[: self.max_chars]
            clauses = list(_CLAUSE_END.finditer(head))
            if clauses:
                return clauses[-1].end()
            space = head.rfind(" ")
            return space + 1 if space > 0 else self.max_chars
        return None


def _speakable(text: str) -> list[str]:
    text = " ".join(_MARKUP.sub("", text).split())
    return [text] if any(c.isalnum() for c in text) else []


def sentence_chunks(pieces: Iterable[str], first_words: int = 4) -> Iterator[str]:
    """``SentenceChunker`` over a whole sequence of pieces."""
    chunker = SentenceChunker(first_words)
    for piece in pieces:
        yield from chunker.push(piece)
    yield from chunker.flush()


def tool_call_properties(call: ToolCall) -> dict[str, Any]:
    """The ``properties`` of a ``conversation.tool_call`` event (its ``inference_id`` is the
    user utterance that led to it)."""
    props: dict[str, Any] = {"name": call.name, "arguments": call.arguments}
    if call.call_id:
        props["tool_call_id"] = call.call_id
    return props
