"""A replica's work directory: the one module that knows its file names and reads them back.

Each stage writes its output here and reads what earlier stages left through these loaders,
so a job that dies mid-way resumes from its last finished stage in any worker, and no stage
needs to know another's files. The layout (ADR 0005)::

    source.media     the training video           download
    consent.media    the separate consent video   consent (when one is given)
    probe.json       its MediaInfo                probe
    consent.json     the consent report           consent
    track.npz        landmarks + picture measures track
    regions.npz      the face cut from measured frames (JPEG)  track
    checks.json      every check's result         validate
    bundle/          the engine's bundle          fit (bundle.partial/ while it is written)
    held_in/         the report's held-in bundle  fit, removed by report
    quality.json     the quality report           report
    thumbnail.mp4                                 package
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from likeness.engines.base import TrainingInput
from likeness.errors import TrainingFailure
from likeness.face.tracker import FaceRegions, FaceTrack
from likeness.media.audio import read_audio
from likeness.media.probe import MediaInfo, Undecodable

# Names the replica's artifacts keep (relative to the work directory; service.py serves them).
BUNDLE = "bundle"
THUMBNAIL = "thumbnail.mp4"
# The per-frame measures the checks need, saved beside the track (checks.Measures's fields).
MEASURES = ("luma", "change", "face_frames", "face_counts", "hand_frames", "hand_points")


def audio_up_to_s(info: MediaInfo) -> float:
    """The most seconds of audio a later stage decodes: the duration the probe accepted and a
    second more, so a container that understates its length cannot make them decode more."""
    return info.duration_s + 1.0


def frames_at_most(info: MediaInfo) -> int:
    """The most frames a later stage decodes: the accepted duration and a second more, at the
    stated rate (taken as at most 120 fps, whatever the header says)."""
    return int(audio_up_to_s(info) * min(info.fps, 120.0)) + 1


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def source(self) -> Path:
        return self.root / "source.media"

    @property
    def consent_source(self) -> Path:
        return self.root / "consent.media"

    @property
    def bundle(self) -> Path:
        return self.root / BUNDLE

    @property
    def bundle_partial(self) -> Path:
        return self.root / (BUNDLE + ".partial")

    @property
    def held_in(self) -> Path:
        """The quality report's held-in bundle, removed once the report is made."""
        return self.root / "held_in"

    @property
    def thumbnail(self) -> Path:
        return self.root / THUMBNAIL

    # -- what the stages leave, written and read back ------------------------------------

    def save_media_info(self, info: MediaInfo) -> None:
        self._write("probe.json", asdict(info))

    def media_info(self) -> MediaInfo:
        return MediaInfo(**json.loads((self.root / "probe.json").read_text()))

    def save_track(self, track: FaceTrack, measures: dict[str, np.ndarray]) -> None:
        np.savez_compressed(
            self.root / "track.npz",
            landmarks=track.landmarks,
            present=track.present,
            measured=track.measured,
            size=np.array([track.width, track.height]),
            # numpy's stub types **kwds like its ``allow_pickle`` flag; they are arrays
            **{name: measures[name] for name in MEASURES},  # type: ignore[arg-type]
        )

    def face_track(self) -> FaceTrack:
        with np.load(self.root / "track.npz") as data:
            present = data["present"]
            return FaceTrack(
                landmarks=data["landmarks"],
                present=present,
                width=int(data["size"][0]),
                height=int(data["size"][1]),
                # a track saved before frames could go unmeasured measured every one
                measured=data["measured"] if "measured" in data else np.ones_like(present),
            )

    def save_regions(self, regions: FaceRegions) -> None:
        # stored, not compressed: the cuts are JPEG already
        np.savez(self.root / "regions.npz", **asdict(regions))

    def regions(self) -> FaceRegions | None:
        """The track stage's face cuts; None for a track saved before it made them."""
        path = self.root / "regions.npz"
        if not path.exists():
            return None
        with np.load(path) as data:
            return FaceRegions(**{name: data[name] for name in FaceRegions.__dataclass_fields__})

    def measures(self) -> dict[str, np.ndarray]:
        with np.load(self.root / "track.npz") as data:
            return {name: data[name] for name in MEASURES}

    def save_consent(self, report: dict[str, Any]) -> None:
        self._write("consent.json", report)

    def consent(self) -> dict[str, Any]:
        return dict(self._read("consent.json") or {})

    def save_checks(self, report: list[dict[str, Any]]) -> None:
        self._write("checks.json", report)

    def checks(self) -> list[dict[str, Any]]:
        return list(self._read("checks.json") or [])

    def save_quality(self, report: dict[str, Any]) -> None:
        self._write("quality.json", report)

    def quality(self) -> dict[str, Any]:
        return dict(self._read("quality.json") or {})

    def audio(self, sample_rate_hz: int) -> np.ndarray:
        """The training video's audio, no longer than the probe accepted: (N,) float32 mono;
        unreadable is a training failure."""
        up_to_s = audio_up_to_s(self.media_info())
        try:
            audio, _ = read_audio(self.source, sample_rate_hz, up_to_s)
        except Undecodable as exc:
            raise TrainingFailure("audio_processing", str(exc)) from exc
        return audio

    def training_input(self) -> TrainingInput:
        """What the earlier stages left, as an engine's fit takes it."""
        audio = self.audio(16000)
        if audio.size == 0:
            raise TrainingFailure("audio_processing", "the audio stream decodes to nothing")
        return TrainingInput(
            self.source,
            self.face_track(),
            self.media_info().fps,
            audio,
            16000,
            regions=self.regions(),
        )

    def _write(self, name: str, content: object) -> None:
        (self.root / name).write_text(json.dumps(content, indent=2))

    def _read(self, name: str) -> Any:
        path = self.root / name
        return json.loads(path.read_text()) if path.exists() else None
