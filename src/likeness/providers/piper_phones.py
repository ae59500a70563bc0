"""The phones Piper says, timed by Piper itself: no recognition pass over its own speech.

Piper's voices (VITS) decide how many audio frames each phoneme gets before they make a sound;
the graph computes those durations (a ``Ceil`` node) but does not output them. ``with_durations``
adds that tensor to the model's outputs, and piper then reports the samples of every phoneme
(``include_alignments``). piper does the same with the ``onnx`` package, which would pull in a
protobuf newer than mediapipe allows: the edit is one appended field, done here on the
serialized model (protobuf's wire format).

``phones`` turns piper's espeak phonemes (IPA, one symbol each) into the CMU phones the rest of
likeness speaks (visemes.py), on the audio's own clock.
"""

# ruff: noqa: RUF001  (IPA symbols that look like Latin letters are meant here)
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from likeness.providers.base import Phone

_LEN = 2  # protobuf wire type of a length-delimited field
_GRAPH, _NODE, _OUTPUT = 7, 1, 12  # ModelProto.graph, GraphProto.node, GraphProto.output
_NODE_OUTPUT, _OP_TYPE, _NAME = 2, 4, 1  # NodeProto.output, .op_type; ValueInfoProto.name


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _encode(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _encode(number << 3 | _LEN) + _encode(len(payload)) + payload


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, where its tag starts, its payload's start, its end) of a message."""
    i = start
    while i < end:
        at = i
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            _, i = _varint(buf, i)
            yield key >> 3, at, i, i
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            yield key >> 3, at, i, i
        elif wire == _LEN:
            size, payload = _varint(buf, i)
            i = payload + size
            yield key >> 3, at, payload, i
        else:
            raise ValueError(f"not an ONNX model (protobuf wire type {wire})")


def with_durations(model: bytes) -> bytes:
    """A serialized Piper ONNX model → the same model that also outputs its phoneme
    durations (the one ``Ceil`` node's output, as piper's own patch does); a model that
    outputs them already comes back as it is. Raises ValueError for a model without exactly
    one ``Ceil``."""
    graph = next(((at, s, e) for n, at, s, e in _fields(model, 0, len(model)) if n == _GRAPH), None)
    if graph is None:
        raise ValueError("not an ONNX model (no graph)")
    at, start, end = graph
    ceil, outputs = [], []
    for number, _, part_start, part_end in _fields(model, start, end):
        if number not in (_NODE, _OUTPUT):
            continue
        parts = [(n, model[s:e]) for n, _, s, e in _fields(model, part_start, part_end)]
        if number == _OUTPUT:
            outputs += [value for n, value in parts if n == _NAME]
        elif (_OP_TYPE, b"Ceil") in parts:
            ceil += [value for n, value in parts if n == _NODE_OUTPUT]
    if len(ceil) != 1:
        raise ValueError(f"expected one Ceil output in the voice, found {len(ceil)}")
    if ceil[0] in outputs:
        return model
    patched = model[start:end] + _field(_OUTPUT, _field(_NAME, ceil[0]))
    return model[:at] + _field(_GRAPH, patched) + model[end:]


# espeak's IPA (en-us, as piper phonemizes) → CMU phones.
IPA_TO_CMU = {
    "p": "P", "b": "B", "m": "M", "f": "F", "v": "V", "θ": "TH", "ð": "DH", "t": "T",
    "d": "D", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "k": "K", "ɡ": "G", "g": "G",
    "ŋ": "NG", "n": "N", "l": "L", "ɫ": "L", "ɹ": "R", "r": "R", "w": "W", "ʍ": "W",
    "j": "Y", "h": "HH", "ɾ": "T", "ʔ": "T", "x": "K", "ç": "HH",
    "a": "AA", "ɑ": "AA", "ɒ": "AA", "æ": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɔ": "AO",
    "ɛ": "EH", "ɜ": "ER", "ɚ": "ER", "e": "EY", "ɪ": "IH", "ᵻ": "IH", "i": "IY", "o": "OW",
    "ʊ": "UH", "u": "UW",
}  # fmt: skip
# Two-symbol sounds come as two phonemes: one CMU phone over both (AY is an open vowel all
# through, as CMU's dictionary and the offline alignment say it).
PAIRS = {
    ("a", "ɪ"): "AY", ("a", "ʊ"): "AW", ("e", "ɪ"): "EY", ("o", "ʊ"): "OW", ("ɔ", "ɪ"): "OY",
    ("t", "ʃ"): "CH", ("d", "ʒ"): "JH",
}  # fmt: skip
PAUSES = frozenset('^$.,!?;:-—()"')  # piper's sentence start/end marks and punctuation
BEFORE = frozenset(" ˈˌ")  # a word gap or a stress mark: the time belongs to what follows
# Measured on Piper's joe voice: bilabial stretches are quietest, and vowels loudest, when
# the phones are taken this much earlier than the durations say (the audio leads them).
LEAD_S = 0.02


class Alignment(Protocol):
    """piper.voice.PhonemeAlignment."""

    phoneme: str
    phoneme_ids: Sequence[int]
    num_samples: int


def phones(
    alignments: Sequence[Alignment], samples_per_id: Sequence[int], pad_id: int, rate_hz: int
) -> list[Phone]:
    """piper's phoneme alignments of one sentence (each phoneme with the pad after it) and
    the samples of every phoneme id → CMU phones in seconds from the audio's first sample.

    A phone runs from the middle of the pad before it to the middle of the pad after it (the
    pad is the passage from one to the next); word gaps and stress marks join the phone after
    them (a gap before /b/ holds its closure), length marks and unknown symbols the one
    before; sentence marks and punctuation are SIL; a diphthong or affricate is one phone."""
    spans: list[tuple[str, int]] = []  # (phoneme, end in samples)
    at, ids = 0, 0
    for alignment in alignments:
        n = len(alignment.phoneme_ids)
        own = samples_per_id[ids : ids + n]
        pad = sum(s for i, s in zip(alignment.phoneme_ids, own, strict=True) if i == pad_id)
        core = alignment.num_samples - pad
        spans.append((alignment.phoneme, at + core + pad // 2))
        at, ids = at + alignment.num_samples, ids + n
    out: list[tuple[str, int, int]] = []  # (name, start, end) in samples
    start = 0
    carried: int | None = None  # start of a gap or stress mark waiting for its phone
    previous = ""  # the symbol before
    for phoneme, end in spans:
        pair = PAIRS.get((previous, phoneme))
        previous = phoneme
        if pair is not None and out:
            out[-1] = (pair, out[-1][1], end)
        elif phoneme in BEFORE:
            carried = start if carried is None else carried
        elif phoneme in PAUSES or phoneme in IPA_TO_CMU:
            name = "SIL" if phoneme in PAUSES else IPA_TO_CMU[phoneme]
            begin = start if carried is None else carried
            carried = None
            if out and name == "SIL" == out[-1][0]:
                out[-1] = (name, out[-1][1], end)
            else:
                out.append((name, begin, end))
        elif out:
            out[-1] = (out[-1][0], out[-1][1], end)
        start = end
    lead = round(LEAD_S * rate_hz)
    timed = [
        Phone(name, max(0, s - lead) / rate_hz, max(0, e - lead) / rate_hz) for name, s, e in out
    ]
    if timed:  # the last phone runs to the end of the audio
        timed[-1] = Phone(timed[-1].name, timed[-1].start_s, at / rate_hz)
    return timed
