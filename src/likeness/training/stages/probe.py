"""Stage 2: is this a playable video with sound, long enough and smooth enough?"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from likeness.errors import TrainingFailure
from likeness.media.probe import MediaInfo, Undecodable, probe
from likeness.training.stages.download import SOURCE

if TYPE_CHECKING:
    from likeness.training.pipeline import Limits

PROBE = "probe.json"


def run(work_dir: Path, limits: Limits) -> MediaInfo:
    path = work_dir / SOURCE
    if path.stat().st_size == 0:
        raise TrainingFailure("video_damaged", "the file is empty")
    try:
        info = probe(path)
    except Undecodable as exc:
        raise TrainingFailure("video_damaged", str(exc)) from exc
    if not info.has_video:
        raise TrainingFailure("video_damaged", "no video stream (audio-only file?)")
    if not info.has_audio:
        raise TrainingFailure("audio_processing", "the file has no audio stream")
    if info.duration_s < limits.min_duration_s:
        raise TrainingFailure(
            "video_duration", f"{info.duration_s:.1f} s < {limits.min_duration_s:.0f} s"
        )
    if info.duration_s > limits.max_duration_s:  # the container's word: nothing decoded yet
        raise TrainingFailure(
            "video_duration",
            f"{info.duration_s:.1f} s > {limits.max_duration_s:.0f} s (too long)",
        )
    if info.fps < limits.min_fps:
        raise TrainingFailure("video_fps", f"{info.fps:.2f} fps < {limits.min_fps:.0f} fps")
    (work_dir / PROBE).write_text(json.dumps(asdict(info)))
    return info


def audio_up_to_s(info: MediaInfo) -> float:
    """The most seconds of audio a later stage decodes: the duration the probe accepted and a
    second more, so a container that understates its length cannot make them decode more."""
    return info.duration_s + 1.0


def frames_at_most(info: MediaInfo) -> int:
    """The most frames a later stage decodes: the accepted duration and a second more, at the
    stated rate (taken as at most 120 fps, whatever the header says)."""
    return int(audio_up_to_s(info) * min(info.fps, 120.0)) + 1


def load(work_dir: Path) -> MediaInfo:
    return MediaInfo(**json.loads((work_dir / PROBE).read_text()))
