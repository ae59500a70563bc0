"""Lip-sync quality, measured as a viewer would notice it.

    .venv/bin/python benchmarks/train.py && .venv/bin/python benchmarks/lipsync.py

The five LibriVox clips are force-aligned to their transcripts with PocketSphinx (phones at
10 ms), rendered through the replica trained from the 53 s clip, and the mouth opening of
every rendered frame is read back with FaceMesh. Reported per system:
  - offline, phones recognised: what /v2/videos does with an audio_url and `likeness render
    --audio` (no transcript: PocketSphinx phone recognition, then visemes)
  - offline, script aligned: /v2/videos with a script (the voice's audio aligned to its words)
  - live, loudness only: a streaming session (no phones; loudness and spectral cues)
  - frozen mouth: a mouth that never moves (the baseline)
and per system:
  - bilabials closed: share of /p b m/ during which the lips close (target >= 90 %)
  - open vowels open: share of /aa ae ah ao aw ay/ during which the mouth opens (>= 85 %)
  - A/V offset: lag (frames) that best aligns mouth opening with the audio envelope (0 +- 1)
  - mouth change p95: how much the lips' box changes from one frame to the next (grey levels,
    95th percentile, worst clip of the set); the person's own video is printed for scale —
    flicker (a jump between unrelated crops) would push it far above
Caveat: the reference alignment and the renderer's phone recognition share PocketSphinx's
acoustic model (different searches: forced alignment to the true words vs free phone
recognition), so the phone timings are not independent evidence; the read-back openings
and the offset are. The loudness cues were tuned on 0890/0920/0930 and the viseme floors
chosen on all five LibriVox clips, so the Piper set (ten Harvard sentences, another voice)
is the held-out figure ("script aligned" renders from the reference phones themselves
there, so it checks the rendering, not the timing). A contact sheet of rendered frames is
saved to benchmarks/out/lipsync_sheet.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import FIXTURES, OUT

from likeness.engines.mouthbank import MouthbankEngine, MouthbankModel
from likeness.face import landmarks as lm
from likeness.face.tracker import FaceMeshTracker
from likeness.media.audio import read_audio, resample
from likeness.media.speech import relative_features
from likeness.media.video import iter_frames
from likeness.providers.asr_sphinx import SphinxPhones, align
from likeness.providers.base import Phone
from likeness.providers.script import speak
from likeness.rendering.frames import AudioFrame
from likeness.rendering.source import frames_for
from likeness.training.quality import av_offset

SR = 16000
SHARED = FIXTURES.parent.parent.parent / "shared" / "data"  # the other three, when present
TRANSCRIPTS = {
    "librivox_0870.wav": "and mister john dashwood had then leisure to consider how much there "
    "might be prudently in his power to do for them",
    "librivox_0880.wav": "he was not an ill disposed young man",
    "librivox_0890.wav": "unless to be rather cold hearted and rather selfish is to be "
    "ill disposed",
    "librivox_0920.wav": "had he married a more a amiable woman he might have been made still more "
    "respectable than he was",
    "librivox_0930.wav": "he might even have been made amiable himself",
}
HELD_OUT = ("librivox_0870.wav", "librivox_0880.wav")
# Never looked at while the viseme parameters were chosen: Harvard sentences (list 1),
# spoken by the Piper voice; the reference is their forced alignment to these words.
PIPER = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It's easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch. "
    "The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage. "
    "Four hours of steady work faced us. A large size in stockings is hard to sell."
)
BILABIAL = {"P", "B", "M"}
OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY"}
CLOSED_BELOW = 0.035  # inner-lip gap / inter-ocular distance
OPEN_ABOVE = 0.07
SYSTEMS = (
    "offline, phones recognised",
    "offline, script aligned",
    "live, loudness only",
    "frozen mouth",
)


def openings(images: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Mouth opening per frame, and the 95th percentile of the frame-to-frame change of the
    mouth (mean absolute grey difference in a box round the lips): flicker shows there."""
    out, changes = [], []
    previous: np.ndarray | None = None
    with FaceMeshTracker() as tracker:
        for image in images:
            points = tracker.landmarks(image)
            out.append(np.nan if points is None else float(lm.mouth_opening(points)))
            if points is None:
                previous = None
                continue
            x0, y0 = points[lm.LIPS].min(axis=0).astype(int) - 4
            x1, y1 = points[lm.LIPS].max(axis=0).astype(int) + 4
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
            if previous is not None:
                changes.append(float(np.abs(grey - previous)[y0:y1, x0:x1].mean()))
            previous = grey
    return np.array(out), float(np.percentile(changes, 95)) if changes else float("nan")


def render(
    model: MouthbankModel, samples: np.ndarray, script: list[Phone], system: str
) -> list[np.ndarray]:
    if system == "offline, phones recognised":
        return [f.image for f in frames_for(model, AudioFrame(samples, SR), SphinxPhones())]
    if system == "offline, script aligned":
        return [f.image for f in frames_for(model, AudioFrame(samples, SR), script)]
    session = model.session()
    n = int(np.ceil(len(samples) / SR * model.fps))
    if system == "frozen mouth":
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
    rows: dict[str, dict[str, dict[str, float]]] = {system: {} for system in SYSTEMS}
    sheet: list[np.ndarray] = []
    inputs = {}  # name: (16 kHz speech, its phones aligned to the true words)
    for name, text in TRANSCRIPTS.items():
        path = FIXTURES / name if (FIXTURES / name).exists() else SHARED / name
        if path.exists():
            samples = read_audio(path, SR)[0]
            inputs[name] = (samples, align(samples, text))
    voice, rate, voice_phones = speak(PIPER)
    inputs["piper"] = (resample(voice, rate, SR), voice_phones)
    for name, (samples, phones) in inputs.items():
        for system in SYSTEMS:
            images = render(model, samples, phones, system)
            opening, change = openings(images)
            rows[system][name] = {**score(opening, phones, model.fps, samples), "change": change}
            if system == SYSTEMS[0] and not sheet:
                sheet = images[10:58:3]
    sets = (
        ("LibriVox, all five", tuple(TRANSCRIPTS)),
        ("LibriVox 0870 + 0880 alone", HELD_OUT),
        ("Piper, Harvard list 1 (held out)", ("piper",)),
    )
    for title, names in sets:
        print(f"{title}:")
        print(
            f"  {'system':<28} {'bilabials closed':>17} {'open vowels open':>17}"
            f" {'mouth change p95':>17}  A/V offset"
        )
        for system, per_clip in rows.items():
            results = [r for n, r in per_clip.items() if n in names]
            n_b = sum(r["n_bilabials"] for r in results)
            n_v = sum(r["n_vowels"] for r in results)
            b = sum(r["bilabials"] * r["n_bilabials"] for r in results) / max(1, n_b)
            v = sum(r["open_vowels"] * r["n_vowels"] for r in results) / max(1, n_v)
            offsets = ", ".join(f"{r['offset']:+.0f}" for r in results)
            change = max(r["change"] for r in results)
            print(
                f"  {system:<28} {b:>11.0%} of {n_b:<3} {v:>11.0%} of {n_v:<3}"
                f" {change:>17.1f}  {offsets}"
            )
    real = list(iter_frames(FIXTURES / "talking_unsynced.mp4"))[:500]
    print(f"the person's own talking video: mouth change p95 {openings(real)[1]:.1f} grey levels")
    if sheet:
        rows_img = [np.concatenate(sheet[i : i + 8], axis=1) for i in range(0, 16, 8)]
        cv2.imwrite(str(OUT / "lipsync_sheet.png"), np.concatenate(rows_img, 0)[:, :, ::-1])
        print(f"contact sheet: {OUT / 'lipsync_sheet.png'}")


if __name__ == "__main__":
    main()
