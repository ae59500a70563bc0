"""Lip-sync quality, measured as a viewer would notice it.

    .venv/bin/python benchmarks/train.py && .venv/bin/python benchmarks/lipsync.py

The LibriVox clips are force-aligned to their transcripts with PocketSphinx (phones at 10 ms),
rendered through the replica trained from the 53 s clip, and the mouth opening of every
rendered frame is read back with FaceMesh. Reported per system (the engine, and a frozen
mouth that never moves):
  - bilabials closed: share of /p b m/ during which the lips close (target >= 90 %)
  - open vowels open: share of /aa ae ah ao aw ay/ during which the mouth opens (>= 85 %)
  - A/V offset: lag (frames) that best aligns mouth opening with the audio envelope (0 +- 1)
A contact sheet of rendered frames is saved to benchmarks/out/lipsync_sheet.png.

Needs `pocketsphinx` (a PyPI wheel with its English model inside): `pip install pocketsphinx`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import FIXTURES, OUT

from likeness.engines.mouthbank import MouthbankEngine, MouthbankModel
from likeness.engines.mouthbank.features import relative_features
from likeness.face import landmarks as lm
from likeness.face.tracker import FaceMeshTracker
from likeness.media.audio import read_audio, to_int16
from likeness.training.quality import av_offset

SR = 16000
TRANSCRIPTS = {
    "librivox_0870.wav": "and mister john dashwood had then leisure to consider how much there "
    "might be prudently in his power to do for them",
    "librivox_0880.wav": "he was not an ill disposed young man",
}
BILABIAL = {"P", "B", "M"}
OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY"}
CLOSED_BELOW = 0.035  # inner-lip gap / inter-ocular distance
OPEN_ABOVE = 0.07


@dataclass(frozen=True)
class Phone:
    name: str
    start_s: float
    end_s: float


def align(samples: np.ndarray, text: str) -> list[Phone]:
    from pocketsphinx import Decoder

    pcm = to_int16(samples).tobytes()
    decoder = Decoder(loglevel="FATAL")
    decoder.set_align_text(text)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return [
        Phone(p.name, p.start / 100, (p.start + p.duration) / 100)
        for word in decoder.get_alignment()
        for p in word
    ]


def openings(images: list[np.ndarray]) -> np.ndarray:
    out = []
    with FaceMeshTracker() as tracker:
        for image in images:
            points = tracker.landmarks(image)
            out.append(np.nan if points is None else float(lm.mouth_opening(points)))
    return np.array(out)


def render(model: MouthbankModel, samples: np.ndarray, frozen: bool) -> list[np.ndarray]:
    session = model.session()
    n = int(np.ceil(len(samples) / SR * model.fps))
    if frozen:
        return [session.idle_frame().image for _ in range(n)]
    session.push_audio(samples, SR)
    session.end_audio()
    return [f.image for f in session.pull()]


def score(
    opening: np.ndarray, phones: list[Phone], fps: float, samples: np.ndarray
) -> dict[str, float]:
    def frames(p: Phone) -> np.ndarray:
        lo = int(np.floor(p.start_s * fps))
        hi = max(lo + 1, int(np.ceil(p.end_s * fps)))
        return opening[lo:hi]

    closed = [np.nanmin(frames(p)) < CLOSED_BELOW for p in phones if p.name in BILABIAL]
    opened = [np.nanmax(frames(p)) > OPEN_ABOVE for p in phones if p.name in OPEN_VOWELS]
    envelope = relative_features(samples, fps)[:, 0]
    offset = av_offset(opening, envelope)
    return {
        "bilabials": float(np.mean(closed)) if closed else np.nan,
        "n_bilabials": len(closed),
        "open_vowels": float(np.mean(opened)) if opened else np.nan,
        "n_vowels": len(opened),
        "offset": np.nan if offset is None else offset,
    }


def main() -> None:
    bundle = OUT / "53s_400x300" / "bundle"
    if not bundle.exists():
        sys.exit(f"no bundle at {bundle}: run benchmarks/train.py first")
    model = MouthbankEngine().load(bundle)
    rows: dict[str, list[dict[str, float]]] = {"mouthbank": [], "frozen mouth": []}
    sheet: list[np.ndarray] = []
    for name, text in TRANSCRIPTS.items():
        samples, _ = read_audio(FIXTURES / name, SR)
        phones = align(samples, text)
        for system in rows:
            images = render(model, samples, frozen=system == "frozen mouth")
            rows[system].append(score(openings(images), phones, model.fps, samples))
            if system == "mouthbank" and not sheet:
                sheet = images[10:58:3]
    print(f"{'system':<14} {'bilabials closed':>17} {'open vowels open':>17} {'A/V offset':>11}")
    for system, results in rows.items():
        n_b = sum(r["n_bilabials"] for r in results)
        n_v = sum(r["n_vowels"] for r in results)
        b = sum(r["bilabials"] * r["n_bilabials"] for r in results) / max(1, n_b)
        v = sum(r["open_vowels"] * r["n_vowels"] for r in results) / max(1, n_v)
        offsets = ", ".join(f"{r['offset']:+.0f}" for r in results)
        print(f"{system:<14} {b:>11.0%} of {n_b:<3} {v:>11.0%} of {n_v:<3} {offsets:>11}")
    if sheet:
        rows_img = [np.concatenate(sheet[i : i + 8], axis=1) for i in range(0, 16, 8)]
        cv2.imwrite(str(OUT / "lipsync_sheet.png"), np.concatenate(rows_img, 0)[:, :, ::-1])
        print(f"contact sheet: {OUT / 'lipsync_sheet.png'}")


if __name__ == "__main__":
    main()
