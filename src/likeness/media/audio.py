"""Audio in and out as float32 mono NumPy arrays in [-1, 1]."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import av
import numpy as np

from likeness.media.probe import Undecodable


def read_audio(
    path: Path,
    sample_rate_hz: int | None = None,
    up_to_s: float | None = None,
    max_rate_hz: int | None = None,
) -> tuple[np.ndarray, int]:
    """Decode the first audio stream. Returns (samples: (N,) float32 mono, sample_rate_hz).

    With ``sample_rate_hz`` the audio is resampled to it; otherwise it keeps its own rate, or
    ``max_rate_hz`` when its own is higher. With ``up_to_s`` decoding stops once that many
    seconds are read (at most one frame more is returned), so memory and time stay bounded
    whatever the file holds.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise Undecodable("no audio stream")
            stream = container.streams.audio[0]
            rate = int(sample_rate_hz or stream.codec_context.sample_rate or 16000)
            rate = min(rate, max_rate_hz or rate)
            limit = int(up_to_s * rate) if up_to_s is not None else None
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks: list[np.ndarray] = []
            count = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    count += len(chunks[-1])
                if limit is not None and count >= limit:
                    break
            else:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise Undecodable(f"{type(exc).__name__}: {exc}") from exc
    samples = (
        np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    )
    return samples, rate


def stated_duration_s(path: Path) -> float | None:
    """The first audio stream's duration as the container states it, read without decoding
    (None when it states none). A header can be wrong: use it to refuse early, and bound the
    decoding itself with read_audio's ``up_to_s``."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return float(container.duration / av.time_base)
    except av.FFmpegError as exc:
        raise Undecodable(f"{type(exc).__name__}: {exc}") from exc
    return None


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """(N,) float32 → (M,) float32 at ``to_hz`` (polyphase, no phase shift)."""
    if from_hz == to_hz:
        return samples.astype(np.float32, copy=False)
    g = gcd(from_hz, to_hz)
    # imported here: scipy.signal costs ~0.6-1 s to import, and phone alignment's child
    # process imports this module but never resamples (a live call imports it early: warm())
    from scipy.signal import resample_poly

    out: np.ndarray = resample_poly(samples, to_hz // g, from_hz // g).astype(np.float32)
    return out


def warm() -> None:
    """Imports what resample() needs, so that its first call is not a second-long import
    (on a live call's media thread that would stall the clock at the first answer)."""
    import scipy.signal  # noqa: F401


def to_int16(samples: np.ndarray) -> np.ndarray:
    pcm: np.ndarray = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    return pcm
