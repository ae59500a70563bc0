"""The render chain: timed frames from a real engine session, steps that keep the time, and
file sinks that place each frame at its pts (read back with PyAV)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from likeness.engines.mouthbank import MouthbankEngine, MouthbankModel
from likeness.media.audio import read_audio
from likeness.rendering.frames import AudioFrame, VideoFrame
from likeness.rendering.looks import over_background, with_alpha
from likeness.rendering.offline import render_files
from likeness.rendering.sinks import Mp4File, Still
from likeness.rendering.source import frames_for
from likeness.training import pipeline

from .conftest import FIXTURES, local_job

SR = 16000
TB = Fraction(1, 25)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> MouthbankModel:
    work = tmp_path_factory.mktemp("short_talk")
    pipeline.run(local_job(FIXTURES / "short_talk.mp4", work))
    return MouthbankEngine().load(work / "bundle")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return read_audio(FIXTURES / "librivox_0880.wav", SR)[0]


def _still_frames(count: int, size: tuple[int, int] = (64, 48)) -> list[VideoFrame]:
    """Flat grey frames, each a shade lighter, 1/25 s apart."""
    w, h = size
    return [VideoFrame(np.full((h, w, 3), 40 + 10 * i, np.uint8), i, TB) for i in range(count)]


def _decoded(path: Path) -> list[tuple[float, float]]:
    """(time s, mean grey level) of each decoded video frame."""
    with av.open(str(path)) as container:
        return [
            (float(f.time), float(f.to_ndarray(format="rgb24").mean()))
            for f in container.decode(video=0)
        ]


def test_engine_frames_keep_their_time(model: MouthbankModel, speech: np.ndarray) -> None:
    frames = list(frames_for(model, AudioFrame(speech, SR), phones=[]))
    assert [f.pts for f in frames] == list(range(len(frames)))
    assert all(f.time_base == TB for f in frames)
    assert frames[0].image.shape == (300, 400, 3) and frames[0].image.dtype == np.uint8
    assert any(f.speaking for f in frames) and not frames[0].speaking
    # Audio that starts 1 s in: its frames start 25 frames in, the pictures unchanged.
    later = list(frames_for(model, AudioFrame(speech, SR, pts=SR), phones=[]))
    assert [f.pts for f in later] == [f.pts + 25 for f in frames]
    assert later[-1].time_s == pytest.approx(frames[-1].time_s + 1.0)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, later, strict=True))


def test_the_mp4_sink_places_each_frame_at_its_pts(tmp_path: Path) -> None:
    frames = _still_frames(4)
    # a gap (frames 4-9 missing) and a frame timed in another time base (1/50 s)
    frames.append(VideoFrame(np.full((48, 64, 3), 200, np.uint8), 20, Fraction(1, 50)))
    audio = AudioFrame(np.zeros(SR // 2, np.float32), SR)
    out = tmp_path / "timed.mp4"
    assert Mp4File(out, 25.0, audio).write(frames) == 5
    got = _decoded(out)
    assert [t for t, _ in got] == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.4])
    assert [g for _, g in got] == pytest.approx([40, 50, 60, 70, 200], abs=3)
    assert not out.with_name("timed.mp4.partial").exists()
    with pytest.raises(ValueError, match="pts 0"):
        Mp4File(tmp_path / "late.mp4", 25.0, AudioFrame(audio.samples, SR, pts=1)).write(frames)


def test_the_looks_steps_keep_each_frame_s_time() -> None:
    with av.open(str(FIXTURES / "short_talk.mp4")) as container:
        person = next(container.decode(video=0)).to_ndarray(format="rgb24")
    frames = [VideoFrame(person, pts, TB, speaking=pts == 4) for pts in (3, 4, 7)]
    matted = list(with_alpha(frames))
    kept = [(3, TB, False), (4, TB, True), (7, TB, False)]
    assert [(f.pts, f.time_base, f.speaking) for f in matted] == kept
    assert matted[0].image.shape == (300, 400, 4)
    assert matted[0].image[150, 200, 3] > 200 and matted[0].image[5, 5, 3] < 60
    assert np.array_equal(matted[0].image[:, :, :3], person)  # the same picture
    swapped = list(over_background(frames, FIXTURES / "world.mp4"))
    assert [f.pts for f in swapped] == [3, 4, 7] and swapped[0].image.shape == (300, 400, 3)
    assert np.abs(swapped[0].image[:40, :40].astype(int) - person[:40, :40]).mean() > 40


def test_the_still_is_the_frame_at_its_time() -> None:
    still = Still(pts=2)
    assert [f.pts for f in still.tap(_still_frames(5))] == [0, 1, 2, 3, 4]
    assert still.frame is not None and still.frame.pts == 2
    short = Still(pts=25)  # a render shorter than a second: its last frame
    list(short.tap(_still_frames(3)))
    assert short.frame is not None and short.frame.pts == 2


def test_an_8khz_render_is_written_at_a_rate_every_player_handles(
    model: MouthbankModel, speech: np.ndarray, tmp_path: Path
) -> None:
    narrow = speech[::2].copy()  # 8 kHz: what a phone line or an old recorder gives
    seen: list[tuple[int, int]] = []
    video = render_files(
        model, AudioFrame(narrow, 8000), tmp_path, [], on_frame=lambda *a: seen.append(a)
    )
    assert video == tmp_path / "video.mp4"
    assert (tmp_path / "thumbnail.jpg").exists() and (tmp_path / "hls" / "index.m3u8").exists()
    with av.open(str(video)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.rate == 48000
        decoded = sum(f.samples for f in container.decode(audio))
        frames = container.streams.video[0].frames
    assert len(narrow) * 6 <= decoded <= len(narrow) * 6 + 2048  # all of it, resampled
    total = int(np.ceil(len(narrow) / 8000 * 25))
    assert frames == total and seen[-1] == (total, total) and len(seen) == total
