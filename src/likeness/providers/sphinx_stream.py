"""Phone recognition with PocketSphinx, as it goes, and runnable as a process of its own.

PocketSphinx holds the GIL while it decodes, so a renderer that draws frames while the phones
of its audio are still being recognised runs the recognition in a child process:

    python -m likeness.providers.sphinx_stream   < 16 kHz int16 mono PCM   > JSON lines

Each line is ``{"until": seconds, "phones": [[name, start_s, end_s], ...]}``: the phones newly
settled, final up to ``until``. This module imports nothing heavy, so the child starts in
~0.1 s; asr_sphinx.py is the interface the rest of likeness uses.

``--live`` serves a live call instead: one child for many utterances, each sent as
length-prefixed PCM pieces (4-byte little-endian length, then the bytes; length 0 ends the
utterance), looked at every 0.05 s and settled 0.15 s behind the audio, the phone that spans
that edge cut there (a live mouth cannot wait a second; the few phones this settles early are
the price). Lines then also carry ``"utt"``
(counting utterances from 0) and ``"final"``.

``--words`` recognises words instead, once its input has ended, and writes one line,
``{"heard": "the words"}`` (the consent check, beside the tracking).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

SAMPLE_RATE_HZ = 16000
FRAME_S = 0.01  # PocketSphinx's feature frames
LOOK_EVERY_S = 0.5  # how often the settled phones are looked at
# A phone counts as settled once it ended this long before the audio decoded so far: on the
# five LibriVox clips the settled phones were then exactly the final ones (0.5 s: one not).
SETTLE_S = 1.0
LIVE_LOOK_EVERY_S = 0.05
# On the five LibriVox clips, phones settled (and cut, see settled()) 0.15 s behind the audio
# in 100 ms pieces agree with the offline ones on 98.5 % of the frames' visemes (97.6 % of the
# closed frames; uncut: 98.1 % and 97.1 %, each frame ~60 ms later); 0.1 s behind, 95 % (95 %).
LIVE_SETTLE_S = 0.15
# How much audio one call decodes (asr_sphinx.recognise too). Each call holds the GIL, so other
# threads (a job's heartbeat) get a turn between calls; a renderer needs more than that, hence
# the child process.
PIECE_S = 0.05

Segment = tuple[str, float, float]  # phone, start_s, end_s


def phone_decoder() -> Any:
    """An "allphone" decoder with the phone language model in the wheel. It needs no word
    dictionary: leaving the 130,000-word one out builds it in 0.015 s instead of 0.22 s, and
    it recognises the same phones."""
    from pocketsphinx import Decoder, get_model_path

    return Decoder(
        loglevel="FATAL",
        allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"),
        dict=None,
        lm=None,
        lw=2.0,
        beam=1e-20,
        pbeam=1e-20,
    )


# The word search keeps at most this many HMMs active a frame (PocketSphinx's default: 30,000).
# On 40 s of speech that cuts the consent check's recognition from 12-23 to 4-6 CPU-s; the
# consent clips score the same or one word (0.025) lower (ADR 0008, addendum). Tighter beams
# instead (1e-20, 1e-35) lost half the statement's words.
MAX_HMMS_A_FRAME = 2000


def word_decoder() -> Any:
    """A word decoder: the US-English model, language model and dictionary in the wheel."""
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL", maxhmmpf=MAX_HMMS_A_FRAME)


def words(pcm: bytes) -> str:
    """The words heard in 16 kHz int16 mono PCM, decoded as one utterance (its loudness
    normalised over the whole of it), lower case."""
    decoder = word_decoder()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return str(hypothesis.hypstr) if hypothesis is not None else ""


def segments(decoder: Any) -> list[Segment]:
    """The decoder's current best phone path."""
    return [
        (str(s.word), s.start_frame * FRAME_S, (s.end_frame + 1) * FRAME_S)
        for s in decoder.seg() or ()  # None for an utterance too short to hold a phone
    ]


def settled(
    pcm: Iterable[bytes],
    decoder: Any = None,
    settle_s: float = SETTLE_S,
    look_every_s: float = LOOK_EVERY_S,
    cut: bool = False,
) -> Iterator[tuple[list[Segment], float]]:
    """(phones newly settled, time up to which phones are final) as the int16 PCM pieces
    are decoded; lastly (the remaining phones, the audio's end). With ``cut``, the phone
    that spans the settled edge is given up to the edge, and its rest later as a phone of
    the same name: a frame in a long vowel need not wait for the vowel's end."""
    decoder = decoder or phone_decoder()
    until = decoded = look_at = 0.0
    decoder.start_utt()
    for piece in pcm:
        decoder.process_raw(piece)
        decoded += len(piece) / 2 / SAMPLE_RATE_HZ
        if decoded < look_at + look_every_s:
            continue
        look_at = decoded
        edge = decoded - settle_s
        if cut:
            fresh = _after(segments(decoder), until, edge)
        else:
            fresh = [p for p in segments(decoder) if p[1] >= until and p[2] < edge]
        if fresh:
            until = fresh[-1][2]
            yield fresh, until
    decoder.end_utt()
    if cut:
        yield _after(segments(decoder), until, decoded), decoded
    else:
        yield [p for p in segments(decoder) if p[1] >= until], decoded


def _after(path: list[Segment], since: float, edge: float) -> list[Segment]:
    """The phones of ``path`` between ``since`` and ``edge``, cut at both."""
    cut = [(name, max(start, since), min(end, edge)) for name, start, end in path]
    return [p for p in cut if p[2] > p[1]]


def _utterance(stdin: BinaryIO) -> Iterator[bytes]:
    """The pieces of one live utterance, up to its end mark (or the end of input)."""
    while len(head := stdin.read(4)) == 4:
        size = int.from_bytes(head, "little")
        if size == 0:
            return
        yield stdin.read(size)


def live() -> None:
    stdin: Any = sys.stdin.buffer  # a BufferedReader: it has peek()
    decoder, utt = phone_decoder(), 0
    while stdin.peek(1):
        pieces = _utterance(stdin)
        out = settled(pieces, decoder, LIVE_SETTLE_S, LIVE_LOOK_EVERY_S, cut=True)
        for fresh, until in out:
            line = {"utt": utt, "until": until, "phones": fresh, "final": False}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        sys.stdout.write(json.dumps({"utt": utt, "until": 0, "phones": [], "final": True}) + "\n")
        sys.stdout.flush()
        utt += 1


def main() -> None:
    if sys.argv[1:] == ["--live"]:
        live()
        return
    stdin = sys.stdin.buffer
    if sys.argv[1:] == ["--words"]:
        sys.stdout.write(json.dumps({"heard": words(stdin.read())}) + "\n")
        return
    size = 2 * int(SAMPLE_RATE_HZ * PIECE_S)
    for fresh, until in settled(iter(lambda: stdin.read(size), b"")):
        sys.stdout.write(json.dumps({"until": until, "phones": fresh}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
