"""Lip-sync quality, measured strictly and beside chance, as a viewer would notice it.

    .venv/bin/python benchmarks/lipsync.py [--tuning]

The replica is trained (once, cached under benchmarks/out/lipsync_replica/) from the 53 s
clip's video with only LibriVox speech under it, so no held-out voice is in its training
audio. Each voice's speech is force-aligned to its true words with PocketSphinx (the
reference phones), rendered, and every rendered frame is read back with FaceMesh in 3-D.

Voices: LibriVox (five clips, a man) and the Piper voice (ten Harvard sentences) are the
TUNING voices: the engine's cues, floors and bank choices were chosen on them. Allison (two
studio prompts, a woman, 8 kHz) is HELD OUT: never looked at while tuning the engine; it is
reported on its own and is the figure that counts. (phones_whisper's pause cut was found on
Allison's phones, not on renders: benchmarks/phones.py holds out a Piper list for that.)

Systems:
  - audio_url: what /v2/videos does with an audio_url (Whisper's words heard and aligned)
  - script: /v2/videos with a script (phones aligned to the words; here the reference ones)
  - live echo: streamed echo audio in a live call (phones recognised freely as it streams,
    providers/sphinx_live.py; here all settled before the frames render)
  - live, no phones: a streaming session on loudness and spectral cues alone
  - frozen mouth: a mouth that never moves (the floor)
Measures (training/quality.lip_scores):
  - sealed: share of /p b m/ whose lips touch (inner-lip gap, points 13/14, 82/87, 312/317,
    <= 2 % of the outer-eye-corner distance 33/263) in the frame nearest the phone's middle
    or either neighbour; target >= 90 % and >= 35 points above chance
  - opened: share of /aa ae ah ao aw ay/ whose gap there exceeds the render's median over its
    speech frames; target >= 85 % and >= 15 points above chance
  - chance: the same three-frame windows on every speech frame of the same render
  - A/V offset: lag (frames) at which the gap best follows the audio envelope (0 +- 1)
  - change p95: frame-to-frame change of the lips' box (grey levels, worst clip): flicker
Contact sheets: benchmarks/out/lipsync_mouths.png (the held-out voice's rendered mouths at
its bilabials, top rows, and open vowels, bottom rows, script render) and
benchmarks/out/lipsync_sheet.png (whole frames).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import FIXTURES, OUT, REAL, ROOT

from likeness.engines.mouthbank import MouthbankEngine, MouthbankModel, visemes
from likeness.face import landmarks as lm
from likeness.face.tracker import FaceMeshTracker
from likeness.media.audio import read_audio, resample
from likeness.media.speech import relative_features
from likeness.media.video import iter_frames, write_mp4
from likeness.providers.asr_sphinx import align
from likeness.providers.base import Phone, SettledPhones
from likeness.providers.phones_whisper import WhisperPhones
from likeness.providers.script import speak
from likeness.providers.sphinx_live import SphinxLivePhones
from likeness.rendering.frames import AudioFrame
from likeness.rendering.source import frames_for
from likeness.training.quality import av_offset, lip_scores

SR = 16000
# The rest of the real media sits beside the checkout (or beside a worktree's parent).
SHARED = next(
    (p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data",
)
LIBRIVOX = {
    "librivox_0870.wav": "and mister john dashwood had then leisure to consider how much there "
    "might be prudently in his power to do for them",
    "librivox_0880.wav": "he was not an ill disposed young man",
    "librivox_0890.wav": "unless to be rather cold hearted and rather selfish is to be "
    "ill disposed",
    "librivox_0920.wav": "had he married a more a amiable woman he might have been made still more "
    "respectable than he was",
    "librivox_0930.wav": "he might even have been made amiable himself",
}
# Held out: never looked at while tuning. Transcribed by ear (and faster-whisper tiny.en).
ALLISON = {
    "allison_demo-congrats.wav": "congratulations you have successfully installed and executed "
    "the asterisk open source p b x you have also installed a set of sample sounds and "
    "configuration files that should help you get started like a normal p b x you will "
    "navigate this demonstration by dialing digits if you are using a console channel driver "
    "instead of a real phone you can use the dial answer and hang up commands to simulate the "
    "actions of a standard telephone",
    "allison_vm-intro.wav": "please leave your message after the tone when done hang up or "
    "press the pound key",
}
# Harvard sentences (list 1), spoken by the Piper voice; its phones: aligned to these words.
PIPER = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It's easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch. "
    "The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage. "
    "Four hours of steady work faced us. A large size in stockings is hard to sell."
)
SYSTEMS = ("audio_url", "script", "live echo", "live, no phones", "frozen mouth")
SETS = (
    ("HELD OUT: Allison, two studio prompts (never used in tuning)", tuple(ALLISON)),
    ("tuning: LibriVox, five clips", tuple(LIBRIVOX)),
    ("tuning: Piper, Harvard list 1", ("piper",)),
)


def replica() -> MouthbankModel:
    """The benchmark's replica: the 53 s clip's video with LibriVox speech under it."""
    work = OUT / "lipsync_replica"
    if not (work / "bundle" / "manifest.json").exists():
        speech = np.concatenate([_read(name) for name in LIBRIVOX])
        frames = list(iter_frames(REAL))
        n = int(len(frames) / 25.0 * SR)
        audio = np.resize(np.concatenate([speech, np.zeros(SR // 2, np.float32)]), n)
        clip = OUT / "lipsync_train.mp4"
        write_mp4(clip, frames, 25.0, audio, SR, crf=18)
        from train import train_one

        train_one(clip, work)
    return MouthbankEngine().load(work / "bundle")


def _read(name: str) -> np.ndarray:
    path = FIXTURES / name if (FIXTURES / name).exists() else SHARED / name
    return read_audio(path, SR)[0]


def read_back(images: list[np.ndarray]) -> tuple[np.ndarray, float, list[np.ndarray | None]]:
    """Per frame: the 3-D lip gap (NaN where FaceMesh finds no face) and the lips' box; and
    the 95th percentile of the frame-to-frame change of that box (grey levels)."""
    gaps, boxes, changes = [], [], []
    previous: np.ndarray | None = None
    with FaceMeshTracker() as tracker:
        for image in images:
            points = tracker.landmarks_3d(image)
            if points is None:
                gaps.append(np.nan)
                boxes.append(None)
                previous = None
                continue
            gaps.append(float(lm.lip_gap(points)))
            x0, y0 = points[lm.LIPS, :2].min(axis=0).astype(int) - 4
            x1, y1 = points[lm.LIPS, :2].max(axis=0).astype(int) + 4
            boxes.append(np.array([x0, y0, x1, y1]))
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
            if previous is not None:
                changes.append(float(np.abs(grey - previous)[y0:y1, x0:x1].mean()))
            previous = grey
    p95 = float(np.percentile(changes, 95)) if changes else float("nan")
    return np.array(gaps), p95, boxes


def render(
    model: MouthbankModel, samples: np.ndarray, script: list[Phone], system: str
) -> list[np.ndarray]:
    if system == "audio_url":
        return [f.image for f in frames_for(model, AudioFrame(samples, SR), WhisperPhones())]
    if system == "script":
        return [f.image for f in frames_for(model, AudioFrame(samples, SR), script)]
    session = model.session()
    n = int(np.ceil(len(samples) / SR * model.fps))
    if system == "live echo":
        session.push_phones(live_phones(samples))
    if system == "frozen mouth":
        return [session.idle_frame().image for _ in range(n)]
    session.push_audio(samples, SR)
    session.end_audio()
    return [f.image for f in session.pull()]


def live_phones(samples: np.ndarray) -> list[Phone]:
    """The phones a live call's recogniser settles for streamed echo audio (100 ms chunks),
    joined across its settling edges as the speaker joins them."""
    done = threading.Event()
    got: list[Phone] = []

    def on_phones(utt: int, settled: SettledPhones, final: bool) -> None:
        for phone in settled.phones:
            last = got[-1] if got else None
            if last and last.name == phone.name and abs(last.end_s - phone.start_s) < 1e-6:
                got[-1] = Phone(last.name, last.start_s, phone.end_s)
            else:
                got.append(phone)
        if final:
            done.set()

    live = SphinxLivePhones(on_phones)
    try:
        live.begin()
        for i in range(0, len(samples), SR // 10):
            live.feed(samples[i : i + SR // 10], SR)
        live.finish()
        done.wait(60.0)
    finally:
        live.close()
    return got


def mouths(
    images: list[np.ndarray], boxes: list[np.ndarray | None], phones: list[Phone], fps: float
) -> np.ndarray:
    """Rows of mouth crops (each 3x), at the held-out voice's bilabials then open vowels."""
    tiles: list[np.ndarray] = []
    for names in (visemes.BILABIALS, visemes.OPEN_VOWELS):
        picked = [round((p.start_s + p.end_s) / 2 * fps) for p in phones if p.name in names]
        row = []
        for i in picked[:: max(1, len(picked) // 10)][:10]:
            box = boxes[min(i, len(boxes) - 1)]
            if box is None:
                continue
            x0, y0, x1, y1 = box
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            crop = images[i][max(0, cy - 24) : cy + 24, max(0, cx - 36) : cx + 36]
            row.append(cv2.resize(crop, (216, 144), interpolation=cv2.INTER_CUBIC))
        while len(row) < 10:
            row.append(np.zeros((144, 216, 3), np.uint8))
        tiles.append(np.concatenate(row, axis=1))
    return np.concatenate(tiles, axis=0)


def main() -> None:
    model = replica()
    inputs: dict[str, tuple[np.ndarray, list[Phone]]] = {}
    tuning = "--tuning" in sys.argv  # the tuning voices alone (never tune on the rest)
    for name, text in {**({} if tuning else ALLISON), **LIBRIVOX}.items():
        samples = _read(name)
        inputs[name] = (samples, align(samples, text))
    voice, rate, voice_phones = speak(PIPER)
    inputs["piper"] = (resample(voice, rate, SR), voice_phones)
    rows: dict[str, dict[str, dict[str, float]]] = {system: {} for system in SYSTEMS}
    for name, (samples, phones) in inputs.items():
        for system in SYSTEMS:
            images = render(model, samples, phones, system)
            gap, change, boxes = read_back(images)
            scores = lip_scores(gap, phones, model.fps)
            offset = av_offset(gap, relative_features(samples, model.fps)[:, 0])
            rows[system][name] = {
                **{k: np.nan if v is None else float(v) for k, v in scores.items()},
                "offset": np.nan if offset is None else offset,
                "change": change,
            }
            if name == "allison_demo-congrats.wav" and system == "script":
                sheet = mouths(images, boxes, phones, model.fps)
                cv2.imwrite(str(OUT / "lipsync_mouths.png"), sheet[:, :, ::-1])
                whole = images[40:88:3]
                grid = [np.concatenate(whole[i : i + 8], axis=1) for i in range(0, 16, 8)]
                cv2.imwrite(str(OUT / "lipsync_sheet.png"), np.concatenate(grid, 0)[:, :, ::-1])
    for title, names in SETS:
        if not any(n in inputs for n in names):
            continue
        print(f"{title}:")
        print(
            f"  {'system':<15} {'sealed (chance)':>22} {'opened (chance)':>22}"
            f" {'change p95':>10}  A/V offset"
        )
        for system, per_clip in rows.items():
            results = [r for n, r in per_clip.items() if n in names]
            cells = []
            for key, count in (
                ("bilabials_sealed", "bilabials"),
                ("open_vowels_opened", "open_vowels"),
            ):
                n = sum(r[count] for r in results)
                hit = sum(np.nan_to_num(r[key]) * r[count] for r in results) / max(1, n)
                base = sum(np.nan_to_num(r[key + "_chance"]) * r[count] for r in results)
                cells.append(f"{hit:>4.0%} of {n:<3.0f} ({base / max(1, n):>4.0%})")
            offsets = ", ".join(f"{r['offset']:+.0f}" for r in results)
            change = max(r["change"] for r in results)
            print(f"  {system:<15} {cells[0]:>22} {cells[1]:>22} {change:>10.1f}  {offsets}")
    real = list(iter_frames(REAL))[:500]
    print(f"the person's own video: change p95 {read_back(real)[1]:.1f} grey levels")
    print(f"contact sheets: {OUT / 'lipsync_mouths.png'}, {OUT / 'lipsync_sheet.png'}")


if __name__ == "__main__":
    main()
