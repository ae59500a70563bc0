"""Decode video frames and write H.264 + AAC MP4s with PyAV."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from likeness.kit.handoff import in_thread
from likeness.media.audio import resample
from likeness.media.picture import Picture
from likeness.media.probe import Undecodable

SEEK_AFTER_FRAMES = 100  # nearer the start, decoding from the first frame costs as little
ENCODE_QUEUE_FRAMES = 4  # frames made but not yet encoded (720p RGB: 2 MB each)
FULL_RANGE = 2  # AVCOL_RANGE_JPEG: 0-255 luma, as MJPEG and some phones write
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# What renders write: the AAC rates from 16 kHz up. AAC carries 8-12 kHz too, but some players
# (hardware decoders, older browsers) refuse such low rates.
PLAYER_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
# cv2.rotate's codes for np.rot90's k = 1, 2, 3 quarter turns counter-clockwise
TURNS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}
# A frame to encode: (H, W, 3) uint8 RGB ((H, W, 4) RGBA for VP9), or a picture in any form
Image = np.ndarray | Picture


def aac_ready(samples: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, int]:
    """The audio at a rate every player handles: unchanged if it already is, else resampled
    to 48 kHz."""
    if sample_rate_hz in PLAYER_RATES:
        return samples, sample_rate_hz
    return resample(samples, sample_rate_hz, 48000), 48000


def iter_frames(path: Path, max_side: int | None = None) -> Iterator[np.ndarray]:
    """Yield every frame as (H, W, 3) uint8 RGB, optionally scaled so max(H, W) <= max_side."""
    with _video(path) as (container, stream):
        width, height = stream.codec_context.width, stream.codec_context.height
        scale = 1.0
        if max_side and max(width, height) > max_side:
            scale = max_side / max(width, height)
        size = (_even(width * scale), _even(height * scale))
        for frame in container.decode(stream):
            if scale != 1.0:
                rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
            else:
                rgb = to_rgb(frame)
            yield upright(frame, rgb)


def iter_i420(path: Path, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Yield every frame as (H * 3 // 2, W) uint8 I420 planes (``media.picture``), scaled to
    ``size`` = (W, H), both even, if given. A limited-range yuv420p stream of even size, kept
    at its size and not turned, comes out as decoded, byte for byte (no conversion at all);
    anything else goes through RGB, as ``iter_frames`` would give it."""
    with _video(path) as (container, stream):
        for frame in container.decode(stream):
            as_is = (frame.width, frame.height)
            plain = frame.format.name == "yuv420p" and frame.color_range != FULL_RANGE
            if plain and not frame.rotation and as_is[0] % 2 == 0 and as_is[1] % 2 == 0:
                if size is None or size == as_is:
                    yield frame.to_ndarray()
                    continue
                yield frame.to_ndarray(
                    width=size[0],
                    height=size[1],
                    interpolation=av.video.reformatter.Interpolation.AREA,
                )
                continue
            rgb = upright(frame, to_rgb(frame))
            if size is not None and size != (rgb.shape[1], rgb.shape[0]):
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            yield np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), np.uint8)


@dataclass(frozen=True)
class Decoded:
    """One decoded frame, upright. ``small``: (h, w, 3) uint8 RGB, the whole picture at most
    ``iter_decoded``' short side (the trackers' copy); ``scale``: the picture's own pixels per
    pixel of ``small``; ``cut`` converts a region of the full-resolution picture only."""

    small: np.ndarray
    scale: float
    frame: av.VideoFrame

    def cut(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """(y1 - y0, x1 - x0, 3) uint8 RGB of the upright full-resolution picture inside
        ``box`` = (x0, y0, x1, y1), clipped to the picture. Only that region is converted from
        the decoder's YUV (a 4K frame whole costs ~5 ms)."""
        return cut_region(self.frame, box)


def cut_region(frame: av.VideoFrame, box: tuple[int, int, int, int]) -> np.ndarray:
    """(y1 - y0, x1 - x0, 3) uint8 RGB of ``frame``'s upright picture inside ``box`` =
    (x0, y0, x1, y1), clipped to the picture, converted from the decoder's YUV alone."""
    width, height = frame.width, frame.height
    turns = round(frame.rotation / 90) % 4
    shown_w, shown_h = (height, width) if turns % 2 else (width, height)
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(shown_w, box[2]), min(shown_h, box[3])
    # The box in the frame as stored: np.rot90(stored, turns) is what is shown.
    if turns == 0:
        rows, cols = (y0, y1), (x0, x1)
    elif turns == 1:
        rows, cols = (x0, x1), (width - y1, width - y0)
    elif turns == 2:
        rows, cols = (height - y1, height - y0), (width - x1, width - x0)
    else:
        rows, cols = (height - x1, height - x0), (y0, y1)
    stored = _region(frame, rows, cols)
    return cv2.rotate(stored, TURNS[turns]) if turns else stored


def iter_decoded(path: Path, short_side: int) -> Iterator[Decoded]:
    """Every frame as a ``Decoded`` whose small copy has at most ``short_side`` lines. The
    full-resolution frames stay in the decoder's own YUV, one at a time as the caller keeps
    them; a video no larger than ``short_side`` is converted as ``iter_frames`` does."""
    with _video(path) as (container, stream):
        width, height = stream.codec_context.width, stream.codec_context.height
        scale = max(1.0, min(width, height) / short_side)
        size = (_even(width / scale), _even(height / scale))
        for frame in container.decode(stream):
            if scale == 1.0:
                small = to_rgb(frame)
            elif _plain_420(frame):
                small = _shrunk(frame, size)
            else:
                small = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
            yield Decoded(upright(frame, small), frame.width / size[0], frame)


def _shrunk(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """A limited-range yuv420p frame at ``size`` = (W, H), even, as (H, W, 3) uint8 RGB: its
    planes area-averaged first, so only the small picture is converted (4K to 1080p: ~2 ms
    against ~5 ms to convert first; swscale's own scaler costs ~15 ms)."""
    planes = _planes(frame)
    half = (size[0] // 2, size[1] // 2)
    y, u, v = (
        cv2.resize(plane, size if i == 0 else half, interpolation=cv2.INTER_AREA)
        for i, plane in enumerate(planes)
    )
    stacked = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, size[0])
    return cv2.cvtColor(stacked, cv2.COLOR_YUV2RGB_I420)


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A yuv420p frame's Y (H, W), U and V (H / 2, W / 2) planes, read in place (no copy)."""
    out = []
    for i, plane in enumerate(frame.planes[:3]):
        h = frame.height if i == 0 else frame.height // 2
        w = frame.width if i == 0 else frame.width // 2
        data = memoryview(plane)  # a VideoPlane is a buffer
        out.append(np.frombuffer(data, np.uint8).reshape(-1, plane.line_size)[:h, :w])
    return out[0], out[1], out[2]


def _plain_420(frame: av.VideoFrame) -> bool:
    """Limited-range 4:2:0 of even size: what OpenCV's BT.601 conversion takes (``to_rgb``)."""
    return (
        frame.format.name == "yuv420p"
        and frame.color_range != FULL_RANGE
        and frame.width % 2 == 0
        and frame.height % 2 == 0
    )


def _region(frame: av.VideoFrame, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """(rows, cols) of the stored frame as RGB; limited-range yuv420p converts only them."""
    if _plain_420(frame):
        r0, r1 = rows[0] // 2 * 2, -(-rows[1] // 2) * 2  # whole chroma samples
        c0, c1 = cols[0] // 2 * 2, -(-cols[1] // 2) * 2
        y, u, v = _planes(frame)
        parts = (
            y[r0:r1, c0:c1],
            u[r0 // 2 : r1 // 2, c0 // 2 : c1 // 2],
            v[r0 // 2 : r1 // 2, c0 // 2 : c1 // 2],
        )
        stacked = np.concatenate([p.ravel() for p in parts]).reshape(-1, c1 - c0)
        rgb = cv2.cvtColor(stacked, cv2.COLOR_YUV2RGB_I420)
        return rgb[rows[0] - r0 : rows[1] - r0, cols[0] - c0 : cols[1] - c0]
    return to_rgb(frame)[rows[0] : rows[1], cols[0] : cols[1]]


def decoded_numbered(path: Path, wanted: Iterable[int]) -> Iterator[tuple[int, av.VideoFrame]]:
    """(number, decoded frame, as stored) for the wanted frame numbers only, in ascending
    order; the frame is valid until the next is asked for.

    Frame numbers count decoded frames from the start, as ``iter_frames`` does. Decoding
    starts at the keyframe before the first wanted frame (the numbers come from the packets'
    timestamps, read without decoding) and stops after the last; where the timestamps cannot
    number the frames, it starts from the first frame instead. Nothing is converted from the
    decoder's YUV here."""
    targets = sorted(set(wanted))
    if not targets:
        return
    wanted_set = set(targets)
    order = _presentation_order(path) if targets[0] >= SEEK_AFTER_FRAMES else None
    done = -1
    if order is not None and targets[0] < len(order):
        number_of = {pts: number for number, pts in enumerate(order)}
        with _video(path) as (container, stream):
            try:
                container.seek(order[targets[0]], stream=stream, backward=True)
            except av.FFmpegError:
                number_of = {}  # a container that cannot seek: decode from the start
            for frame in container.decode(stream):
                number = number_of.get(frame.pts) if frame.pts is not None else None
                if number is None or (done < 0 and number > targets[0]):
                    break  # timestamps that do not number the frames: decode from the start
                if number > done and number in wanted_set:
                    yield number, frame
                    done = number
                if number >= targets[-1]:
                    return
            else:
                return  # the video ended: the frames still wanted do not exist
    keep = {t for t in wanted_set if t > done}
    if not keep:
        return
    last = max(keep)
    with _video(path) as (container, stream):
        for number, frame in enumerate(container.decode(stream)):
            if number in keep:
                yield number, frame
            if number >= last:
                return


def frames_numbered(path: Path, wanted: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(number, (H, W, 3) uint8 RGB) for the wanted frame numbers only, in ascending order
    (``decoded_numbered``); frames not wanted are never converted."""
    for number, frame in decoded_numbered(path, wanted):
        yield number, upright(frame, to_rgb(frame))


def _presentation_order(path: Path) -> list[int] | None:
    """The video stream's packet timestamps, sorted: frame number -> pts. None when they
    cannot number the frames (missing or repeated timestamps). Packets an edit list marks
    for discarding give no frame, so they get no number."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stamps = [p.pts for p in container.demux(stream) if p.size and not p.is_discard]
    except av.FFmpegError:
        return None
    if not stamps or None in stamps or len(set(stamps)) != len(stamps):
        return None
    return sorted(s for s in stamps if s is not None)


@contextmanager
def _video(path: Path) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """The file's first video stream, decoded on threads; FFmpeg errors become Undecodable."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield container, stream
    except av.FFmpegError as exc:
        raise Undecodable(f"{type(exc).__name__}: {exc}") from exc


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB. Limited-range 4:2:0 (what cameras and encoders mostly write) goes
    through OpenCV's BT.601 conversion, the matrix swscale uses by default (720p, remeasured
    2026-12-01: 0.64-0.72 ms instead of 0.80-0.88 ms of wall time, for about the same CPU
    time, as OpenCV spreads it over both cores); anything else through swscale."""
    if (
        frame.format.name == "yuv420p"
        and frame.color_range != FULL_RANGE
        and frame.width % 2 == 0
        and frame.height % 2 == 0
    ):
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def upright(frame: av.VideoFrame, rgb: np.ndarray) -> np.ndarray:
    """The picture as it is meant to be shown: phones store portrait video sideways with a
    display matrix (``frame.rotation``, degrees counter-clockwise), which we apply.
    OpenCV's rotate, not a copy of NumPy's rotated view: 1080x1920 RGB in ~2 against 22 ms."""
    turns = round(frame.rotation / 90) % 4
    return cv2.rotate(rgb, TURNS[turns]) if turns else rgb


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def write_mp4(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate_hz: int = 16000,
    crf: int = 20,
    preset: str = "ultrafast",
) -> int:
    """Encode (H, W, 3) uint8 RGB frames as H.264 (yuv420p) plus the mono float32 ``audio`` as
    AAC. Returns the number of video frames written. The audio is written sample for sample,
    so the file's audio track is exactly the input's length.

    The defaults are for renders, where the encoder is most of the work: on a rendered 10 s
    720p clip, ultrafast at crf 20 costs 2.2 CPU-seconds for 45.9 dB PSNR (2.4 MB), superfast
    at crf 22 3.2 CPU-seconds for 46.3 dB (1.5 MB), both far past what an eye sees."""
    return write_mp4_at(path, enumerate(frames), fps, audio, sample_rate_hz, crf, preset)


def write_mp4_at(
    path: Path,
    frames: Iterable[tuple[int, Image]],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate_hz: int = 16000,
    crf: int = 20,
    preset: str = "ultrafast",
) -> int:
    """``write_mp4`` for (pts, image) pairs, pts counting frames of 1 / fps from the start:
    each frame is shown at its own time (a gap holds the frame before)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4") as container:
        vstream = container.add_stream("libx264", rate=rate)
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"crf": str(crf), "preset": preset}
        vstream.codec_context.thread_type = "FRAME"  # x264's frame threads: 15 % faster here
        astream = None
        if audio is not None:
            if sample_rate_hz not in AAC_RATES:
                raise ValueError(f"AAC cannot carry {sample_rate_hz} Hz")
            astream = container.add_stream("aac", rate=sample_rate_hz)
            astream.layout = "mono"
        count = _write_frames(container, vstream, frames, rate, "rgb24")
        if astream is not None and audio is not None:
            _write_audio(container, astream, audio, sample_rate_hz)
    return count


def _write_frames(
    container: av.container.OutputContainer,
    stream: av.VideoStream,
    frames: Iterable[tuple[int, Image]],
    rate: Fraction,
    pixel_format: str,
) -> int:
    """Encode and mux (pts in 1 / rate, image) pairs; the stream takes the first frame's size.

    The encoder works in a thread of its own, so whatever makes the frames (a renderer, a
    matte) runs in this thread at the same time (OpenCV and x264 let go of the GIL)."""

    def encode(timed: Iterator[tuple[int, Image]]) -> None:
        for pts, image in timed:
            frame = _video_frame(image, pixel_format)
            frame.pts = pts
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    count = 0
    with in_thread(encode, "encode", ENCODE_QUEUE_FRAMES) as to_encoder:
        for pts, image in frames:
            if count == 0:
                stream.width, stream.height = _size(image)
            to_encoder((pts, image))
            count += 1
    return count


def _size(image: Image) -> tuple[int, int]:
    """(W, H)"""
    if isinstance(image, Picture):
        return image.width, image.height
    return image.shape[1], image.shape[0]


def _video_frame(image: np.ndarray | Picture, pixel_format: str) -> av.VideoFrame:
    """An even-sized RGB picture goes to the encoder as yuv420p: planes as they are (a
    render's base frame with its mouth laid over: ``Picture.fill``), RGB converted by OpenCV
    (0.4 ms a 720p frame against swscale's 2 ms; the same BT.601 limited-range numbers within
    3 levels). Anything else (RGBA for VP9's alpha) goes through swscale."""
    picture = image if isinstance(image, Picture) else Picture.of_rgb(image)
    width, height = picture.width, picture.height
    if pixel_format == "rgb24" and height % 2 == 0 and width % 2 == 0:
        frame = av.VideoFrame(width, height, "yuv420p")
        picture.fill(frame)
        return frame
    return av.VideoFrame.from_ndarray(picture.rgb, format=pixel_format)


def _write_audio(
    container: av.container.OutputContainer,
    stream: av.AudioStream,
    audio: np.ndarray,
    sample_rate_hz: int,
    block: int = 1024,
) -> None:
    pcm = audio.astype(np.float32).reshape(1, -1)
    for start in range(0, pcm.shape[1], block):
        chunk = np.ascontiguousarray(pcm[:, start : start + block])
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = sample_rate_hz
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate_hz)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def loop_frames(path: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Endless (H, W, 3) uint8 RGB frames of ``path``, scaled to cover ``size`` = (W, H) and
    centre-cropped; the video starts over when it ends."""
    width, height = size
    while True:
        count = 0
        for rgb in iter_frames(path):
            count += 1
            scale = max(width / rgb.shape[1], height / rgb.shape[0])
            resized = cv2.resize(
                rgb,
                (max(width, round(rgb.shape[1] * scale)), max(height, round(rgb.shape[0] * scale))),
            )
            y0 = (resized.shape[0] - height) // 2
            x0 = (resized.shape[1] - width) // 2
            yield resized[y0 : y0 + height, x0 : x0 + width]
        if count == 0:
            raise Undecodable(f"{path.name} has no video frames")


def write_webm_alpha(
    path: Path,
    frames: Iterable[tuple[int, Image]],
    fps: float,
    audio: np.ndarray,
    sample_rate_hz: int,
) -> int:
    """Encode (pts, (H, W, 4) uint8 RGBA image) pairs, pts counting frames of 1 / fps, as VP9
    with alpha (yuva420p) plus Opus audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    pcm = resample(audio, sample_rate_hz, 48000)
    with av.open(str(path), mode="w", format="webm") as container:
        vstream = container.add_stream("libvpx-vp9", rate=rate)
        vstream.pix_fmt = "yuva420p"
        vstream.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "row-mt": "1",
            "crf": "32",
            "b": "0",
        }
        astream = container.add_stream("libopus", rate=48000)
        astream.layout = "mono"
        count = _write_frames(container, vstream, frames, rate, "rgba")
        _write_audio(container, astream, pcm, 48000, block=960)
    return count
