"""Upload checks: each maps to one Tavus failure type, measures one value per video, compares
it with a threshold, and says where (time ranges) it went wrong.

Thresholds were chosen from measurements on the real clips in shared/data (2026-11-25):

| measure | good clips (talking_unsynced, cap13, test.mov, Wolfgang, carphone, single_face) | bad |
|---|---|---|
| picture change at a cut (grey levels, 32x24) | max 11.1 | face_noface 145, bikes 81 |
| faces >= 2 (share of sampled frames) | 0.00 | stacked clip: see tests |
| |yaw| > 0.3 (share of frames) | < 0.05 (95th pct of |yaw| <= 0.26) | |
| inter-ocular / frame height (median) | 0.20 - 0.40 | |
| ln(p95 / p5) of the inter-ocular distance | <= 0.50 (zooms in cap12) | |
| brightness range of the 1 s mean (grey levels) | <= 26 | |
| brightness (median grey level) | >= 64 | world.mp4 8 |
| speech share of the audio | 0.82 (talking_unsynced) | Wolfgang 0.00 (digital silence) |
| speech level over the noise floor (dB) | 32.6 | the same speech + white noise at 10 dB SNR: 8.7 |
| p95 head distance from its median place (IODs) | <= 0.46 (cap12's zooms) | |
| frames without a tracked face (share) | 0.00 (all six) | face_noface / noface_face 0.57 |
| one hand's points inside the face outline (max) | 0.14 (cap12: hand on chin) | Wolfgang 0.62 |
| sampled frames with such a hand (>= 0.25 inside) | 0.00 | Wolfgang 0.36 |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import uniform_filter1d

from likeness.face import landmarks as lm
from likeness.face.hands import share_inside as hand_share_inside
from likeness.face.tracker import FaceTrack
from likeness.training.limits import Thresholds

# Tavus's order (spec §3.3): when several checks fail, the first here is reported.
ORDER = (
    "face_or_obstruction_detected",
    "lighting_change_detected",
    "background_noise_detected",
    "video_editing_detected",
    "excessive_movement_detected",
    "audio_processing",
    "hands_obstructing_face",
    "second_person_detected",
    "improper_distance",
    "inconsistent_distance",
    "face_turned_away",
    "poor_lighting",
)


LIPS_SEALED = "lips_sealed"
MIN_SEALED_FRAMES = 3  # one or two could be a tracking slip
NEVER_SEALED = (
    "the video never shows the lips sealed: the replica's lips will come close on /p b m/ "
    "but not touch; a video in which the person closes their mouth fully fixes this"
)


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    value: float
    threshold: str
    detail: str
    ranges_s: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Measures:
    """What one decoding pass measured; arrays are per frame unless said otherwise."""

    track: FaceTrack
    fps: float
    luma: np.ndarray  # (T,) mean grey level
    change: np.ndarray  # (T,) mean abs grey change from the previous frame
    face_frames: np.ndarray  # (S,) indices of the frames the face detector saw
    face_counts: np.ndarray  # (S,) faces it found there
    hand_frames: np.ndarray  # (H,) indices of the frames the hand tracker saw
    hand_points: np.ndarray  # (H, 2, 21, 2) its hands' landmarks, NaN where absent
    speech: np.ndarray  # (A,) per-frame speech flags from the audio
    energy_db: np.ndarray  # (A,) per-frame speech-band energy (dBFS)


def run(m: Measures, t: Thresholds = Thresholds()) -> list[CheckResult]:
    """Every check, in Tavus's order."""
    results = [
        _hidden(m, t),
        _lighting(m, t),
        _noise(m, t),
        _editing(m, t),
        _movement(m, t),
        _speech(m, t),
        _hands(m, t),
        _second_person(m, t),
        *_distance(m, t),
        _turned(m, t),
        _brightness(m, t),
    ]
    return sorted(results, key=lambda r: ORDER.index(r.check))


def as_dicts(results: list[CheckResult]) -> list[dict[str, object]]:
    return [asdict(r) for r in results]


def ranges(
    flags: np.ndarray, fps: float, min_s: float = 0.2, bridge_s: float = 0.5
) -> list[tuple[float, float]]:
    """Runs of True in a per-frame series as (start_s, end_s), short gaps bridged."""
    out: list[tuple[float, float]] = []
    index = np.flatnonzero(flags)
    if index.size == 0:
        return out
    start = prev = int(index[0])
    for i in index[1:]:
        if (i - prev) / fps > bridge_s:
            out.append((start / fps, (prev + 1) / fps))
            start = int(i)
        prev = int(i)
    out.append((start / fps, (prev + 1) / fps))
    return [(round(a, 2), round(b, 2)) for a, b in out if b - a >= min_s or b - a >= 1 / fps]


def _editing(m: Measures, t: Thresholds) -> CheckResult:
    median = float(np.median(m.change[1:])) if len(m.change) > 1 else 0.0
    limit = max(t.cut_change, 8.0 * median)
    cuts = m.change > limit
    return CheckResult(
        "video_editing_detected",
        not cuts.any(),
        float(m.change.max(initial=0.0)),
        f"<= {limit:.1f}",
        f"{int(cuts.sum())} hard cut(s)",
        ranges(cuts, m.fps, min_s=0.0),
    )


def _lighting(m: Measures, t: Thresholds) -> CheckResult:
    window = max(1, round(m.fps))
    smooth = uniform_filter1d(m.luma, window, mode="nearest") if len(m.luma) else m.luma
    spread = float(np.ptp(smooth)) if len(smooth) else 0.0
    median = float(np.median(smooth)) if len(smooth) else 0.0
    off = np.abs(smooth - median) > t.lighting_range / 2
    return CheckResult(
        "lighting_change_detected",
        spread <= t.lighting_range,
        spread,
        f"<= {t.lighting_range:.0f}",
        "range of the 1 s mean brightness (grey levels)",
        ranges(off, m.fps),
    )


def _brightness(m: Measures, t: Thresholds) -> CheckResult:
    median = float(np.median(m.luma)) if len(m.luma) else 0.0
    return CheckResult(
        "poor_lighting",
        median >= t.min_brightness,
        median,
        f">= {t.min_brightness:.0f}",
        "median brightness (grey levels)",
        ranges(m.luma < t.min_brightness, m.fps),
    )


def sealed_lips(track: FaceTrack) -> dict[str, object]:
    """Not one of Tavus's checks and never a failure: does the video ever show the lips
    touching (2-D inner-lip gap <= lm.SEALED_GAP)? A replica can only seal its lips on
    /p b m/ with the person's own sealed mouth, so without one it warns."""
    seen = track.present & track.measured
    count = int((lm.lip_gap(track.landmarks[seen]) <= lm.SEALED_GAP).sum())
    result = CheckResult(
        LIPS_SEALED,
        True,
        float(count),
        f">= {MIN_SEALED_FRAMES} frames (a warning, never a failure)",
        "frames whose lips touch (inner-lip gap <= 2 % of the eye-corner distance)",
    )
    return {**asdict(result), "warning": None if count >= MIN_SEALED_FRAMES else NEVER_SEALED}


def _speech(m: Measures, t: Thresholds) -> CheckResult:
    share = float(m.speech.mean()) if len(m.speech) else 0.0
    return CheckResult(
        "audio_processing",
        share >= t.min_speech_share,
        share,
        f">= {t.min_speech_share:.2f}",
        "share of the audio that is speech (none: a mute clip)",
    )


def _at_most(
    check: str, share: float, limit: float, detail: str, where: list[tuple[float, float]]
) -> CheckResult:
    """A check that passes while a share of the video stays at or under its limit."""
    return CheckResult(check, share <= limit, share, f"<= {limit:.2f}", detail, where)


def _sampled(m: Measures, frames: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Flags on every ``every``-th frame spread back onto every frame (each covers its gap)."""
    step = int(frames[1] - frames[0]) if len(frames) > 1 else 1
    out = np.zeros(m.track.n_frames, bool)
    for frame, flag in zip(frames, flags, strict=True):
        if flag:
            out[int(frame) : int(frame) + step] = True
    return out


def _hidden(m: Measures, t: Thresholds) -> CheckResult:
    """The face out of view or covered by something for part of the video (in over half of
    it, the "face not detected" check fails too, and its message comes first)."""
    hidden = ~m.track.present
    share = float(hidden.mean()) if len(hidden) else 0.0
    return _at_most(
        "face_or_obstruction_detected",
        share,
        t.hidden_share,
        "share of frames where the face was hidden or out of view",
        ranges(hidden, m.fps),
    )


def _hands(m: Measures, t: Thresholds) -> CheckResult:
    """A hand over the face: a good part of one hand's landmarks inside the face outline (a
    fingertip resting on the chin stays under the threshold)."""
    shares, seen = [], []
    for frame, hands in zip(m.hand_frames, m.hand_points, strict=True):
        if frame >= m.track.n_frames or not m.track.present[int(frame)]:
            continue
        seen.append(int(frame))
        shares.append(hand_share_inside(hands, m.track.landmarks[int(frame), lm.FACE_OVAL]))
    over = np.array(shares) >= t.hand_in_face
    share = float(over.mean()) if len(over) else 0.0
    return _at_most(
        "hands_obstructing_face",
        share,
        t.hand_share,
        f"share of sampled frames with a hand over the face (>= {t.hand_in_face:.0%} of it "
        "inside the face outline)",
        ranges(_sampled(m, np.array(seen, np.int64), over), m.fps),
    )


def _second_person(m: Measures, t: Thresholds) -> CheckResult:
    several = m.face_counts >= 2
    share = float(several.mean()) if len(several) else 0.0
    flags = _sampled(m, m.face_frames, several)
    return _at_most(
        "second_person_detected",
        share,
        t.second_face_share,
        "share of sampled frames with two or more faces",
        ranges(flags, m.fps),
    )


def _on_face_frames(m: Measures, flags: np.ndarray) -> np.ndarray:
    """Per-face-frame flags spread back onto every frame (False where no face)."""
    out = np.zeros(m.track.n_frames, bool)
    out[np.flatnonzero(m.track.present)] = flags
    return out


def _face_points(m: Measures) -> np.ndarray:
    points: np.ndarray = m.track.landmarks[m.track.present]
    return points


def _distance(m: Measures, t: Thresholds) -> list[CheckResult]:
    points = _face_points(m)
    if len(points) == 0:  # no face at all: reported by the face check, not here
        return [
            CheckResult("improper_distance", True, 0.0, "", "no face"),
            CheckResult("inconsistent_distance", True, 0.0, "", "no face"),
        ]
    iod = lm.inter_ocular(points) / max(1, m.track.height)
    size = float(np.median(iod))
    spread = float(np.log(np.percentile(iod, 95) / np.percentile(iod, 5)))
    far = _on_face_frames(m, (iod < t.min_face_height) | (iod > t.max_face_height))
    return [
        CheckResult(
            "improper_distance",
            t.min_face_height <= size <= t.max_face_height,
            size,
            f"{t.min_face_height:.2f} to {t.max_face_height:.2f}",
            "median inter-ocular distance / frame height",
            ranges(far, m.fps),
        ),
        CheckResult(
            "inconsistent_distance",
            spread <= t.distance_range,
            spread,
            f"<= {t.distance_range:.2f}",
            "ln(p95 / p5) of the inter-ocular distance",
        ),
    ]


def _turned(m: Measures, t: Thresholds) -> CheckResult:
    points = _face_points(m)
    yaw = np.abs(lm.yaw_proxy(points)) if len(points) else np.zeros(0)
    share = float((yaw > t.turned_yaw).mean()) if len(yaw) else 0.0
    flags = _on_face_frames(m, yaw > t.turned_yaw)
    return _at_most(
        "face_turned_away",
        share,
        t.turned_share,
        f"share of frames with the head turned (|yaw| > {t.turned_yaw})",
        ranges(flags, m.fps),
    )


def _noise(m: Measures, t: Thresholds) -> CheckResult:
    """Speech level (median over speech frames) over the noise floor (10th percentile)."""
    if not m.speech.any():
        return CheckResult(
            "background_noise_detected",
            True,
            0.0,
            f">= {t.min_snr_db:.0f}",
            "no speech to compare with the noise (see audio_processing)",
        )
    snr = float(np.median(m.energy_db[m.speech]) - np.percentile(m.energy_db, 10))
    return CheckResult(
        "background_noise_detected",
        snr >= t.min_snr_db,
        snr,
        f">= {t.min_snr_db:.0f}",
        "speech level over the noise floor (dB)",
    )


def _movement(m: Measures, t: Thresholds) -> CheckResult:
    points = _face_points(m)
    if len(points) == 0:
        return CheckResult("excessive_movement_detected", True, 0.0, "", "no face")
    centre = points[:, lm.STABLE].mean(axis=1)
    scale = float(np.median(lm.inter_ocular(points)))
    away = np.linalg.norm(centre - np.median(centre, axis=0), axis=1) / scale
    value = float(np.percentile(away, 95))
    flags = _on_face_frames(m, away > t.max_movement)
    return CheckResult(
        "excessive_movement_detected",
        value <= t.max_movement,
        value,
        f"<= {t.max_movement:.2f}",
        "p95 distance of the head from its usual place (IODs)",
        ranges(flags, m.fps),
    )
