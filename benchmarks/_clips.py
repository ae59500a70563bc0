"""Benchmark inputs, cached under benchmarks/out/: the 53 s real clip; a 2-minute 720p clip built
from it by scaling and ping-pong looping (video and audio); and phone-grade clips built the same
way at 30 fps: 1080p landscape H.264, 1080x1920 portrait HEVC stored sideways with a display
matrix (as phones write it) and 3840x2160 HEVC, all with AAC.

The phone clips are shorter than issue 14's table (75 s portrait, 60 s 4K) to keep generating
them (x265 at 4K costs ~0.15 CPU-seconds a frame) and the benchmark sane: the figures are
ratios to the length, and memory must not depend on the length at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from likeness.media.audio import read_audio
from likeness.media.video import iter_frames, write_mp4

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
FIXTURES = ROOT / "tests" / "fixtures"
REAL = FIXTURES / "talking_unsynced.mp4"
SPEECH = [FIXTURES / "librivox_0870.wav", FIXTURES / "librivox_0880.wav"]


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


def phone_clip(
    name: str, size: tuple[int, int], codec: str, seconds: float, sideways: bool = False
) -> Path:
    """REAL at ``size`` = (W, H) shown upright, 30 fps, ``codec`` + AAC 48 kHz, ping-pong
    looped to ``seconds``. A portrait size crops the 4:3 source's middle. ``sideways`` stores
    the picture turned a quarter counter-clockwise with a display matrix of -90 degrees, as
    a phone's camera app does. Frames are made and encoded one at a time."""
    path = OUT / name
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    source = list(iter_frames(REAL))  # 400x300: 1,300 frames are ~470 MB, fine here
    audio, rate = read_audio(REAL, 48000)
    fps = 30
    width, height = size
    src_h, src_w = source[0].shape[:2]
    crop_w = min(src_w, round(src_h * width / height))
    x0 = (src_w - crop_w) // 2
    order = itertools.cycle(list(range(len(source))) + list(range(len(source) - 2, 0, -1)))
    # 25 fps source to 30 fps: each output frame shows the source frame of its time.
    steps = [next(order) for _ in range(int(seconds * 25) + 1)]

    def pictures() -> Iterator[np.ndarray]:
        for n in range(int(seconds * fps)):
            rgb = source[steps[n * 25 // fps]][:, x0 : x0 + crop_w]
            big = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
            yield np.ascontiguousarray(np.rot90(big)) if sideways else big

    reps = int(np.ceil(seconds * rate / len(audio)))
    looped = np.concatenate([audio, audio[::-1]] * reps)[: int(seconds * rate)]
    partial = path.with_suffix(".partial.mp4")
    _encode(partial, pictures(), fps, codec, looped, rate, -90 if sideways else 0)
    partial.rename(path)
    return path


def _encode(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: int,
    codec: str,
    audio: np.ndarray,
    rate: int,
    rotation_deg: int,
) -> None:
    """(H, W, 3) uint8 RGB frames as ``codec`` yuv420p (ultrafast, a phone-like quality) plus
    mono float32 ``audio`` as AAC; ``rotation_deg`` goes into the track's display matrix."""
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream(codec, rate=fps)
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "23"}
        if codec == "libx265":
            video.options |= {"x265-params": "log-level=error"}
            video.codec_context.codec_tag = "hvc1"  # what Apple players and phones write
        if rotation_deg:
            video.set_display_rotation(rotation_deg)
        sound = container.add_stream("aac", rate=rate)
        sound.layout = "mono"
        for pts, rgb in enumerate(frames):
            if pts == 0:
                video.width, video.height = rgb.shape[1], rgb.shape[0]
            yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        pcm = audio.astype(np.float32).reshape(1, -1)
        for start in range(0, pcm.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, start : start + 1024]), format="flt", layout="mono"
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))


CLIPS: dict[str, Callable[[], Path]] = {
    "53s_400x300": lambda: REAL,
    "120s_960x720": two_minute_720p,
    "60s_1920x1080": lambda: phone_clip("phone_1080p_h264.mp4", (1920, 1080), "libx264", 60.0),
    "60s_1080x1920": lambda: phone_clip(
        "phone_portrait_hevc.mp4", (1080, 1920), "libx265", 60.0, sideways=True
    ),
    "30s_3840x2160": lambda: phone_clip("phone_4k_hevc.mp4", (3840, 2160), "libx265", 30.0),
}


def clips(names: Iterable[str] | None = None) -> dict[str, Path]:
    """The named clips (all by default), made on first use."""
    return {name: CLIPS[name]() for name in (names or CLIPS)}


def speech() -> tuple[np.ndarray, int]:
    parts = [read_audio(p, 16000)[0] for p in SPEECH]
    return np.concatenate(parts), 16000
