"""Where a chain's frames end: a sink. Offline, files (an MP4 with its HLS rendition, a WebM
with alpha, a JPEG still); a live sink (WebRTC) takes their place with the same frames.

A file is written as ``<name>.partial`` and renamed when complete, so a reader never sees
half a file under the real name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

from likeness.media.hls import write_hls, write_still
from likeness.media.picture import Picture
from likeness.media.video import write_mp4_at, write_webm_alpha
from likeness.rendering.frames import AudioFrame, VideoFrame, frame_rate


class Sink(Protocol):
    def write(self, frames: Iterable[VideoFrame]) -> int:
        """Take every frame, in order, each at its own time; returns how many it took."""


@dataclass(frozen=True)
class Mp4File:
    """H.264 + AAC at ``fps``, the audio written sample for sample; with ``hls_dir``, an HLS
    rendition remuxed from it (no second encode). The audio's rate must be one AAC carries
    (``media.video.aac_ready``)."""

    path: Path
    fps: float
    audio: AudioFrame
    hls_dir: Path | None = None

    def write(self, frames: Iterable[VideoFrame]) -> int:
        _from_start(self.audio)
        partial = self.path.with_name(self.path.name + ".partial")
        rate = frame_rate(self.fps)
        count = write_mp4_at(
            partial, _at(frames, rate), self.fps, self.audio.samples, self.audio.sample_rate_hz
        )
        partial.replace(self.path)
        if self.hls_dir is not None:
            write_hls(self.path, self.hls_dir)
        return count


@dataclass(frozen=True)
class WebmAlphaFile:
    """VP9 with alpha (RGBA frames, as ``looks.with_alpha`` makes them) + Opus at 48 kHz."""

    path: Path
    fps: float
    audio: AudioFrame

    def write(self, frames: Iterable[VideoFrame]) -> int:
        _from_start(self.audio)
        partial = self.path.with_name(self.path.name + ".partial")
        rate = frame_rate(self.fps)
        count = write_webm_alpha(
            partial, _at(frames, rate), self.fps, self.audio.samples, self.audio.sample_rate_hz
        )
        partial.replace(self.path)
        return count


class Still:
    """A step that passes the frames on and keeps the one at ``pts`` (or the last before
    it, for a shorter render); ``save`` writes it as a JPEG once the frames have passed."""

    def __init__(self, pts: int) -> None:
        self.pts = pts
        self.frame: VideoFrame | None = None

    def tap(self, frames: Iterable[VideoFrame]) -> Iterator[VideoFrame]:
        for frame in frames:
            if frame.pts <= self.pts:
                self.frame = frame
            yield frame

    def save(self, path: Path) -> bool:
        """Whether there was a frame to write."""
        if self.frame is None:
            return False
        write_still(self.frame.image[:, :, :3], path)
        return True


def _at(frames: Iterable[VideoFrame], rate: Fraction) -> Iterator[tuple[int, Picture]]:
    time_base = 1 / rate
    for frame in frames:
        yield frame.pts_in(time_base), frame.picture


def _from_start(audio: AudioFrame) -> None:
    if audio.pts != 0:
        raise ValueError("a file's audio starts at its first sample (pts 0)")
