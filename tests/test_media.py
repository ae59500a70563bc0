"""Media IO on real footage: phone videos stored sideways with a display matrix."""

from __future__ import annotations

import struct
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from likeness.face.landmarks import inter_ocular
from likeness.media.audio import read_audio
from likeness.media.probe import probe
from likeness.media.video import frames_numbered, iter_decoded, iter_frames, write_mp4
from likeness.training import pipeline
from likeness.training.limits import Limits
from likeness.training.workspace import Workspace

from .conftest import FIXTURES, local_job

# ISO/IEC 14496-12 track-header matrix (16.16 fixed point) for "show turned 90° clockwise",
# as phones write it for portrait video.
CLOCKWISE = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 0x40000000)


def _phone_clip(tmp_path: Path, frames: list[np.ndarray], audio: np.ndarray, rate: int) -> Path:
    """The frames stored a quarter-turn counter-clockwise, with the matrix that shows them
    upright again: what a phone's camera app writes."""
    path = tmp_path / "phone.mp4"
    sideways = [np.ascontiguousarray(np.rot90(f)) for f in frames]
    write_mp4(path, sideways, 25.0, audio, rate)
    data = bytearray(path.read_bytes())
    header = data.find(b"tkhd")  # the first track: the video
    matrix = header + 4 + 40  # type, version/flags, times, id, duration, layer, volume
    data[matrix : matrix + 36] = CLOCKWISE
    path.write_bytes(bytes(data))
    return path


def test_a_phone_video_is_read_upright(tmp_path: Path) -> None:
    frames = list(iter_frames(FIXTURES / "short_talk.mp4"))
    audio, rate = read_audio(FIXTURES / "short_talk.mp4")
    clip = _phone_clip(tmp_path, frames[:50], audio[: 2 * rate], rate)
    info = probe(clip)
    assert (info.width, info.height) == (400, 300)
    got = list(iter_frames(clip))
    assert got[0].shape == frames[0].shape
    assert np.abs(got[10].astype(int) - frames[10]).mean() < 4  # the same picture, not turned
    (_, picked), *_ = frames_numbered(clip, [10])
    assert np.array_equal(picked, got[10])
    # The trackers' small copy is the upright picture scaled down; a cut of the full picture
    # is exactly that part of it (the sideways frame is converted only there).
    picture = next(islice(iter_decoded(clip, 150), 10, None))
    assert picture.small.shape == (150, 200, 3)
    assert picture.scale == 2.0
    shrunk = cv2.resize(got[10], (200, 150), interpolation=cv2.INTER_AREA)
    assert np.abs(picture.small.astype(int) - shrunk).mean() < 2
    for box in [(0, 0, 400, 300), (33, 17, 251, 141), (350, 250, 450, 350)]:
        expected = got[10][box[1] : box[3], box[0] : box[2]]
        assert np.array_equal(picture.cut(box), expected), box


def test_a_phone_video_trains(tmp_path: Path) -> None:
    frames = list(iter_frames(FIXTURES / "short_talk.mp4"))
    audio, rate = read_audio(FIXTURES / "short_talk.mp4")
    clip = _phone_clip(tmp_path, frames, audio, rate)
    # Asked for a 200-line replica, the bundle is the upright picture at that size: the
    # manifest, the base loop's frames and the canonical mouth crops' scale alike.
    limits = Limits(min_duration_s=5.0, output_short_side_px=200)
    artifacts = pipeline.run(local_job(clip, tmp_path / "work", limits=limits))
    manifest = artifacts["manifest"]
    assert (manifest["width"], manifest["height"]) == (266, 200)  # type: ignore[index]
    base = next(iter_frames(tmp_path / "work" / "bundle" / "base.mp4"))
    assert base.shape == (200, 266, 3)
    work = Workspace(tmp_path / "work")
    assert "replica" in work.quality(), work.quality()  # rendered from the 200-line bundle
    track = work.face_track()
    iod = float(np.median(inter_ocular(track.landmarks[track.present])))
    assert (track.width, track.height) == (400, 300)  # tracked in the video's own pixels
    assert manifest["canonical_scale_px"] == pytest.approx(iod * 200 / 300, rel=0.05)  # type: ignore[index]


def test_frames_by_number_match_decoding_from_the_start() -> None:
    """Far from the start, frames_numbered seeks (numbering frames by their timestamps); the
    frames must be exactly those that decoding every frame gives, numbered alike, and
    numbers past the end are simply absent."""
    clip = FIXTURES / "short_talk.mp4"
    wanted = [3, 120, 121, 250, 299, 400]
    every = {i: f for i, f in enumerate(iter_frames(clip)) if i in wanted}
    assert sorted(every) == [3, 120, 121, 250, 299]
    for asked in (wanted, wanted[1:]):
        got = dict(frames_numbered(clip, asked))
        assert sorted(got) == [n for n in sorted(every) if n in asked]
        for number, frame in got.items():
            assert np.array_equal(frame, every[number]), number
