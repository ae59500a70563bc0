"""Decode video frames and write H.264 + AAC MP4s with PyAV."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from likeness.media.audio import resample
from likeness.media.probe import Undecodable

AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def aac_ready(samples: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, int]:
    """The audio at a rate AAC carries: unchanged if it already is, else resampled to 48 kHz."""
    if sample_rate_hz in AAC_RATES:
        return samples, sample_rate_hz
    return resample(samples, sample_rate_hz, 48000), 48000


def iter_frames(path: Path, max_side: int | None = None) -> Iterator[np.ndarray]:
    """Yield every frame as (H, W, 3) uint8 RGB, optionally scaled so max(H, W) <= max_side."""
    with _video(path) as (container, stream):
        width, height = stream.codec_context.width, stream.codec_context.height
        scale = 1.0
        if max_side and max(width, height) > max_side:
            scale = max_side / max(width, height)
        size = (_even(width * scale), _even(height * scale))
        for frame in container.decode(stream):
            if scale != 1.0:
                rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
            else:
                rgb = frame.to_ndarray(format="rgb24")
            yield upright(frame, rgb)


def frames_numbered(path: Path, wanted: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(number, (H, W, 3) uint8 RGB) for the wanted frame numbers only, in ascending order;
    the other frames are decoded but never converted, and decoding stops after the last."""
    targets = sorted(set(wanted))
    if not targets:
        return
    keep, last = set(targets), targets[-1]
    with _video(path) as (container, stream):
        for number, frame in enumerate(container.decode(stream)):
            if number in keep:
                yield number, upright(frame, frame.to_ndarray(format="rgb24"))
            if number >= last:
                return


@contextmanager
def _video(path: Path) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """The file's first video stream, decoded on threads; FFmpeg errors become Undecodable."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield container, stream
    except av.FFmpegError as exc:
        raise Undecodable(f"{type(exc).__name__}: {exc}") from exc


def upright(frame: av.VideoFrame, rgb: np.ndarray) -> np.ndarray:
    """The picture as it is meant to be shown: phones store portrait video sideways with a
    display matrix (``frame.rotation``, degrees counter-clockwise), which we apply."""
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def write_mp4(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate_hz: int = 16000,
    crf: int = 22,
    preset: str = "superfast",
) -> int:
    """Encode (H, W, 3) uint8 RGB frames as H.264 (yuv420p) plus the mono float32 ``audio`` as
    AAC. Returns the number of video frames written. The audio is written sample for sample,
    so the file's audio track is exactly the input's length.

    The defaults are for renders: on a rendered 720p clip superfast at crf 22 looks like
    veryfast at crf 20 (PSNR 43.6 vs 43.7 dB) in 2/3 of the time, at 1.5x the size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4") as container:
        vstream = container.add_stream("libx264", rate=rate)
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"crf": str(crf), "preset": preset}
        vstream.codec_context.thread_type = "FRAME"  # x264's frame threads: 15 % faster here
        astream = None
        if audio is not None:
            if sample_rate_hz not in AAC_RATES:
                raise ValueError(f"AAC cannot carry {sample_rate_hz} Hz")
            astream = container.add_stream("aac", rate=sample_rate_hz)
            astream.layout = "mono"
        count = _write_frames(container, vstream, frames, rate, "rgb24")
        if astream is not None and audio is not None:
            _write_audio(container, astream, audio, sample_rate_hz)
    return count


def _write_frames(
    container: av.container.OutputContainer,
    stream: av.VideoStream,
    frames: Iterable[np.ndarray],
    rate: Fraction,
    pixel_format: str,
) -> int:
    """Encode and mux frames with explicit pts; the stream takes the first frame's size."""
    count = 0
    for image in frames:
        if count == 0:
            stream.width, stream.height = image.shape[1], image.shape[0]
        frame = _video_frame(image, pixel_format)
        frame.pts = count
        frame.time_base = 1 / rate
        container.mux(stream.encode(frame))
        count += 1
    container.mux(stream.encode(None))
    return count


def _video_frame(image: np.ndarray, pixel_format: str) -> av.VideoFrame:
    """RGB goes to the encoder as yuv420p converted by OpenCV (0.4 ms a 720p frame against
    swscale's 2 ms; the same BT.601 limited-range numbers within 3 levels)."""
    h, w = image.shape[:2]
    if pixel_format == "rgb24" and h % 2 == 0 and w % 2 == 0:
        planes: np.ndarray = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420).astype(
            np.uint8, copy=False
        )
        return av.VideoFrame.from_ndarray(planes, format="yuv420p")
    return av.VideoFrame.from_ndarray(image, format=pixel_format)


def _write_audio(
    container: av.container.OutputContainer,
    stream: av.AudioStream,
    audio: np.ndarray,
    sample_rate_hz: int,
    block: int = 1024,
) -> None:
    pcm = audio.astype(np.float32).reshape(1, -1)
    for start in range(0, pcm.shape[1], block):
        chunk = np.ascontiguousarray(pcm[:, start : start + block])
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = sample_rate_hz
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate_hz)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def loop_frames(path: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Endless (H, W, 3) uint8 RGB frames of ``path``, scaled to cover ``size`` = (W, H) and
    centre-cropped; the video starts over when it ends."""
    width, height = size
    while True:
        count = 0
        for rgb in iter_frames(path):
            count += 1
            scale = max(width / rgb.shape[1], height / rgb.shape[0])
            resized = cv2.resize(
                rgb,
                (max(width, round(rgb.shape[1] * scale)), max(height, round(rgb.shape[0] * scale))),
            )
            y0 = (resized.shape[0] - height) // 2
            x0 = (resized.shape[1] - width) // 2
            yield resized[y0 : y0 + height, x0 : x0 + width]
        if count == 0:
            raise Undecodable(f"{path.name} has no video frames")


def write_webm_alpha(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray,
    sample_rate_hz: int,
) -> int:
    """Encode (H, W, 4) uint8 RGBA frames as VP9 with alpha (yuva420p) plus Opus audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    pcm = resample(audio, sample_rate_hz, 48000)
    with av.open(str(path), mode="w", format="webm") as container:
        vstream = container.add_stream("libvpx-vp9", rate=rate)
        vstream.pix_fmt = "yuva420p"
        vstream.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "row-mt": "1",
            "crf": "32",
            "b": "0",
        }
        astream = container.add_stream("libopus", rate=48000)
        astream.layout = "mono"
        count = _write_frames(container, vstream, frames, rate, "rgba")
        _write_audio(container, astream, pcm, 48000, block=960)
    return count
