"""Phone-grade training input: a picture too large for the memory budget is refused before any
decoding, the replica's size follows ``output_size``, and tracking holds only a few frames."""

from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from likeness.engines.mouthbank.fit import fit
from likeness.engines.mouthbank.model import load
from likeness.errors import TrainingFailure
from likeness.face.hands import HandWatch
from likeness.face.tracker import QUEUE_FRAMES, FaceCounter, FaceMeshTracker
from likeness.media.audio import read_audio
from likeness.media.probe import output_size, probe
from likeness.media.video import iter_frames, write_mp4
from likeness.training import failures, pipeline
from likeness.training.limits import Limits
from likeness.training.stages import probe as probe_stage
from likeness.training.stages import track as track_stage
from likeness.training.workspace import Workspace

from .conftest import FIXTURES, local_job


def test_output_size_keeps_the_video_s_own_unless_asked_smaller() -> None:
    assert output_size(401, 301) == (401, 301)  # as today: the training video's own size
    assert output_size(1920, 1080, 1080) == (1920, 1080)
    assert output_size(1280, 720, 1080) == (1280, 720)  # never scaled up
    assert output_size(3840, 2160, 1080) == (1920, 1080)
    assert output_size(1080, 1920, 720) == (720, 1280)  # portrait: the short side is 720
    assert output_size(400, 300, 225) == (300, 224)  # 300 x 225, made even


def _upscaled(tmp_path: Path, size: tuple[int, int]) -> Path:
    """The real short_talk clip's first second, scaled to ``size`` = (W, H)."""
    frames = [
        cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)
        for _, f in zip(range(25), iter_frames(FIXTURES / "short_talk.mp4"), strict=False)
    ]
    audio, rate = read_audio(FIXTURES / "short_talk.mp4", 16000, up_to_s=1.0)
    path = tmp_path / f"{size[0]}x{size[1]}.mp4"
    write_mp4(path, frames, 25.0, audio, rate)
    return path


def test_a_picture_over_the_memory_budget_is_refused_at_the_probe(tmp_path: Path) -> None:
    """The budget sits between what a 400x300 and a 1280x720 picture need: the small clip is
    checked in full, the large one is refused at the probe, before anything is decoded."""
    large = _upscaled(tmp_path, (1280, 720))
    budget = probe_stage.memory_needed_bytes(probe(large)) - 1
    limits = Limits(min_duration_s=0.5, max_memory_bytes=budget)

    work = tmp_path / "large"
    with pytest.raises(TrainingFailure) as caught:
        pipeline.check_video(local_job(large, work, limits=limits))
    failure = caught.value
    assert failure.failure_type == "video_resolution"
    assert "1280x720" in failure.detail and "GB" in failure.detail
    assert failures.public_type(failure.failure_type) == "video_processing"
    assert "resolution is too high" in failures.message_for(failure.failure_type)
    assert not (work / "track.npz").exists()  # no frame was tracked

    ctx = pipeline.context(local_job(FIXTURES / "short_talk.mp4", tmp_path / "small"))
    ctx = dataclasses.replace(ctx, limits=limits)
    ctx.work.root.mkdir()
    ctx.work.source.symlink_to((FIXTURES / "short_talk.mp4").resolve())
    probe_stage.run(ctx, lambda _fraction: None)  # the 400x300 clip passes
    assert ctx.work.media_info().width == 400


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, int]:
    """The track stage run on the real 300-frame clip: its workspace, and the peak of what it
    held in NumPy arrays (tracemalloc) while it ran."""
    clip = FIXTURES / "short_talk.mp4"
    ctx = pipeline.context(local_job(clip, tmp_path_factory.mktemp("tracked")))
    ctx.work.source.symlink_to(clip.resolve())
    ctx.work.save_media_info(probe(clip))
    with FaceMeshTracker():  # MediaPipe's imports and first loads are not the stage's
        FaceCounter().close()
        HandWatch().close()
    tracemalloc.start()
    try:
        track_stage.run(ctx, lambda _fraction: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return ctx.work, peak


def test_tracking_holds_a_few_frames_whatever_the_length(tracked: tuple[Workspace, int]) -> None:
    """The track stage streams the video: at its peak it holds (in NumPy arrays) about the
    frames its two queues hold (tracker.QUEUE_FRAMES each), not the 300 of the clip."""
    work, peak = tracked
    assert work.face_track().n_frames == 300
    assert peak < (2 * QUEUE_FRAMES + 8) * 400 * 300 * 3, peak / (400 * 300 * 3)


def test_the_bank_is_cut_from_the_tracking_pass(
    tracked: tuple[Workspace, int], tmp_path: Path
) -> None:
    """Every measured frame with a face has its face cut while tracking, and the mouth bank
    made from those cuts (no second decoding) matches the one made by decoding again."""
    work, _ = tracked
    data = work.training_input()
    assert data.regions is not None
    face = data.track.present & data.track.measured
    assert np.array_equal(data.regions.frames, np.flatnonzero(face))
    banks = []
    for name, regions in (("cut", data.regions), ("decoded", None)):
        fit(dataclasses.replace(data, regions=regions), tmp_path / name)
        banks.append(load(tmp_path / name).bank_images.astype(np.float64))
    assert banks[0].shape == banks[1].shape
    psnr = 10 * np.log10(255**2 / np.mean((banks[0] - banks[1]) ** 2))
    assert psnr > 40, psnr  # measured 44.9 dB (one JPEG generation more)
