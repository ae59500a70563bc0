"""The offline render: a replica says a whole audio, into files under one folder.

    frames_for -> Still.tap -> [with_alpha | over_background] -> WebmAlphaFile | Mp4File (+HLS)
    then the still as a JPEG

The artifacts keep fixed names (the video API serves them by these names)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from likeness.engines.base import ReplicaModel
from likeness.media.video import aac_ready
from likeness.providers.base import Phone, PhoneRecognizer
from likeness.rendering.frames import AudioFrame, VideoFrame
from likeness.rendering.looks import over_background, with_alpha
from likeness.rendering.sinks import Mp4File, Sink, Still, WebmAlphaFile
from likeness.rendering.source import frames_for

VIDEO_FILE = "video.mp4"
WEBM_FILE = "video.webm"
STILL_FILE = "thumbnail.jpg"
HLS_DIR = "hls"
STILL_AT_S = 1.0  # the thumbnail shows this instant (or the last frame of a shorter render)


def frame_count(audio: AudioFrame, fps: float) -> int:
    """How many frames a render of ``audio`` has (at least one)."""
    return max(1, int(np.ceil(len(audio.samples) / audio.sample_rate_hz * fps)))


def render_files(
    model: ReplicaModel,
    audio: AudioFrame,
    out_dir: Path,
    phones: list[Phone] | PhoneRecognizer,
    *,
    transparent: bool = False,
    background: Path | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> Path:
    """Render into ``out_dir``: with ``transparent``, ``video.webm`` (VP9 + alpha); else
    ``video.mp4`` (the person over ``background``, a local video, if given) and its HLS
    rendition in ``hls/``; and ``thumbnail.jpg`` either way. Returns the video's path.

    ``phones``: the audio's, or a recogniser that finds them while rendering. ``on_frame(done,
    total)`` is called after each frame leaves the engine."""
    audio = AudioFrame(*aac_ready(audio.samples, audio.sample_rate_hz))
    still = Still(int(STILL_AT_S * model.fps))
    frames = still.tap(
        _counted(frames_for(model, audio, phones), frame_count(audio, model.fps), on_frame)
    )
    sink: Sink
    if transparent:
        frames = with_alpha(frames)
        sink = WebmAlphaFile(out_dir / WEBM_FILE, model.fps, audio)
    else:
        if background is not None:
            frames = over_background(frames, background)
        sink = Mp4File(out_dir / VIDEO_FILE, model.fps, audio, hls_dir=out_dir / HLS_DIR)
    sink.write(frames)
    still.save(out_dir / STILL_FILE)
    return out_dir / (WEBM_FILE if transparent else VIDEO_FILE)


def render_mp4(
    model: ReplicaModel, audio: AudioFrame, output: Path, phones: list[Phone] | PhoneRecognizer
) -> int:
    """Just the MP4, at ``output``; returns the number of video frames written."""
    audio = AudioFrame(*aac_ready(audio.samples, audio.sample_rate_hz))
    return Mp4File(output, model.fps, audio).write(frames_for(model, audio, phones))


def _counted(
    frames: Iterable[VideoFrame], total: int, on_frame: Callable[[int, int], None] | None
) -> Iterator[VideoFrame]:
    for done, frame in enumerate(frames, 1):
        if on_frame is not None:
            on_frame(done, total)
        yield frame
