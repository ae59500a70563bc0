"""The engine interface: fit a bundle from a tracked training video; load it once; then per
session push audio, clear (interrupt), and pull synchronised video frames.

Timing contract: frame ``index`` i shows the instant i / fps of the session's audio, so the
audio pushed so far plus the frames pulled so far are a synchronised pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from likeness.face.tracker import FaceRegions, FaceTrack
from likeness.media.picture import Picture
from likeness.providers.base import Phone


@dataclass(frozen=True)
class TrainingInput:
    """What the training pipeline hands an engine's ``fit``."""

    video_path: Path
    track: FaceTrack
    fps: float
    audio: np.ndarray  # (N,) float32 mono
    sample_rate_hz: int
    # (W, H) the replica stores and renders at (media/probe.py ``output_size``); None: the
    # video's own. The track stays in the video's own pixels.
    output_size: tuple[int, int] | None = None
    # The face cut from the measured frames while tracking (None: decode the video for it).
    regions: FaceRegions | None = None


@dataclass(frozen=True)
class HeldIn:
    """Ask ``fit`` for a second bundle, into ``out_dir``, that knows only the first ``frames``
    frames and the audio under them: the quality report's held-in model (the report renders
    the rest of the video's audio with it). An engine shares what work it can between the
    two bundles, but nothing of the held-in one may come from the frames or audio after."""

    frames: int
    out_dir: Path
    # (W, H) of the held-in bundle; None: the replica's own.
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class RenderedFrame:
    """index counts frames from the session start. The picture is kept in the form the engine
    made it in (a base frame's planes with the mouth laid over, for mouthbank); ``image`` is
    its (H, W, 3) uint8 RGB, converted on first use."""

    index: int
    picture: Picture
    speaking: bool

    @property
    def image(self) -> np.ndarray:
        return self.picture.rgb


class EngineSession(Protocol):
    @property
    def fps(self) -> float: ...

    def push_audio(self, samples: np.ndarray, sample_rate_hz: int) -> None:
        """Queue (N,) float32 mono speech for the replica to say."""

    def push_phones(self, phones: list[Phone]) -> None:
        """Phone timings of the queued utterance, when known (offline renders): the engine
        may use them for visemes. Seconds from the utterance's first sample."""

    def end_audio(self) -> None:
        """No more audio for now: let the frames for the tail of the queued audio out."""

    def clear(self) -> None:
        """Interrupt: drop queued audio; the next frame's mouth is at rest."""

    def pull(self) -> list[RenderedFrame]:
        """Every frame whose audio is fully known, in order (may be empty)."""

    def idle_frame(self) -> RenderedFrame:
        """The next frame with nothing to say (mouth at rest, the person still alive)."""


class ReplicaModel(Protocol):
    @property
    def fps(self) -> float: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...

    def session(self) -> EngineSession: ...


class Engine(Protocol):
    @property
    def name(self) -> str: ...

    def fit(
        self,
        data: TrainingInput,
        out_dir: Path,
        on_progress: Callable[[float], None] | None = None,
        held_in: HeldIn | None = None,
    ) -> dict[str, object]:
        """Fit a bundle into ``out_dir`` (and the held-in one, if asked); returns the
        manifest it wrote into ``out_dir``."""

    def load(self, bundle_dir: Path, height: int | None = None) -> ReplicaModel:
        """The bundle, ready to render at ``height`` lines (the shorter side, as in "1080p";
        never more than the training video had; None: the training video's own size)."""
