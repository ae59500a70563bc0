"""The offline voice (Piper), live (tts_piper.py: the first clause on its own, phones timed by
the voice itself), in a process of its own and kept warm, for live conversations:

    python -m likeness.providers.voice_process [--steady]    < JSON lines {"text": ...}

answers each line with one JSON header line per sentence, ``{"rate": hz, "samples": n,
"text": sentence, "phones": [[name, start_s, end_s], ...], "last": false}`` each followed by
its n float32 samples, then ``{"end": true, "last": true}``; or, at any point, with
``{"error": message, "last": true}``.

Why a process: synthesis holds the GIL between its ONNX calls, and alignment (PocketSphinx, for
a sentence piper cannot time) all through, and a live conversation's clock must not stall
behind them; and the voice (3 s) and a word decoder (0.2-2.5 s) load once, not per sentence.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import numpy as np

from likeness.providers.base import Phone, SpeechChunk


class VoiceFailed(RuntimeError):
    """The voice could not say a text (nothing speakable in it), or its process died."""


class VoiceProcess:
    """say(text) → its sentences as SpeechChunks, the first as soon as it is ready. One text
    at a time (a lock serialises callers, from any thread)."""

    def __init__(self, steady: bool = False) -> None:
        """``steady``: the same take of a text every time (tts_piper.STEADY_NOISE)."""
        self._lock = threading.Lock()
        self._child = subprocess.Popen(
            [sys.executable, "-m", "likeness.providers.voice_process"]
            + (["--steady"] if steady else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def say(self, text: str) -> Iterator[SpeechChunk]:
        """Raises VoiceFailed. Closing the iterator early skips the rest (still read off the
        pipe, so that the next text starts clean)."""
        stdin, stdout = self._child.stdin, self._child.stdout
        assert stdin is not None and stdout is not None
        with self._lock:
            try:
                stdin.write((json.dumps({"text": text}) + "\n").encode())
                stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise VoiceFailed(f"the voice process failed: {exc}") from exc
            last, wanted = False, True
            while not last:
                line = stdout.readline()
                if not line:
                    raise VoiceFailed("the voice process ended")
                header = json.loads(line)
                last = bool(header["last"])
                if "error" in header:
                    raise VoiceFailed(header["error"])
                if last:
                    return
                raw = stdout.read(4 * int(header["samples"]))
                if not wanted:
                    continue
                phones = tuple(Phone(*p) for p in header["phones"])
                samples = np.frombuffer(raw, np.float32).copy()
                try:
                    yield SpeechChunk(samples, int(header["rate"]), header["text"], (), phones)
                except GeneratorExit:
                    wanted = False  # drain the rest, then stop

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        try:
            self._child.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()


def main() -> None:
    from likeness.providers import asr_sphinx, tts_piper

    steady = "--steady" in sys.argv[1:]
    voice = tts_piper.PiperTts(asr_sphinx.word_decoder(), live=True, steady=steady)
    list(voice.say("Ready."))  # loads the voice before the first real text
    out = sys.stdout.buffer
    for line in sys.stdin:
        try:
            for chunk in voice.say(str(json.loads(line)["text"])):
                phones = [[p.name, p.start_s, p.end_s] for p in chunk.phones]
                samples = chunk.samples.astype(np.float32)
                header = {"rate": chunk.sample_rate_hz, "samples": len(samples),
                          "text": chunk.text, "phones": phones, "last": False}  # fmt: skip
                out.write((json.dumps(header) + "\n").encode() + samples.tobytes())
                out.flush()
            out.write(b'{"end": true, "last": true}\n')
            out.flush()
        except (ValueError, KeyError, TypeError) as exc:  # Unspeakable and TooLong too
            out.write((json.dumps({"error": str(exc), "last": True}) + "\n").encode())
            out.flush()


if __name__ == "__main__":
    main()
