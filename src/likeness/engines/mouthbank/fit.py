"""Fit a mouthbank bundle from one training video (see README.md for the method).

Bundle files:
    manifest.json   engine, geometry, fps, what was fitted and how
    arrays.npz      base-loop transforms, bank features, mask, the audio→mouth maps
    bank.bin        the mouth-texture bank: JPEG crops in canonical (pose-normalised) space
    base.mp4        the base loop: real frames of the person, ping-ponged at render time
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import uniform_filter1d

from likeness.engines.base import HeldIn, TrainingInput
from likeness.face import align
from likeness.face import landmarks as lm
from likeness.media import speech as F
from likeness.media.audio import resample
from likeness.media.video import frames_numbered, write_mp4

BUNDLE_VERSION = 1
MAX_BANK = 1500
EXTREMES = 10  # at least this many of the most closed and the most open frames join the bank
BASE_SECONDS = 6.0
MAX_YAW = 0.18
QUANTILES = np.linspace(0.0, 1.0, 41)
PCA_DIMS = 8
JPEG_QUALITY = 90
# Mouth crops keep the video's own resolution up to this inter-ocular distance (sharpness
# vs bundle size and memory: 160 px keeps a 1080p face sharp in ~0.4 GB for 1,500 crops).
MAX_CANONICAL_IOD_PX = 160.0


@dataclass(frozen=True)
class _Frames:
    """What the fit knows of the usable frames (``index``: their numbers, ascending), in the
    one canonical space every bundle made from this video shares."""

    index: np.ndarray  # (V,) frame numbers
    points: np.ndarray  # (T, 478, 2) smoothed landmarks, every frame
    unit_points: np.ndarray  # (V, 478, 2) landmarks in unit-IOD canonical space
    frame_to_canon: np.ndarray  # (V, 2, 3) frame pixels -> canonical crop pixels
    box: tuple[float, float, float, float]
    scale: float
    size: tuple[int, int]
    mask: np.ndarray
    opening: np.ndarray  # (V,)
    width: np.ndarray  # (V,)
    gap: np.ndarray  # (V,) lm.lip_gap of the landmarks as measured (not smoothed)
    measured: np.ndarray  # (V,) landmarks measured, not interpolated


@dataclass(frozen=True)
class _Bank:
    """Canonical mouth crops of the sampled frames (rows into ``_Frames.index``)."""

    rows: np.ndarray
    blobs: list[bytes]
    thumbs: np.ndarray


def fit(
    data: TrainingInput,
    out_dir: Path,
    on_progress: Callable[[float], None] | None = None,
    held_in: HeldIn | None = None,
) -> dict[str, object]:
    progress = on_progress or (lambda _x: None)
    size = data.output_size or (data.track.width, data.track.height)
    frames = _frames(data, size)
    progress(0.1)
    bank = _bank(data, frames, progress)
    if held_in is not None:
        # The held-in bundle shares the canonical space and the decoded crops; its bank,
        # base loop and audio map come only from the frames (and audio) before the split.
        _write_bundle(held_in.out_dir, data, frames, bank, held_in.frames, held_in.size or size)
    progress(0.9)
    manifest = _write_bundle(out_dir, data, frames, bank, data.track.n_frames, size)
    progress(1.0)
    return manifest


def _frames(data: TrainingInput, output_size: tuple[int, int]) -> _Frames:
    """``output_size``: (W, H) of the replica's frames; the mouth crops need no more detail
    than a face of that size shows."""
    track = data.track
    shrink = min(1.0, output_size[0] / track.width, output_size[1] / track.height)
    points = align.smooth_track(track.landmarks, track.present, sigma=1.0)
    valid = track.present.copy()
    valid[valid] &= np.abs(lm.yaw_proxy(points[valid])) < MAX_YAW
    if valid.sum() < 10:
        valid = track.present.copy()
    index = np.flatnonzero(valid)

    # 1. Pose normalisation: every frame onto one canonical template (unit IOD, eyes level).
    to_ref = _procrustes(points[index][:, lm.STABLE])
    mean_shape = align.apply(to_ref, points[index]).mean(axis=0)
    unit = align.similarity(
        mean_shape[[lm.RIGHT_EYE_OUTER, lm.LEFT_EYE_OUTER]], np.array([[-0.5, 0.0], [0.5, 0.0]])
    )
    frame_to_unit = _compose(unit, to_ref)  # (V, 2, 3)
    unit_points = align.apply(frame_to_unit, points[index])  # (V, 478, 2)
    iod = float(np.median(lm.inter_ocular(points[index]))) * shrink
    scale = float(np.clip(iod, 40.0, MAX_CANONICAL_IOD_PX))
    box = _crop_box(unit_points)
    to_px = np.array([[scale, 0, -box[0] * scale], [0, scale, -box[1] * scale]], np.float32)
    size = (int(np.ceil((box[2] - box[0]) * scale)), int(np.ceil((box[3] - box[1]) * scale)))

    # 2. Mouth measures per frame. The mouth's statistics and the bank come from frames
    #    whose landmarks were measured, not interpolated.
    measured = track.measured[index]
    return _Frames(
        index=index,
        points=points,
        unit_points=unit_points,
        frame_to_canon=_compose(to_px, frame_to_unit),
        box=box,
        scale=scale,
        size=size,
        mask=_mask(unit_points, box, scale, size),
        opening=lm.mouth_opening(points[index]).astype(np.float32),
        width=lm.mouth_width(points[index]).astype(np.float32),
        # Unsmoothed: smoothing over time would lift a one-frame seal off the lips.
        gap=lm.lip_gap(track.landmarks[index]).astype(np.float32),
        measured=measured if measured.any() else np.ones_like(measured),
    )


def _bank(data: TrainingInput, f: _Frames, progress: Callable[[float], None]) -> _Bank:
    """3. The mouth bank's candidates: canonical lower-face crops of up to MAX_BANK measured
    frames, decoded in one pass."""
    candidates = np.flatnonzero(f.measured)
    stride = max(1, int(np.ceil(len(candidates) / MAX_BANK)))
    rows = candidates[::stride]
    if stride > 1:  # the person's own extremes always: the most sealed, the widest open
        k = max(EXTREMES, len(candidates) // 50)
        rows = np.union1d(rows, candidates[np.argsort(f.gap[candidates])[:k]])
        rows = np.union1d(rows, candidates[np.argsort(f.opening[candidates])[-k:]])
    blobs, thumbs = _extract_bank(data, f.index[rows], f.frame_to_canon[rows], f.size, progress)
    return _Bank(rows, blobs, thumbs)


def _write_bundle(
    out_dir: Path,
    data: TrainingInput,
    f: _Frames,
    bank: _Bank,
    end_frame: int,
    size: tuple[int, int],
) -> dict[str, object]:
    """The bundle made from the frames before ``end_frame`` and the audio under them, its
    base loop ``size`` = (W, H) (the video's frames scaled to it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    track = data.track
    rows = int(np.searchsorted(f.index, end_frame))
    index, opening, width, measured = (
        f.index[:rows],
        f.opening[:rows],
        f.width[:rows],
        f.measured[:rows],
    )
    audio = data.audio[: int(end_frame / data.fps * data.sample_rate_hz)]
    talking = _talking(opening, data.fps)
    sampled = int(np.searchsorted(bank.rows, rows))  # the bank's rows are ascending
    bank_rows_all = bank.rows[:sampled]

    # Crops whose skin around the mouth departs from the person's usual look (a hand over
    # the chin, a tracking slip) are left out, and the base loop avoids them too.
    occlusion = _occlusion(bank.thumbs[:sampled], f.mask, f.unit_points, f.box, f.scale)
    clean = occlusion <= _occlusion_threshold(occlusion)

    # 4. Base loop: the calmest clean stretch with the mouth at rest (ideally the listening
    #    part), ping-ponged at render time.
    base_len = int(min(len(index), round(BASE_SECONDS * data.fps)))
    occlusion_all = np.interp(np.arange(len(index)), bank_rows_all, (~clean).astype(np.float64))
    base_start = _calmest_window(index, opening, f.points, base_len, occlusion_all)
    base_frames = index[base_start : base_start + base_len]
    sx, sy = size[0] / track.width, size[1] / track.height  # a resize's map of pixel centres
    to_size = np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2]], np.float32)
    base_to_frame = _compose(
        to_size, align.invert(f.frame_to_canon[base_start : base_start + base_len])
    )
    base = _frames_at(data.video_path, base_frames, size)
    # ultrafast: a third of veryfast's CPU time for a higher PSNR at this crf (1080p base
    # loop: 11 against 31 ms a frame, 55.0 against 50.3 dB), at about twice the bytes.
    write_mp4(out_dir / "base.mp4", base, data.fps, crf=16, preset="ultrafast")

    bank_rows = bank_rows_all[clean]
    bank_frames = index[bank_rows]
    kept = [blob for blob, ok in zip(bank.blobs[:sampled], clean, strict=True) if ok]
    offsets = np.cumsum([0] + [len(b) for b in kept]).astype(np.int64)
    (out_dir / "bank.bin").write_bytes(b"".join(kept))
    lips = align.apply(f.frame_to_canon[bank_rows], f.points[bank_frames][:, lm.LIPS])
    lips = (lips - lips.mean(axis=1, keepdims=True)).reshape(len(bank_rows), -1) / f.scale
    pca_mean, pca_basis = _pca(lips, PCA_DIMS)
    shape = (lips - pca_mean) @ pca_basis.T

    # 5. The person's audio→mouth maps (quantile matching; needs no audio-video sync).
    audio_map = _audio_map(
        audio, data.sample_rate_hz, data.fps, opening[measured], width[measured], talking[measured]
    )
    closed = float(np.quantile(opening[measured], 0.1))

    arrays: dict[str, Any] = dict(
        base_to_frame=base_to_frame,
        bank_offsets=offsets,
        bank_opening=opening[bank_rows],
        bank_width=width[bank_rows],
        bank_gap=f.gap[bank_rows],
        bank_shape=shape.astype(np.float32),
        bank_source_frame=bank_frames.astype(np.int64),
        mask=f.mask,
        **{k: np.asarray(v, np.float32) for k, v in audio_map.items() if k != "source"},
    )
    np.savez_compressed(out_dir / "arrays.npz", **arrays)
    manifest: dict[str, object] = {
        "engine": "mouthbank",
        "bundle_version": BUNDLE_VERSION,
        "fps": data.fps,
        "width": size[0],
        "height": size[1],
        "canonical_scale_px": f.scale,
        "crop_size": list(f.size),
        "frames_tracked": end_frame,
        "frames_with_face": int(track.present[:end_frame].sum()),
        "frames_measured": int(track.measured[:end_frame].sum()),
        "frames_used": len(index),
        "bank_size": len(bank_rows),
        "bank_rejected_occluded": int((~clean).sum()),
        "bank_sealed": int((f.gap[bank_rows] <= lm.SEALED_GAP).sum()),
        "base_loop_frames": [int(base_frames[0]), int(base_frames[-1])],
        "talking_share": float(talking.mean()),
        "closed_opening": closed,
        "audio_map": audio_map["source"],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """outer ∘ inner for (…, 2, 3) affine matrices."""
    lin = np.einsum("...ij,...jk->...ik", outer[..., :2], inner[..., :2])
    t = np.einsum("...ij,...j->...i", outer[..., :2], inner[..., 2]) + outer[..., 2]
    return np.concatenate([lin, t[..., None]], axis=-1).astype(np.float32)


def _procrustes(stable: np.ndarray, rounds: int = 3) -> np.ndarray:
    """stable: (V, K, 2) → (V, 2, 3) similarities onto their generalised Procrustes mean."""
    reference = stable[len(stable) // 2]
    for _ in range(rounds):
        matrices = align.similarity(stable, reference)
        reference = align.apply(matrices, stable).mean(axis=0)
    return align.similarity(stable, reference)


def _crop_box(unit_points: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in unit-IOD canonical coordinates around the lower face."""
    mean = unit_points.mean(axis=0)
    top = float(mean[lm.NOSE_BOTTOM, 1]) - 0.12
    oval = mean[lm.FACE_OVAL]
    lower = oval[oval[:, 1] > top]
    chin = float(np.quantile(unit_points[:, lm.CHIN, 1], 0.98))
    return (
        float(lower[:, 0].min()) - 0.05,
        top,
        float(lower[:, 0].max()) + 0.05,
        chin + 0.3,
    )


def _mask(
    unit_points: np.ndarray,
    box: tuple[float, float, float, float],
    scale: float,
    size: tuple[int, int],
) -> np.ndarray:
    """(Hc, Wc) float32 alpha: 1 over mouth, lips and chin, feathered to 0 on the cheeks."""
    mean = unit_points.mean(axis=0)
    top = float(mean[lm.NOSE_BOTTOM, 1]) + 0.02
    centre = mean[lm.LIPS].mean(axis=0)
    oval = mean[lm.FACE_OVAL]
    lower = oval[oval[:, 1] > top].copy()
    lower[:, 0] = centre[0] + (lower[:, 0] - centre[0]) * 0.78
    chin_drop = float(np.quantile(unit_points[:, lm.CHIN, 1], 0.98)) - float(mean[lm.CHIN, 1])
    below = lower[:, 1] > centre[1]
    lower[below, 1] += chin_drop + 0.08
    edge_x = lower[:, 0].min(), lower[:, 0].max()
    polygon = np.vstack([lower, [[edge_x[0], top], [edge_x[1], top]]])
    px = (polygon - np.array(box[:2])) * scale
    hull = cv2.convexHull(px.astype(np.float32)).astype(np.int32)
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA)
    feather = max(3, round(scale * 0.12))
    core = cv2.erode(mask, np.ones((feather, feather), np.uint8))
    soft = cv2.GaussianBlur(core.astype(np.float32) / 255.0, (0, 0), feather / 2.0)
    return soft.astype(np.float32)


def _talking(opening: np.ndarray, fps: float) -> np.ndarray:
    """Frames inside stretches where the mouth keeps moving (a second-long rolling std)."""
    window = max(3, round(fps))
    mean = uniform_filter1d(opening, window, mode="nearest")
    std = np.sqrt(np.maximum(uniform_filter1d(opening**2, window, mode="nearest") - mean**2, 0))
    noise = float(np.quantile(std, 0.1))
    talking = std > max(3.0 * noise, 0.01)
    return talking if talking.mean() > 0.05 else np.ones_like(talking)


def _calmest_window(
    index: np.ndarray,
    opening: np.ndarray,
    points: np.ndarray,
    length: int,
    occluded: np.ndarray,
) -> int:
    """Start (into ``index``) of the window with the least mouth opening and head motion,
    no occluded frame and no tracking gap."""
    if length >= len(index):
        return 0
    centre = points[index][:, lm.STABLE].mean(axis=1)
    iod = lm.inter_ocular(points[index])
    motion = np.r_[0.0, np.linalg.norm(np.diff(centre, axis=0), axis=1) / iod[1:]]
    zoom = np.r_[0.0, np.abs(np.diff(np.log(iod)))]
    gaps = np.r_[0, np.diff(index) > 1].astype(np.float64)
    best, best_cost = 0, np.inf
    for start in range(0, len(index) - length + 1, max(1, length // 12)):
        span = slice(start, start + length)
        size_range = float(np.log(iod[span]).max() - np.log(iod[span]).min())
        cost = (
            opening[span].mean()
            + 2.0 * (motion[span].mean() + zoom[span].mean())
            + size_range
            + 10.0 * gaps[span][1:].sum()
            + 5.0 * occluded[span].mean()
        )
        if cost < best_cost:
            best, best_cost = start, cost
    return best


def _pca(rows: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    mean = rows.mean(axis=0)
    _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
    return mean, vt[: min(dims, vt.shape[0])]


def _extract_bank(
    data: TrainingInput,
    frames: np.ndarray,
    transforms: np.ndarray,
    size: tuple[int, int],
    progress: Callable[[float], None],
) -> tuple[list[bytes], np.ndarray]:
    """A JPEG crop per wanted frame, plus (N, h, w) float32 grey quarter-size thumbnails of
    the same crops for the occlusion check: from the face cut while tracking where there is
    one for every wanted frame, else from one decoding pass."""
    wanted = {int(f): i for i, f in enumerate(frames)}
    blobs: list[bytes] = [b""] * len(frames)
    thumb_size = (max(8, size[0] // 4), max(8, size[1] // 4))
    thumbs = np.zeros((len(frames), thumb_size[1], thumb_size[0]), np.float32)
    last = int(frames[-1])
    for number, image, to_canon in _sources(data, wanted, transforms):
        row = wanted[number]
        crop = cv2.warpAffine(
            image, to_canon, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
        )
        ok, jpeg = cv2.imencode(".jpg", crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok
        blobs[row] = jpeg.tobytes()
        grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        thumbs[row] = cv2.resize(grey, thumb_size, interpolation=cv2.INTER_AREA)
        if row % 50 == 0:
            progress(0.1 + 0.7 * min(1.0, number / max(1, last)))
    return blobs, thumbs


def _sources(
    data: TrainingInput, wanted: dict[int, int], transforms: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(frame number, image, (2, 3) map from the image to the canonical crop) per wanted
    frame, ascending: the tracking's face cut (no decoding), or the decoded frame."""
    regions = data.regions
    if regions is not None:
        rows = np.searchsorted(regions.frames, list(wanted))
        rows = np.minimum(rows, len(regions.frames) - 1) if len(regions.frames) else rows
        if len(regions.frames) and np.array_equal(regions.frames[rows], list(wanted)):
            for number, row in zip(wanted, rows, strict=True):
                from_cut = align.invert(regions.to_cut(int(row)))
                yield (
                    number,
                    regions.image(int(row)),
                    _compose(transforms[wanted[number]], from_cut),
                )
            return
    for number, rgb in frames_numbered(data.video_path, wanted):
        yield number, rgb, transforms[wanted[number]]


def _occlusion(
    thumbs: np.ndarray,
    mask: np.ndarray,
    unit_points: np.ndarray,
    box: tuple[float, float, float, float],
    scale: float,
) -> np.ndarray:
    """(N,) how far each crop's skin around the mouth (lips excluded) departs from the
    median crop, in grey levels, after removing each crop's own brightness offset."""
    h, w = thumbs.shape[1:]
    weight = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)
    lips = (unit_points.mean(axis=0)[lm.LIPS] - np.array(box[:2])) * scale * (w / mask.shape[1])
    x0, y0 = lips.min(axis=0) - 0.15 * scale * (w / mask.shape[1])
    x1, y1 = lips.max(axis=0) + 0.15 * scale * (w / mask.shape[1])
    weight[max(0, int(y0)) : int(np.ceil(y1)), max(0, int(x0)) : int(np.ceil(x1))] = 0.0
    weight /= weight.sum() + 1e-6
    centred = thumbs - (thumbs * weight).sum(axis=(1, 2), keepdims=True)
    median = np.median(centred, axis=0)
    return np.asarray((np.abs(centred - median) * weight).sum(axis=(1, 2)), np.float64)


def _occlusion_threshold(scores: np.ndarray) -> float:
    """The cut between clean and occluded crops: three times the typical deviation of the
    cleanest fifth (at least 4 grey levels above it), never rejecting more than 60 %."""
    clean = float(np.quantile(scores, 0.2))
    return max(3.0 * clean, clean + 4.0, float(np.quantile(scores, 0.4)))


def _frames_at(video: Path, wanted: np.ndarray, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The frames numbered ``wanted`` (ascending) at ``size`` = (W, H), decoding no further
    than the last."""
    for _, rgb in frames_numbered(video, (int(f) for f in wanted)):
        if (rgb.shape[1], rgb.shape[0]) != size:
            # Area-averaging where it matters (halving or more); bilinear below that, where
            # it barely aliases and costs a fifth (1080p to 720p: ~1.6 against ~8 ms).
            halving = size[0] * 2 <= rgb.shape[1]
            method = cv2.INTER_AREA if halving else cv2.INTER_LINEAR
            rgb = cv2.resize(rgb, size, interpolation=method)
        yield rgb


def _audio_map(
    audio: np.ndarray,
    sample_rate_hz: int,
    fps: float,
    opening: np.ndarray,
    width: np.ndarray,
    talking: np.ndarray,
) -> dict[str, object]:
    """Quantile maps from this person's audio (loudness under peak, tilt) to their mouth
    (opening, width). Falls back to a generic loudness curve when the video holds too little
    speech to fit one."""
    feats = F.relative_features(resample(audio, sample_rate_hz, F.SAMPLE_RATE_HZ), fps)
    speech = F.is_speech(feats[:, 0], feats[:, 1])
    source = "fitted"
    if speech.sum() < max(25, 0.1 * len(speech)):
        rel_q = np.linspace(F.GATE_REL_DB, 0.0, len(QUANTILES))
        tilt_q = np.linspace(-25.0, 5.0, len(QUANTILES))
        source = "default (too little speech in the training audio)"
    else:
        rel_q = np.quantile(feats[speech, 1], QUANTILES)
        tilt_q = np.quantile(feats[speech, 2], QUANTILES)
    open_q = np.quantile(opening[talking], QUANTILES)
    width_q = np.quantile(width[talking], QUANTILES)
    return {
        "source": source,
        "rel_q": _strictly_increasing(rel_q),
        "tilt_q": _strictly_increasing(tilt_q),
        "open_q": open_q,
        "width_q": width_q,
        "closed_opening": np.array([np.quantile(opening, 0.1)]),
    }


def _strictly_increasing(values: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(values + np.arange(len(values)) * 1e-4)
