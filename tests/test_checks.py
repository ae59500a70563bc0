"""Upload checks on real footage made bad in known ways (built in tmp_path from a fixture)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from likeness.errors import TrainingFailure
from likeness.face import landmarks as lm
from likeness.face.tracker import FaceMeshTracker, FaceTrack
from likeness.media.audio import read_audio
from likeness.media.video import iter_frames, write_mp4
from likeness.training import checks, failures, pipeline
from likeness.training.stages import validate

from .conftest import FIXTURES, local_job

FPS = 25.0


@pytest.fixture(scope="module")
def footage() -> tuple[list[np.ndarray], np.ndarray, int]:
    frames = list(iter_frames(FIXTURES / "short_talk.mp4"))
    audio, rate = read_audio(FIXTURES / "short_talk.mp4")
    return frames, audio, rate


def _other_take(frame: np.ndarray) -> np.ndarray:
    """The same person from a mirrored, closer camera: what a cut between two takes does."""
    h, w = frame.shape[:2]
    crop = frame[h // 8 : h - h // 8, w // 8 : w - w // 8, :][:, ::-1]
    return np.ascontiguousarray(cv2.resize(crop, (w, h)))


def _shifted(frame: np.ndarray, index: int) -> np.ndarray:
    """The camera (or the person) drifting sideways by up to 35 % of the width and back."""
    w = frame.shape[1]
    dx = int(0.35 * w * np.sin(2 * np.pi * index / 150))
    return np.ascontiguousarray(np.roll(frame, dx, axis=1))


def _train(tmp_path: Path, frames: list[np.ndarray], audio: np.ndarray, rate: int) -> dict:
    clip = tmp_path / "clip.mp4"
    write_mp4(clip, frames, FPS, audio, rate, crf=23)
    return pipeline.run(local_job(clip, tmp_path / "work"))


def _fails(
    tmp_path: Path, frames: list[np.ndarray], audio: np.ndarray, rate: int
) -> tuple[str, dict[str, dict]]:
    with pytest.raises(TrainingFailure) as caught:
        _train(tmp_path, frames, audio, rate)
    report = {c["check"]: c for c in json.loads(caught.value.detail)["checks"]}
    return caught.value.failure_type, report


def test_a_good_clip_passes_every_check(tmp_path: Path, footage: tuple) -> None:
    frames, audio, rate = footage
    artifacts = _train(tmp_path, frames, audio, rate)
    report = artifacts["checks"]
    assert [c["check"] for c in report] == list(validate.ORDER)
    assert all(c["passed"] for c in report), report
    consent = report[validate.ORDER.index("consent_phrase_mismatch")]
    assert consent["skipped"] == "the consent policy is off", consent


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("two faces", lambda f: [np.hstack([x, x[:, ::-1]]) for x in f], "second_person_detected"),
        (
            "a hard cut",
            lambda f: f[:150] + [_other_take(x) for x in f[150:]],
            "video_editing_detected",
        ),
        (
            "a wandering head",
            lambda f: [_shifted(x, i) for i, x in enumerate(f)],
            "excessive_movement_detected",
        ),
        (
            "lights off",
            lambda f: f[:150] + [(x * 0.45).astype(np.uint8) for x in f[150:]],
            "lighting_change_detected",
        ),
    ],
)
def test_bad_footage_fails_with_the_tavus_message(
    tmp_path: Path,
    footage: tuple,
    name: str,
    make: Callable[[list[np.ndarray]], list[np.ndarray]],
    expected: str,
) -> None:
    frames, audio, rate = footage
    failure, report = _fails(tmp_path, make(frames), audio, rate)
    assert failure == expected, (name, report)
    assert not report[expected]["passed"]
    assert report[expected]["ranges_s"], "a failing check says where"
    assert failures.message_for(failure) != failures.INTERNAL_ERROR


def test_a_mute_clip_fails_no_speech(tmp_path: Path, footage: tuple) -> None:
    frames, audio, rate = footage
    failure, report = _fails(tmp_path, frames, np.zeros_like(audio), rate)
    assert failure == "audio_processing"
    assert report["audio_processing"]["value"] == 0.0


def test_ranges_bridge_short_gaps() -> None:
    flags = np.zeros(100, bool)
    flags[10:20] = flags[25:30] = flags[80:81] = True
    assert checks.ranges(flags, 25.0) == [(0.4, 1.2), (3.2, 3.24)]


def test_cli_check_reports_and_exits_nonzero_on_failure(
    tmp_path: Path, footage: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from likeness.cli.main import app

    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LIKENESS_MIN_DURATION_S", "5")
    monkeypatch.setenv("LIKENESS_CONSENT_POLICY", "off")  # tests/test_consent.py checks "on"
    runner = CliRunner()
    good = runner.invoke(app, ["check", str(FIXTURES / "short_talk.mp4")])
    assert good.exit_code == 0, good.output
    assert good.output.count("ok  ") == len(validate.ORDER)
    frames, audio, rate = footage
    stacked = tmp_path / "two.mp4"
    write_mp4(stacked, [np.hstack([x, x[:, ::-1]]) for x in frames], FPS, audio, rate, crf=26)
    bad = runner.invoke(app, ["check", str(stacked)])
    assert bad.exit_code == 1
    assert "FAIL second_person_detected" in bad.output
    assert failures.MESSAGES["second_person_detected"] in bad.output


def test_background_noise_fails(tmp_path: Path, footage: tuple) -> None:
    frames, audio, rate = footage
    power = float(np.mean(audio**2))
    noise = np.random.default_rng(7).normal(0, np.sqrt(power / 10), len(audio))  # 10 dB SNR
    failure, report = _fails(tmp_path, frames, (audio + noise).astype(np.float32), rate)
    assert failure == "background_noise_detected"
    assert report["background_noise_detected"]["value"] < 15


def test_a_hand_over_the_face_fails(tmp_path: Path, footage: tuple) -> None:
    """A real hand over a real face and mouth (a Pexels clip) with real speech under it."""
    _, audio, rate = footage
    frames = list(iter_frames(FIXTURES / "hand_over_face.mp4"))[: int(len(audio) / rate * FPS)]
    failure, report = _fails(tmp_path, frames, audio, rate)
    assert failure == "hands_obstructing_face", report
    spans = report["hands_obstructing_face"]["ranges_s"]
    start, end = spans[0][0], spans[-1][1]
    assert 2.0 <= start <= 3.5 and end >= 8.0  # the hand is up from 2.5 s to 9.6 s (24 fps)


def test_a_hand_on_the_chin_passes(tmp_path: Path) -> None:
    """talking_unsynced.mp4 rests a hand under the chin from 44 s to 52 s: the face stays
    clear, so the whole clip passes every check."""
    frames = list(iter_frames(FIXTURES / "talking_unsynced.mp4"))
    audio, rate = read_audio(FIXTURES / "talking_unsynced.mp4")
    report = _train(tmp_path, frames, audio, rate)["checks"]
    assert all(c["passed"] for c in report), report


def test_a_covered_face_fails_obstruction(tmp_path: Path, footage: tuple) -> None:
    """A card held over the face for a quarter of the video."""
    frames, audio, rate = footage
    covered = [x.copy() for x in frames]
    h, w = frames[0].shape[:2]
    for x in covered[100:170]:
        x[h // 8 : h - h // 8, w // 4 : w - w // 4] = (200, 190, 170)
    failure, report = _fails(tmp_path, covered, audio, rate)
    assert failure == "face_or_obstruction_detected", report
    assert report["face_or_obstruction_detected"]["ranges_s"] == [[4.0, 6.8]]


def _track_with_lips(gap_iod: float, footage: tuple) -> FaceTrack:
    """30 frames of the fixture's first face, its lower inner lip set ``gap_iod`` (of the
    eye-corner distance) under the upper one."""
    with FaceMeshTracker() as tracker:
        points = tracker.landmarks(footage[0][0])
    assert points is not None
    iod = float(lm.inter_ocular(points))
    upper, lower = lm.LIP_GAP_PAIRS[:, 0], lm.LIP_GAP_PAIRS[:, 1]
    points[lower] = points[upper] + np.array([0.0, gap_iod * iod], np.float32)
    ones = np.ones(30, bool)
    return FaceTrack(np.repeat(points[None], 30, axis=0), ones, 400, 300, ones)


def test_a_video_whose_lips_never_touch_is_warned_not_failed(footage: tuple) -> None:
    never = checks.sealed_lips(_track_with_lips(0.04, footage))
    assert never["check"] == "lips_sealed" and never["passed"] is True
    assert never["value"] == 0.0 and never["warning"] == checks.NEVER_SEALED
    sealed = checks.sealed_lips(_track_with_lips(0.005, footage))
    assert sealed["passed"] is True and sealed["value"] == 30.0 and sealed["warning"] is None
