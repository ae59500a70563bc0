"""The quality report: hold out the end of the video, fit on the rest, render the held-out
audio and compare with the real held-out frames, next to two baselines that a reader can
calibrate against: a frozen mouth and the same audio shifted by 1 s.

These numbers mean something only for a video whose speech is the person's own: on a clip
with foreign audio (our plumbing clips) every system scores like the shifted baseline, which
is the right answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from likeness.engines.base import ReplicaModel, TrainingInput
from likeness.face import landmarks as lm
from likeness.face.tracker import FaceMeshTracker, FaceTrack
from likeness.media.audio import resample
from likeness.media.speech import SAMPLE_RATE_HZ, relative_features
from likeness.media.video import frames_numbered
from likeness.providers.base import PhoneRecognizer
from likeness.rendering.frames import AudioFrame
from likeness.rendering.source import frames_for

HOLD_OUT = 0.2
MAX_HELD_OUT_S = 12.0  # the report costs ~1 s per held-out second on 2 cores at 720p
SHIFT_S = 1.0
MAX_LAG = 15


def held_out_split(n_frames: int, fps: float) -> int | None:
    """The first held-out frame: the last 20 % of the video, at most 12 s; None when that
    leaves under 2 s to compare."""
    split = max(int(n_frames * (1 - HOLD_OUT)), n_frames - int(MAX_HELD_OUT_S * fps))
    return None if n_frames - split < int(2 * fps) else split


def report(
    data: TrainingInput, model: ReplicaModel, split: int, phones: PhoneRecognizer
) -> dict[str, object]:
    """Compare ``model`` (fitted on the frames before ``split`` and their audio only) saying
    the held-out audio, its phones recognised by ``phones``, with the real held-out frames."""
    track = data.track
    n = track.n_frames
    audio16 = resample(data.audio, data.sample_rate_hz, SAMPLE_RATE_HZ)
    cut = int(split / data.fps * SAMPLE_RATE_HZ)
    held = audio16[cut : cut + int((n - split) / data.fps * SAMPLE_RATE_HZ)]
    frames = n - split
    systems = {
        "replica": _render(model, held, frames, phones),
        "frozen_mouth": _idle(model, frames),
        "audio_shifted_1s": _render(
            model, np.roll(held, int(SHIFT_S * SAMPLE_RATE_HZ)), frames, phones
        ),
    }
    envelope = relative_features(held, data.fps)[:frames, 0]
    out: dict[str, object] = {
        "held_out_s": [round(split / data.fps, 2), round(n / data.fps, 2)],
        "note": "meaningful only when the video's speech is the person's own",
    }
    # Each system renders and is read back by its own FaceMesh in a thread of its own, beside
    # the real frames' decoding (MediaPipe, OpenCV and PyAV let go of the GIL), so the report
    # keeps both cores busy.
    with ThreadPoolExecutor(max_workers=len(systems) + 1, thread_name_prefix="report") as pool:
        reading = pool.submit(_real, data.video_path, split, track)
        measured = {name: pool.submit(_measure, images) for name, images in systems.items()}
        real, real_crops = reading.result()
        for name, measuring in measured.items():
            out[name] = _compare(*measuring.result(), real, real_crops, envelope)
    return out


def _render(
    model: ReplicaModel, audio: np.ndarray, frames: int, phones: PhoneRecognizer
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
) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
    """Landmarks and face crops of each frame, keeping no frame."""
    points: list[np.ndarray | None] = []
    crops: list[np.ndarray | None] = []
    with FaceMeshTracker() as tracker:
        for image in images:
            p = tracker.landmarks(image)
            points.append(p)
            crops.append(None if p is None else face_crop(image, p))
    return points, crops


def _real(
    video: Path, start: int, track: FaceTrack
) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
    """The held-out frames' landmarks and face crops (not the frames: memory stays small);
    None for frames without a face or whose landmarks were interpolated, not measured."""
    points: list[np.ndarray | None] = [
        track.landmarks[i] if track.present[i] and track.measured[i] else None
        for i in range(start, track.n_frames)
    ]
    crops: list[np.ndarray | None] = [None] * len(points)
    wanted = (start + i for i, p in enumerate(points) if p is not None)
    for number, rgb in frames_numbered(video, wanted):
        p = points[number - start]
        assert p is not None
        crops[number - start] = face_crop(rgb, p)
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


def face_crop(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(64, 64) float32 grey crop of the face box, zero mean and unit norm."""
    x0, y0 = np.maximum(points.min(axis=0).astype(int), 0)
    x1, y1 = points.max(axis=0).astype(int)
    crop = cv2.cvtColor(image[y0 : max(y1, y0 + 2), x0 : max(x1, x0 + 2)], cv2.COLOR_RGB2GRAY)
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
