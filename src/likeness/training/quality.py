"""The quality report: hold out a late stretch of the video that holds speech, fit on what
comes before it, render the held-out audio and compare with the real held-out frames, next
to two baselines that a reader can calibrate against: a frozen mouth and the same audio
shifted by 1 s. Each system's lips are also scored against the held-out audio's phones
(sealed bilabials, opened vowels), each rate beside its chance level.

These numbers mean something only for a video whose speech is the person's own: on a clip
with foreign audio (our plumbing clips) every system scores like the shifted baseline, which
is the right answer.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from likeness.engines.base import ReplicaModel, TrainingInput
from likeness.engines.mouthbank.visemes import BILABIALS, OPEN_VOWELS, SILENCES
from likeness.face import landmarks as lm
from likeness.face.tracker import FaceMeshTracker, FaceTrack
from likeness.media.audio import resample
from likeness.media.speech import SAMPLE_RATE_HZ, is_speech, relative_features
from likeness.media.video import cut_region, decoded_numbered
from likeness.providers.base import Phone, PhoneRecognizer
from likeness.rendering.frames import AudioFrame
from likeness.rendering.source import frames_for
from likeness.training import checks

HOLD_OUT = 0.2
MIN_SPEECH_SHARE = 0.5  # of the held-out window
MAX_HELD_OUT_S = 12.0  # the report costs ~1 s per held-out second on 2 cores at 720p
SHIFT_S = 1.0
MAX_LAG = 15


def held_out(data: TrainingInput) -> tuple[int, int] | None:
    """The held-out frames [start, end): 20 % of the video, at most 12 s, and the latest such
    window (at whole seconds back from the end, never before the video's middle) that is at
    least half speech, else the one with the most speech: a silent end would score every
    system alike. The held-in model knows only the frames before ``start``. None when the
    video is too short to hold out 2 s."""
    n, fps = data.track.n_frames, data.fps
    length = min(n - int(n * (1 - HOLD_OUT)), int(MAX_HELD_OUT_S * fps))
    if length < int(2 * fps):
        return None
    audio16 = resample(data.audio, data.sample_rate_hz, SAMPLE_RATE_HZ)
    features = relative_features(audio16, fps)
    speech = np.zeros(n, bool)
    flags = is_speech(features[:, 0], features[:, 1])[:n]
    speech[: len(flags)] = flags
    starts = range(n - length, max(n // 2, 1) - 1, -max(1, round(fps)))
    shares = [float(speech[s : s + length].mean()) for s in starts]
    best = next((i for i, share in enumerate(shares) if share >= MIN_SPEECH_SHARE), None)
    start = starts[int(np.argmax(shares)) if best is None else best]
    return start, start + length


def report(
    data: TrainingInput, model: ReplicaModel, window: tuple[int, int], phones: PhoneRecognizer
) -> dict[str, object]:
    """Compare ``model`` (fitted on the frames before ``window`` and their audio only) saying
    the held-out audio, its phones recognised by ``phones``, with the real held-out frames;
    and score how its lips follow those phones (lip_scores), beside the baselines'."""
    track = data.track
    start, end = window
    audio16 = resample(data.audio, data.sample_rate_hz, SAMPLE_RATE_HZ)
    cut = int(start / data.fps * SAMPLE_RATE_HZ)
    held = audio16[cut : cut + int((end - start) / data.fps * SAMPLE_RATE_HZ)]
    frames = end - start
    held_phones = phones.phones(held, SAMPLE_RATE_HZ)
    systems = {
        "replica": _render(model, held, frames, held_phones),
        "frozen_mouth": _idle(model, frames),
        "audio_shifted_1s": _render(
            model, np.roll(held, int(SHIFT_S * SAMPLE_RATE_HZ)), frames, phones
        ),
    }
    envelope = relative_features(held, data.fps)[:frames, 0]
    out: dict[str, object] = {
        "held_out_s": [round(start / data.fps, 2), round(end / data.fps, 2)],
        "note": "meaningful only when the video's speech is the person's own; lips are "
        "scored against the held-out audio's recognised phones",
    }
    warning = checks.sealed_lips(track)["warning"]
    if warning:
        out["warning"] = warning
    # Each system renders and is read back by its own FaceMesh in a thread of its own, beside
    # the real frames' decoding (MediaPipe, OpenCV and PyAV let go of the GIL), so the report
    # keeps both cores busy.
    with ThreadPoolExecutor(max_workers=len(systems) + 1, thread_name_prefix="report") as pool:
        reading = pool.submit(_real, data.video_path, start, end, track)
        measured = {name: pool.submit(_measure, images) for name, images in systems.items()}
        real, real_crops = reading.result()
        for name, measuring in measured.items():
            got, crops, gaps = measuring.result()
            out[name] = {
                **_compare(got, crops, real, real_crops, envelope),
                **lip_scores(gaps, held_phones, data.fps),
            }
    return out


def _render(
    model: ReplicaModel, audio: np.ndarray, frames: int, phones: list[Phone] | PhoneRecognizer
) -> Iterator[np.ndarray]:
    """Exactly ``frames`` frames, a second of audio at a time (memory stays flat)."""
    count = 0
    for frame in frames_for(model, AudioFrame(audio, SAMPLE_RATE_HZ), phones):
        if count == frames:
            return
        count += 1
        yield frame.image
    yield from _idle(model, frames - count)


def _idle(model: ReplicaModel, frames: int) -> Iterator[np.ndarray]:
    """A mouth at rest on the person's base loop (the head still moves): the frozen mouth."""
    session = model.session()
    for _ in range(frames):
        yield session.idle_frame().image


def _measure(
    images: Iterable[np.ndarray],
) -> tuple[list[np.ndarray | None], list[np.ndarray | None], np.ndarray]:
    """2-D landmarks, face crops and 3-D lip gaps (NaN: no face) of each frame, keeping no
    frame."""
    points: list[np.ndarray | None] = []
    crops: list[np.ndarray | None] = []
    gaps: list[float] = []
    with FaceMeshTracker() as tracker:
        for image in images:
            p3 = tracker.landmarks_3d(image)
            p = None if p3 is None else np.ascontiguousarray(p3[:, :2])
            points.append(p)
            crops.append(None if p is None else face_crop(image, p))
            gaps.append(np.nan if p3 is None else float(lm.lip_gap(p3)))
    return points, crops, np.array(gaps)


def _real(
    video: Path, start: int, end: int, track: FaceTrack
) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
    """The held-out frames' landmarks and face crops (not the frames: memory stays small);
    None for frames without a face or whose landmarks were interpolated, not measured. Only
    each face box is converted from the decoder's YUV (the same pixels as converting the
    whole picture: a 1080p or 4K frame whole costs several ms)."""
    points: list[np.ndarray | None] = [
        track.landmarks[i] if track.present[i] and track.measured[i] else None
        for i in range(start, end)
    ]
    crops: list[np.ndarray | None] = [None] * len(points)
    wanted = (start + i for i, p in enumerate(points) if p is not None)
    for number, frame in decoded_numbered(video, wanted):
        p = points[number - start]
        assert p is not None
        x0, y0, x1, y1 = face_box(p)
        crops[number - start] = grey_crop(cut_region(frame, (x0, y0, x1, y1)))
    return points, crops


def _compare(
    got: list[np.ndarray | None],
    got_crops: list[np.ndarray | None],
    real: list[np.ndarray | None],
    real_crops: list[np.ndarray | None],
    envelope: np.ndarray,
) -> dict[str, float | None]:
    pairs = [(g, r) for g, r in zip(got, real, strict=False) if g is not None and r is not None]
    if len(pairs) < 5:
        return {
            "mouth_landmark_distance": None,
            "opening_correlation": None,
            "av_offset_frames": None,
            "face_similarity": None,
        }
    distance = float(np.mean([_mouth_distance(g, r) for g, r in pairs]))
    go = np.array([float(lm.mouth_opening(g)) for g, _ in pairs])
    ro = np.array([float(lm.mouth_opening(r)) for _, r in pairs])
    corr = float(np.corrcoef(go, ro)[0, 1]) if go.std() > 1e-6 and ro.std() > 1e-6 else 0.0
    opening = np.array([np.nan if g is None else float(lm.mouth_opening(g)) for g in got])
    return {
        "mouth_landmark_distance": round(distance, 4),
        "opening_correlation": round(corr, 3),
        "av_offset_frames": av_offset(opening, envelope),
        "face_similarity": round(_similarity(got_crops, real_crops), 3),
    }


def _mouth_distance(got: np.ndarray, real: np.ndarray) -> float:
    """Mouth points, each set centred and scaled by its own inter-ocular distance."""
    a = (got[lm.LIPS] - got[lm.LIPS].mean(axis=0)) / lm.inter_ocular(got)
    b = (real[lm.LIPS] - real[lm.LIPS].mean(axis=0)) / lm.inter_ocular(real)
    return float(np.linalg.norm(a - b, axis=1).mean())


def av_offset(opening: np.ndarray, envelope: np.ndarray) -> float | None:
    """The lag (frames, within ±15) at which mouth opening best follows the audio envelope;
    positive: the mouth moves after the sound."""
    n = min(len(opening), len(envelope))
    x = np.nan_to_num(opening[:n] - np.nanmean(opening[:n]))
    y = envelope[:n] - envelope[:n].mean()
    if n < 2 * MAX_LAG or not x.any():
        return None
    lags = list(range(-MAX_LAG, MAX_LAG + 1))
    scores = [
        float(np.sum(x[max(0, k) : n + min(0, k)] * y[max(0, -k) : n - max(0, k)])) for k in lags
    ]
    return float(lags[int(np.argmax(scores))])


def lip_scores(gap: np.ndarray, phones: list[Phone], fps: float) -> dict[str, float | int | None]:
    """How often the rendered lips do what the phones ask, beside what chance would give.

    ``gap``: (F,) lm.lip_gap of each rendered frame (NaN where no face was read). A bilabial
    (/p b m/) is sealed when the gap is at most SEALED_GAP in the frame nearest its middle or
    either neighbour; an open vowel (/aa ae ah ao aw ay/) is opened when the gap exceeds the
    render's median over its speech frames there. Chance: the same three-frame windows on
    every speech frame of the same render (a mouth that moves as much, phones ignored)."""
    n = len(gap)
    if n == 0:
        return {"bilabials": 0, "open_vowels": 0}
    padded = np.r_[np.nan, gap, np.nan]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: no face read
        windows = np.stack([padded[:-2], padded[1:-1], padded[2:]])
        lowest, highest = np.nanmin(windows, axis=0), np.nanmax(windows, axis=0)
    sealed = lowest <= lm.SEALED_GAP
    instant = np.arange(n) / fps  # frame i shows the instant i / fps
    speech = np.zeros(n, bool)
    for p in phones:
        if p.name not in SILENCES:
            speech[(instant >= p.start_s) & (instant < p.end_s)] = True
    median = float(np.nanmedian(gap[speech])) if np.isfinite(gap[speech]).any() else np.nan
    opened = highest > median
    read = np.isfinite(lowest)

    def at(names: frozenset[str]) -> np.ndarray:
        mids = [round((p.start_s + p.end_s) / 2 * fps) for p in phones if p.name in names]
        frames = np.clip(np.array(mids, np.int64), 0, n - 1)
        kept: np.ndarray = frames[read[frames]]
        return kept

    def rate(flags: np.ndarray) -> float | None:
        return round(float(flags.mean()), 3) if flags.size else None

    bilabials, vowels, chance = at(BILABIALS), at(OPEN_VOWELS), speech & read
    return {
        "bilabials": int(bilabials.size),
        "bilabials_sealed": rate(sealed[bilabials]),
        "bilabials_sealed_chance": rate(sealed[chance]),
        "open_vowels": int(vowels.size),
        "open_vowels_opened": rate(opened[vowels]),
        "open_vowels_opened_chance": rate(opened[chance]),
    }


def face_crop(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(64, 64) float32 grey crop of the face box, zero mean and unit norm."""
    x0, y0, x1, y1 = face_box(points)
    return grey_crop(image[y0:y1, x0:x1])


def face_box(points: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the landmarks' box, at least 2 px a side, clipped above and left."""
    x0, y0 = (int(v) for v in np.maximum(points.min(axis=0).astype(int), 0))
    x1, y1 = (int(v) for v in points.max(axis=0).astype(int))
    return x0, y0, max(x1, x0 + 2), max(y1, y0 + 2)


def grey_crop(region: np.ndarray) -> np.ndarray:
    """(64, 64) float32 grey of an RGB region, zero mean and unit norm."""
    crop = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey -= grey.mean()
    result: np.ndarray = grey / (np.linalg.norm(grey) + 1e-6)
    return result


def _similarity(got: list[np.ndarray | None], real: list[np.ndarray | None]) -> float:
    """A stand-in for identity similarity (no face-recognition weights may ship): the mean
    normalised correlation of the grey face boxes of rendered and real frames."""
    values = [
        float((g * r).sum())
        for g, r in zip(got, real, strict=False)
        if g is not None and r is not None
    ]
    return float(np.mean(values)) if values else 0.0
