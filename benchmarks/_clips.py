"""Benchmark inputs: the 53 s real clip, and a 2-minute 720p clip built from it by scaling
and ping-pong looping (video and audio), cached under benchmarks/out/."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np

from likeness.media.audio import read_audio
from likeness.media.video import iter_frames, write_mp4

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
FIXTURES = ROOT / "tests" / "fixtures"
REAL = FIXTURES / "talking_unsynced.mp4"
SPEECH = [FIXTURES / "librivox_0870.wav", FIXTURES / "librivox_0880.wav"]


def clips() -> dict[str, Path]:
    return {"53s_400x300": REAL, "120s_960x720": two_minute_720p()}


def two_minute_720p() -> Path:
    path = OUT / "two_min_720p.mp4"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    frames = list(iter_frames(REAL))
    audio, rate = read_audio(REAL)
    fps, seconds = 25.0, 120.0
    order = itertools.cycle(list(range(len(frames))) + list(range(len(frames) - 2, 0, -1)))
    n = int(seconds * fps)
    chosen = [next(order) for _ in range(n)]
    scaled = (cv2.resize(frames[i], (960, 720), interpolation=cv2.INTER_CUBIC) for i in chosen)
    reps = int(np.ceil(seconds * rate / len(audio)))
    looped = np.concatenate([audio, audio[::-1]] * reps)[: int(seconds * rate)]
    write_mp4(path, scaled, fps, looped, rate, crf=20)
    return path


def speech() -> tuple[np.ndarray, int]:
    parts = [read_audio(p, 16000)[0] for p in SPEECH]
    return np.concatenate(parts), 16000
