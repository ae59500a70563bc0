"""Face tracking with MediaPipe FaceMesh (478 points) through a video: on every frame, or on
a share of them spread evenly with the frames between interpolated.

The model ships inside the pinned ``mediapipe==0.10.14`` wheel and runs offline.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from likeness.face import landmarks as lm
from likeness.kit.handoff import in_thread
from likeness.media.video import Decoded

N_POINTS = 478
QUEUE_FRAMES = 8  # decoded frames waiting for FaceMesh (720p: 2 MB each)
LOOK_EVERY = 10  # frames between two looks of the (costly) detectors in ``track``
# Cuts of the face keep at most this inter-ocular distance (the mouthbank's canonical mouth
# crops keep 160 px at most), as JPEG of this quality.
REGION_IOD_PX = 200.0
REGION_JPEG_QUALITY = 95


@dataclass(frozen=True)
class FaceTrack:
    """landmarks: (T, 478, 2) float32 pixels, NaN where no face; present: (T,) bool;
    measured: (T,) bool, the frames FaceMesh looked at (the others' landmarks are interpolated
    between their measured neighbours, see ``track``)."""

    landmarks: np.ndarray
    present: np.ndarray
    width: int
    height: int
    measured: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.present.shape[0])

    @property
    def face_share(self) -> float:
        return float(self.present.mean()) if self.n_frames else 0.0


class FaceMeshTracker:
    """Video-mode FaceMesh: tracks between frames, re-detects when the face is lost."""

    def __init__(self, min_detection_confidence: float = 0.5) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp  # heavy import: only where tracking happens

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=0.5,
        )

    def __enter__(self) -> FaceMeshTracker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._mesh.close()

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """rgb: (H, W, 3) uint8 → (478, 2) float32 pixels, or None when no face is found."""
        points = self.landmarks_3d(rgb)
        return None if points is None else np.ascontiguousarray(points[:, :2])

    def landmarks_3d(self, rgb: np.ndarray) -> np.ndarray | None:
        """rgb: (H, W, 3) uint8 → (478, 3) float32 pixels (depth on the x scale, as FaceMesh
        gives it), or None when no face is found."""
        height, width = rgb.shape[:2]
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        points = np.array(
            [(m.x * width, m.y * height, m.z * width) for m in marks], dtype=np.float32
        )
        return points


@dataclass(frozen=True)
class FaceRegions:
    """The face of measured frames, cut from the full-resolution picture while tracking, so
    that nothing decodes the video a second time for it. frames: (R,) int64 ascending;
    origin: (R, 2) float32, each cut's top-left in the video's pixels; scale: (R,) float32,
    cut pixels per video pixel; offsets: (R + 1,) int64 into ``jpeg``, (B,) uint8, the cuts
    one after another."""

    frames: np.ndarray
    origin: np.ndarray
    scale: np.ndarray
    offsets: np.ndarray
    jpeg: np.ndarray

    def image(self, row: int) -> np.ndarray:
        """The cut of ``frames[row]``: (h, w, 3) uint8 RGB."""
        data = self.jpeg[int(self.offsets[row]) : int(self.offsets[row + 1])]
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError("a face cut is not a readable JPEG")
        rgb: np.ndarray = bgr[:, :, ::-1]
        return rgb

    def to_cut(self, row: int) -> np.ndarray:
        """(2, 3) float32 affine map from the video's pixels to the cut's."""
        s = float(self.scale[row])
        x, y = (float(v) for v in self.origin[row])
        shift = (s - 1) / 2  # a resize maps pixel centres: x' = s x + (s - 1) / 2
        return np.array([[s, 0.0, shift - s * x], [0.0, s, shift - s * y]], np.float32)


class RegionCutter:
    """Collects ``FaceRegions``: the lower face (eye line to below the chin, with margins a
    smoothed track's crop stays inside) of each frame shown, at most REGION_IOD_PX."""

    def __init__(self) -> None:
        self._frames: list[int] = []
        self._origin: list[tuple[float, float]] = []
        self._scale: list[float] = []
        self._jpeg: list[bytes] = []

    def __call__(self, index: int, points: np.ndarray, picture: Decoded) -> None:
        """points: (478, 2) landmarks in the video's pixels."""
        iod = float(lm.inter_ocular(points))
        eyes = points[[lm.RIGHT_EYE_OUTER, lm.LEFT_EYE_OUTER]]
        x0 = int(points[:, 0].min() - 0.3 * iod)
        x1 = int(np.ceil(points[:, 0].max() + 0.3 * iod))
        y0 = int(eyes[:, 1].min() - 0.3 * iod)
        y1 = int(np.ceil(points[:, 1].max() + 0.6 * iod))
        x0, y0 = max(0, x0), max(0, y0)
        cut = picture.cut((x0, y0, x1, y1))
        if cut.size == 0:
            return
        scale = min(1.0, REGION_IOD_PX / max(iod, 1.0))
        if scale < 1.0:
            width = cut.shape[1]
            size = (max(1, round(width * scale)), max(1, round(cut.shape[0] * scale)))
            # area-averaging for a large step down, bilinear (a fifth of the cost) otherwise
            method = cv2.INTER_AREA if scale <= 0.5 else cv2.INTER_LINEAR
            cut = cv2.resize(cut, size, interpolation=method)
            scale = size[0] / width  # (the height's rounding differs by under half a pixel)
        ok, jpeg = cv2.imencode(
            ".jpg", cut[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, REGION_JPEG_QUALITY]
        )
        if not ok:
            return
        self._frames.append(index)
        self._origin.append((float(x0), float(y0)))
        self._scale.append(scale)
        self._jpeg.append(jpeg.tobytes())

    def regions(self) -> FaceRegions:
        order = np.argsort(np.array(self._frames, np.int64), kind="stable")
        blobs = [self._jpeg[i] for i in order]
        return FaceRegions(
            frames=np.array(self._frames, np.int64)[order],
            origin=np.array(self._origin, np.float32).reshape(-1, 2)[order],
            scale=np.array(self._scale, np.float32)[order],
            offsets=np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64),
            jpeg=np.frombuffer(b"".join(blobs), np.uint8),
        )


def measured_frames(n_frames_hint: int, mesh_at_most: int | None) -> Callable[[int], bool]:
    """Which frame numbers ``track`` shows FaceMesh: all, or ``mesh_at_most`` spread evenly
    over ``n_frames_hint``."""
    step = max(1.0, n_frames_hint / mesh_at_most) if mesh_at_most else 1.0
    return lambda index: index == 0 or int(index / step) != int((index - 1) / step)


def track(
    frames: Iterable[np.ndarray],
    n_frames_hint: int,
    on_progress: Callable[[float], None] | None = None,
    observers: Sequence[Callable[[int, np.ndarray], None]] = (),
    looks: Sequence[Callable[[int, np.ndarray], None]] = (),
    mesh_at_most: int | None = None,
    on_measured: Callable[[int, np.ndarray | None], None] | None = None,
) -> FaceTrack:
    """Track a face through ``frames`` ((H, W, 3) uint8 RGB each), so that one decoding pass
    serves other measures too: ``observers`` (cheap, e.g. brightness) see every frame as
    (index, frame), ``looks`` (detectors, ~15-30 ms each) every LOOK_EVERY-th frame.

    FaceMesh runs on every frame, or on ``mesh_at_most`` frames spread evenly through the
    video (``n_frames_hint`` long); the frames between get landmarks interpolated from their
    measured neighbours. On a 2-min 720p talking head at 25 fps, FaceMesh on every second
    frame agrees with FaceMesh on every frame to 0.16 % of the inter-ocular distance, and the
    interpolated frames to 0.35 % (docs/decisions/0008-fewer-frames-measured.md).

    ``on_measured`` is called in FaceMesh's thread with (index, landmarks or None) for every
    frame it looked at, in order (``measured_frames`` says which those are).

    FaceMesh and the looks each run in a thread of their own while this one decodes and runs
    the observers (MediaPipe, OpenCV and PyAV let go of the GIL), so both cores are busy."""
    rows: list[np.ndarray] = []
    measured: list[bool] = []
    width = height = 0
    empty = np.full((N_POINTS, 2), np.nan, dtype=np.float32)
    is_measured = measured_frames(n_frames_hint, mesh_at_most)

    def mesh(images: Iterator[tuple[int, np.ndarray | None]]) -> None:
        with FaceMeshTracker() as tracker:
            for index, rgb in images:
                points = None if rgb is None else tracker.landmarks(rgb)
                rows.append(empty if points is None else points)
                if rgb is not None and on_measured is not None:
                    on_measured(index, points)

    def look(items: Iterator[tuple[int, np.ndarray]]) -> None:
        for index, rgb in items:
            for observe in looks:
                observe(index, rgb)

    with (
        in_thread(mesh, "facemesh", QUEUE_FRAMES) as to_mesh,
        in_thread(look, "looks", QUEUE_FRAMES) as to_look,
    ):
        for index, rgb in enumerate(frames):
            height, width = rgb.shape[:2]
            wanted = is_measured(index)
            measured.append(wanted)
            to_mesh((index, rgb if wanted else None))
            if looks and index % LOOK_EVERY == 0:
                to_look((index, rgb))
            for observe in observers:
                observe(index, rgb)
            if on_progress and n_frames_hint and index % 50 == 0:
                on_progress(min(1.0, index / n_frames_hint))
    landmarks = np.stack(rows) if rows else np.zeros((0, N_POINTS, 2), np.float32)
    seen = np.array(measured, bool)
    landmarks = fill_between(landmarks, seen)
    present = ~np.isnan(landmarks[:, 0, 0])
    return FaceTrack(landmarks, present, width, height, seen)


def fill_between(landmarks: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Landmarks of the frames not measured, linearly interpolated between the measured
    frames before and after; NaN (no face) unless both show a face. Frames after the last
    measured one keep its landmarks."""
    out = landmarks.copy()
    known = np.flatnonzero(measured)
    if len(known) == 0 or len(known) == len(measured):
        return out
    for before, after in itertools.pairwise(int(k) for k in known):
        if after - before < 2:
            continue
        weight = (np.arange(before + 1, after) - before) / (after - before)
        a, b = landmarks[before], landmarks[after]
        out[before + 1 : after] = a + weight[:, None, None].astype(np.float32) * (b - a)
    out[known[-1] + 1 :] = landmarks[known[-1]]
    return out


class FaceCounter:
    """How many faces MediaPipe's full-range face detector sees in each frame it is shown
    (one of ``track``'s looks: ~15 ms a frame)."""

    def __init__(self, min_confidence: float = 0.6) -> None:
        import mediapipe as mp

        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_confidence
        )
        self.frames: list[int] = []
        self.counts: list[int] = []

    def __call__(self, index: int, rgb: np.ndarray) -> None:
        result = self._detector.process(rgb)
        self.frames.append(index)
        self.counts.append(len(result.detections or []))

    def close(self) -> None:
        self._detector.close()
