"""The render chain: timed frames from a real engine session, steps that keep the time, and
file sinks that place each frame at its pts (read back with PyAV)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from likeness.engines.mouthbank import MouthbankEngine, MouthbankModel
from likeness.engines.mouthbank.model import output_size
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
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("short_talk")
    pipeline.run(local_job(FIXTURES / "short_talk.mp4", work))
    return work / "bundle"


@pytest.fixture(scope="module")
def model(bundle: Path) -> MouthbankModel:
    return MouthbankEngine().load(bundle)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return read_audio(FIXTURES / "librivox_0880.wav", SR)[0]


def _still_frames(count: int, size: tuple[int, int] = (64, 48)) -> list[VideoFrame]:
    """Flat grey frames, each a shade lighter, 1/25 s apart."""
    w, h = size
    return [VideoFrame.of(np.full((h, w, 3), 40 + 10 * i, np.uint8), i, TB) for i in range(count)]


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
    frames.append(VideoFrame.of(np.full((48, 64, 3), 200, np.uint8), 20, Fraction(1, 50)))
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
    frames = [VideoFrame.of(person, pts, TB, speaking=pts == 4) for pts in (3, 4, 7)]
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


def _base_of(model: MouthbankModel, index: int) -> np.ndarray:
    """The base frame (I420 planes) under engine frame ``index``: the loop plays ping-pong."""
    count = len(model.base_planes)
    phase = index % max(1, 2 * count - 2)
    return model.base_planes[phase if phase < count else 2 * count - 2 - phase]


def test_only_the_mouth_differs_from_the_base_frame(
    model: MouthbankModel, speech: np.ndarray
) -> None:
    frames = list(frames_for(model, AudioFrame(speech, SR), phones=[]))
    height, width = model.height, model.width
    boxes = []
    for index, frame in enumerate(frames):
        planes = frame.picture.i420()
        moved = planes != _base_of(model, index)
        luma = moved[:height]
        assert moved[height:].any() == luma.any()  # colour and light move together
        rows, cols = np.nonzero(luma)
        boxes.append((rows.min(), rows.max() + 1, cols.min(), cols.max() + 1))
        # what the encoder is handed is exactly these planes
        target = av.VideoFrame(width, height, "yuv420p")
        frame.picture.fill(target)
        assert np.array_equal(target.to_ndarray(), planes)
    # Every other byte is the decoded base frame's own: the pixels that change lie in one
    # box around the mouth, in the lower half of the face, a small part of the frame.
    for top, bottom, left, right in boxes:
        assert (bottom - top) * (right - left) < 0.15 * height * width
        assert top > height * 0.3 and 0.2 * width < left < right < 0.8 * width
    # and the mouth itself moves: the box's pixels change from frame to frame
    assert len({(f.picture.i420()[: model.height]).tobytes() for f in frames[:10]}) == 10


def test_the_output_height_scales_the_whole_render(
    bundle: Path, model: MouthbankModel, speech: np.ndarray, tmp_path: Path
) -> None:
    assert output_size((400, 300), None) == (400, 300)
    assert output_size((400, 300), 1080) == (400, 300)  # never scaled up
    assert output_size((1920, 1080), 720) == (1280, 720)
    assert output_size((1080, 1920), 720) == (720, 1280)  # portrait: the shorter side
    assert output_size((3840, 2160), 1080) == (1920, 1080)
    small = MouthbankEngine().load(bundle, height=150)
    assert (small.width, small.height, small.fps) == (200, 150, model.fps)
    assert small.base_planes.shape[1:] == (225, 200)
    # The same frames, only smaller: the mouth lands where it did, at half the size.
    big = list(frames_for(model, AudioFrame(speech, SR), phones=[]))
    half = list(frames_for(small, AudioFrame(speech, SR), phones=[]))
    assert len(big) == len(half)
    for a, b in zip(big[::10], half[::10], strict=True):
        shrunk = cv2.resize(a.image, (200, 150), interpolation=cv2.INTER_AREA).astype(int)
        assert b.image.shape == (150, 200, 3)
        assert np.abs(shrunk - b.image)[75:150, 50:150].mean() < 3  # the lower face
    # Every sink writes it at that size: the MP4, its HLS segments, the still, the WebM.
    audio = AudioFrame(speech[: SR * 2], SR)
    video = render_files(small, audio, tmp_path / "mp4", [])
    segment = sorted((tmp_path / "mp4" / "hls").glob("seg_*.ts"))[0]
    for path in (video, segment):
        with av.open(str(path)) as container:
            decoded = next(container.decode(video=0))
            assert (decoded.width, decoded.height) == (200, 150)
    assert cv2.imread(str(tmp_path / "mp4" / "thumbnail.jpg")).shape == (150, 200, 3)
    webm = render_files(small, audio, tmp_path / "webm", [], transparent=True)
    decoder = av.CodecContext.create("libvpx-vp9", "r")
    with av.open(str(webm)) as container:
        frames = [f for p in container.demux(container.streams.video[0]) for f in decoder.decode(p)]
    assert len(frames) == 50 and frames[0].format.name == "yuva420p"
    assert (frames[0].width, frames[0].height) == (200, 150)
    alpha = frames[0].to_ndarray(format="rgba")[:, :, 3]
    assert alpha[50:100, 75:125].mean() > 200 and alpha[:20, :20].mean() < 60
