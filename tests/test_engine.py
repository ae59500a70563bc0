"""The mouthbank engine on a real clip: fitted by the real pipeline, judged by FaceMesh on
the frames it renders."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import av
import numpy as np
import pytest

from likeness.engines.base import TrainingInput
from likeness.engines.mouthbank import MouthbankEngine, MouthbankModel, visemes
from likeness.engines.mouthbank import session as session_module
from likeness.face import landmarks as lm
from likeness.face.tracker import FaceMeshTracker, FaceTrack
from likeness.media import video
from likeness.media.audio import read_audio
from likeness.media.video import frames_numbered
from likeness.providers import asr_sphinx
from likeness.providers.asr_sphinx import SphinxPhones
from likeness.providers.base import Phone, PhoneRecognizer, SettledPhones
from likeness.providers.phones_whisper import WhisperPhones
from likeness.providers.script import speak
from likeness.rendering.frames import AudioFrame
from likeness.rendering.offline import render_mp4
from likeness.rendering.source import frames_for
from likeness.training import pipeline, quality
from likeness.training.workspace import Workspace

from .conftest import FIXTURES, live_children, local_job

SR = 16000


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> MouthbankModel:
    work = tmp_path_factory.mktemp("short_talk")
    artifacts = pipeline.run(local_job(FIXTURES / "short_talk.mp4", work))
    assert artifacts["manifest"]["engine"] == "mouthbank"  # type: ignore[index]
    return MouthbankEngine().load(work / "bundle")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    samples, rate = read_audio(FIXTURES / "librivox_0880.wav", SR)
    assert rate == SR
    return samples


def _openings(images: list[np.ndarray]) -> np.ndarray:
    out = []
    with FaceMeshTracker() as tracker:
        for image in images:
            points = tracker.landmarks(image)
            assert points is not None, "the rendered frame must still show a face"
            out.append(float(lm.mouth_opening(points)))
    return np.array(out)


def test_bundle_is_fitted_to_the_video(model: MouthbankModel) -> None:
    assert model.fps == 25.0 and (model.width, model.height) == (400, 300)
    assert len(model.bank_images) > 200
    assert model.base_planes.shape[1:] == (450, 400)  # I420: 300 rows of Y, then U and V
    assert model.open_q[-1] > model.open_q[0] + 0.05  # the person's own opening range
    assert model.manifest["audio_map"] == "fitted"


def test_frame_count_matches_audio_length(model: MouthbankModel, speech: np.ndarray) -> None:
    session = model.session()
    session.push_audio(speech, SR)
    session.end_audio()
    frames = session.pull()
    assert len(frames) == int(np.ceil(len(speech) / SR * model.fps))
    assert [f.index for f in frames] == list(range(len(frames)))


def test_streaming_equals_one_shot(model: MouthbankModel, speech: np.ndarray) -> None:
    whole = model.session()
    whole.push_audio(speech, SR)
    whole.end_audio()
    expected = whole.pull()
    chunked = model.session()
    got = []
    for start in range(0, len(speech), 1600):  # 100 ms chunks, as a real-time client sends
        chunked.push_audio(speech[start : start + 1600], SR)
        got.extend(chunked.pull())
    chunked.end_audio()
    got.extend(chunked.pull())
    assert len(got) == len(expected)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(got, expected, strict=True))


def test_mouth_opens_with_speech_and_rests_in_silence(
    model: MouthbankModel, speech: np.ndarray
) -> None:
    silence = np.zeros(SR, np.float32)
    session = model.session()
    session.push_audio(np.concatenate([silence, speech, silence]), SR)
    session.end_audio()
    frames = session.pull()
    opening = _openings([f.image for f in frames])
    speaking = np.array([f.speaking for f in frames])
    n_silent = int(model.fps)
    assert not speaking[: n_silent - 2].any() and not speaking[-n_silent + 2 :].any()
    assert speaking.mean() > 0.4
    resting = np.concatenate([opening[: n_silent - 2], opening[-n_silent + 2 :]])
    assert np.median(resting) < 0.03, "lips closed in the pauses"
    assert opening[speaking].mean() > 2 * resting.mean() + 0.02, "mouth moves with speech"
    assert opening[speaking].std() > 0.01, "and not as one frozen shape"


def test_clear_stops_speech_within_one_frame(model: MouthbankModel, speech: np.ndarray) -> None:
    session = model.session()
    session.push_audio(speech, SR)
    spoken = session.pull()
    assert spoken and any(f.speaking for f in spoken)
    session.clear()
    assert session.pull() == []
    idle = session.idle_frame()
    assert not idle.speaking and idle.index == spoken[-1].index + 1
    assert _openings([idle.image])[0] < 0.03


def test_render_writes_h264_aac_of_the_audio_length(
    model: MouthbankModel, speech: np.ndarray, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    frames = render_mp4(model, AudioFrame(speech, SR), out, SphinxPhones())
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert (video.codec_context.width, video.codec_context.height) == (400, 300)
        assert float(video.average_rate) == pytest.approx(25.0)
        decoded = sum(f.samples for f in container.decode(audio))
    assert frames == int(np.ceil(len(speech) / SR * 25))
    # AAC pads to whole 1024-sample frames; the stream keeps exactly our samples + padding.
    assert len(speech) <= decoded <= len(speech) + 2048


def test_offline_render_seals_the_lips_on_every_bilabial_and_only_there(
    model: MouthbankModel,
) -> None:
    """Phones aligned to the words, read back with FaceMesh in 3-D: the lips touch (gap <= 2 %
    of the eye-corner distance) at each /p b m/, and far less often on the other speech
    frames (chance: 0.59 before consonants kept the lips apart, 0.17 after); open vowels open
    past the render's median."""
    speech = read_audio(FIXTURES / "librivox_0870.wav", SR)[0]
    text = (
        "and mister john dashwood had then leisure to consider how much there might be "
        "prudently in his power to do for them"
    )
    phones = asr_sphinx.align(speech, text)
    assert len([p for p in phones if p.name in visemes.BILABIALS]) == 7
    images = [f.image for f in frames_for(model, AudioFrame(speech, SR), phones)]
    with FaceMeshTracker() as tracker:
        read = [tracker.landmarks_3d(image) for image in images]
    assert all(p is not None for p in read), "the rendered frames must still show a face"
    gaps = np.array([float(lm.lip_gap(p)) for p in read if p is not None])
    scores = quality.lip_scores(gaps, phones, model.fps)
    assert scores["bilabials_sealed"] == 1.0, scores
    assert scores["bilabials_sealed_chance"] is not None
    assert scores["bilabials_sealed_chance"] <= 0.35, scores  # sealed on /p b m/, not along
    assert scores["open_vowels_opened"] == 1.0, scores


def test_a_sealed_mouth_comes_from_the_persons_own_sealed_crops() -> None:
    gaps = np.array([0.05, 0.004, 0.012, 0.03, 0.009, 0.001, 0.014, 0.02])
    assert session_module.seal_limit(gaps) == pytest.approx(0.015)  # five touch, with room
    assert session_module.seal_limit(gaps + 0.02) == pytest.approx(0.034)  # the 5 most closed


def test_visemes_of_a_frame() -> None:
    phones = [
        Phone("SIL", 0.0, 0.2),
        Phone("M", 0.2, 0.23),  # 30 ms: shorter than a frame, still closes one
        Phone("AA", 0.23, 0.4),
        Phone("S", 0.4, 0.5),
        Phone("IY", 0.5, 0.6),
    ]
    kinds = visemes.Visemes(phones, 25.0).kinds(np.arange(16))
    assert list(kinds[:5]) == [visemes.CLOSED] * 5  # silence
    assert kinds[5] == visemes.CLOSED  # 0.20-0.24 s holds the /m/'s middle
    assert list(kinds[6:10]) == [visemes.OPEN_VOWEL] * 4
    assert kinds[10] == visemes.CONSONANT  # /s/
    assert kinds[13] == visemes.VOWEL
    assert kinds[15] == visemes.OTHER  # past the last phone


def test_a_script_is_spoken_with_its_phones_aligned_sentence_by_sentence() -> None:
    samples, rate, phones = speak("Mop the floor. Bob came by at nine!")
    seconds = len(samples) / rate
    spoken = [p.name for p in phones if p.name not in visemes.SILENCES]
    assert spoken[:5] == ["M", "AA", "P", "DH", "AH"]
    assert spoken.count("B") == 3 and "M" in spoken[5:]  # the second sentence, placed after
    starts = [p.start_s for p in phones]
    assert starts == sorted(starts) and phones[-1].end_s <= seconds + 0.05


def test_phones_recognised_while_rendering_give_the_same_frames(model: MouthbankModel) -> None:
    """Given a recogniser, frames_for recognises the phones (in a child process) and renders
    the frames whose phones have settled meanwhile: the same phones, and so the same frames,
    as recognising first and rendering after."""
    samples, _ = read_audio(FIXTURES / "librivox_0870.wav", SR)
    phones = asr_sphinx.recognise(samples)
    streamed = [p for batch, _until in asr_sphinx.recognise_apart(samples) for p in batch]
    assert streamed == phones and len(phones) > 50
    after = list(frames_for(model, AudioFrame(samples, SR), phones))
    meanwhile = list(frames_for(model, AudioFrame(samples, SR), SphinxPhones()))
    assert len(meanwhile) == len(after) == int(np.ceil(len(samples) / SR * model.fps))
    assert [f.pts for f in meanwhile] == [f.pts for f in after] == list(range(len(after)))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(after, meanwhile, strict=True))


class _Watched:
    """WhisperPhones whose last stretch is handed over only once ``drawn`` is set (or after
    30 s), each hand-over written into ``events``, the phones kept in ``phones``."""

    def __init__(self, events: list[str], drawn: threading.Event) -> None:
        self.events, self.drawn = events, drawn
        self.phones: list[Phone] = []

    def settle(self, samples: np.ndarray, rate: int) -> Iterator[SettledPhones]:
        for settled in WhisperPhones().settle(samples, rate):
            if settled.until_s * rate >= len(samples):
                self.drawn.wait(timeout=30)
                self.events.append("last stretch")
            else:
                self.events.append("a stretch")
            self.phones += settled.phones
            yield settled


def test_frames_render_while_the_later_stretches_are_recognised(model: MouthbankModel) -> None:
    """An audio's phones heard by Whisper and aligned a stretch at a time: the first frame is
    drawn before the last stretch's phones exist, and the frames are those of the same phones
    known up front (test_whisper: they are the phones of all the audio aligned at once)."""
    first, _ = read_audio(FIXTURES / "librivox_0870.wav", SR)
    samples = np.concatenate([first, read_audio(FIXTURES / "librivox_0880.wav", SR)[0]])
    events: list[str] = []
    drawn = threading.Event()
    watched = _Watched(events, drawn)
    meanwhile = []
    for frame in frames_for(model, AudioFrame(samples, SR), cast(PhoneRecognizer, watched)):
        if not meanwhile:
            events.append("first frame")
            drawn.set()
        meanwhile.append(frame)
    assert events.index("first frame") < events.index("last stretch")
    assert events[0] == "a stretch"
    after = list(frames_for(model, AudioFrame(samples, SR), watched.phones))
    assert len(after) == len(meanwhile) == int(np.ceil(len(samples) / SR * model.fps))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(after, meanwhile, strict=True))


def test_a_render_stopped_early_ends_its_recognition() -> None:
    samples, _ = read_audio(FIXTURES / "librivox_0870.wav", SR)
    batches = asr_sphinx.recognise_apart(samples)
    first, until = next(batches)
    assert first and 0.0 < until < len(samples) / SR
    assert _recognisers(), "the recognition runs in a child process"
    batches.close()  # what a render that stops early does
    assert not _recognisers(), "the child is ended, not left running"


def _recognisers() -> list[int]:
    """This process's live phone-recognition children."""
    return live_children(b"sphinx_stream")


def test_lip_scores_count_seals_and_openings_beside_chance() -> None:
    """Frame i shows i / 25 s. A mouth sealed only at the /m/ scores far above the chance
    of the same windows on every speech frame; one sealed all through speech does not."""
    phones = [
        Phone("SIL", 0.0, 0.2),
        Phone("M", 0.2, 0.28),  # middle 0.24 s: frame 6
        Phone("AA", 0.28, 0.48),  # middle 0.38 s: frame 10 (9.5 rounds to even)
        Phone("S", 0.48, 0.8),
        Phone("IY", 0.8, 1.0),
        Phone("SIL", 1.0, 1.2),
    ]
    on_phones = np.full(30, 0.03)
    on_phones[:5] = on_phones[25:] = 0.01  # pauses
    on_phones[6] = 0.015  # the /m/
    on_phones[8:12] = 0.09  # the /aa/
    scores = quality.lip_scores(on_phones, phones, 25.0)
    assert scores["bilabials"] == 1 and scores["bilabials_sealed"] == 1.0
    assert scores["open_vowels"] == 1 and scores["open_vowels_opened"] == 1.0
    assert scores["bilabials_sealed_chance"] == pytest.approx(4 / 20, abs=0.01)  # 5-7, 24
    assert scores["open_vowels_opened_chance"] == pytest.approx(6 / 20, abs=0.01)
    always = np.where(np.arange(30) == 10, 0.05, 0.01)
    scores = quality.lip_scores(always, phones, 25.0)
    assert scores["bilabials_sealed"] == 1.0 and scores["bilabials_sealed_chance"] == 1.0
    no_face = quality.lip_scores(np.full(30, np.nan), phones, 25.0)
    assert no_face["bilabials"] == 0 and no_face["bilabials_sealed"] is None


def test_the_quality_report_holds_out_speech_not_a_silent_end(speech: np.ndarray) -> None:
    """20 s: speech for 14 s, then 6 s of silence. The held-out 4 s hold speech."""
    audio = np.zeros(20 * SR, np.float32)
    talk = np.tile(speech, int(np.ceil(14 * SR / len(speech))))[: 14 * SR]
    audio[: len(talk)] = talk
    n = 500
    track = FaceTrack(
        np.zeros((n, 478, 2), np.float32), np.ones(n, bool), 400, 300, np.ones(n, bool)
    )
    window = quality.held_out(TrainingInput(FIXTURES / "short_talk.mp4", track, 25.0, audio, SR))
    assert window is not None
    start, end = window
    assert end - start == 100 and start < 14 * 25 - 50, window
    assert quality.held_out(
        TrainingInput(FIXTURES / "short_talk.mp4", track, 25.0, np.roll(audio, 6 * SR), SR)
    ) == (400, 500), "a video that ends talking keeps its end held out"


def test_the_quality_report_reads_only_the_face_box_of_real_frames(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's real face crops are cut from the decoder's YUV, box by box, never from a
    whole converted picture, and are the very crops the whole picture gave (so every figure
    of the report is unchanged)."""
    data = Workspace(trained.parent).training_input()
    window = quality.held_out(data)
    assert window is not None
    start, end = window
    points, whole = [], []
    for i in range(start, end):
        measured = data.track.present[i] and data.track.measured[i]
        points.append(data.track.landmarks[i] if measured else None)
    wanted = [start + i for i, p in enumerate(points) if p is not None]
    for number, rgb in frames_numbered(data.video_path, wanted):
        p = points[number - start]
        assert p is not None
        whole.append(quality.face_crop(rgb, p))
    assert len(whole) > 10

    converted: list[tuple[int, int]] = []
    real_to_rgb = video.to_rgb

    def to_rgb(frame: av.VideoFrame) -> np.ndarray:
        converted.append((frame.width, frame.height))
        return real_to_rgb(frame)

    monkeypatch.setattr(video, "to_rgb", to_rgb)
    _, crops = quality._real(data.video_path, start, end, data.track)
    assert converted == [], "a whole picture was converted"
    cut = [c for c in crops if c is not None]
    assert len(cut) == len(whole)
    for a, b in zip(cut, whole, strict=True):
        np.testing.assert_array_equal(a, b)
