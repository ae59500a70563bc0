"""What a media file holds, read with PyAV (any container or codec ffmpeg decodes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av


class Undecodable(Exception):
    """The file is not media we can decode (damaged, truncated, or not media at all)."""


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    has_video: bool
    has_audio: bool
    fps: float
    width: int
    height: int
    video_codec: str | None
    audio_codec: str | None
    container: str


def output_size(width: int, height: int, short_side_px: int | None = None) -> tuple[int, int]:
    """(W, H) of what a replica trained on a ``width`` x ``height`` video (as shown, upright)
    stores and renders: the video's own size, or with ``short_side_px`` (the "1080" of 1080p:
    a portrait 1080p is 1080x1920) scaled down to it, never up, the aspect kept and both sides
    even (4:2:0 video needs them so). The one place training and rendering agree on it."""
    short = min(width, height)
    if short_side_px is None or short <= short_side_px:
        return width, height
    scale = short_side_px / short
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def probe(path: Path) -> MediaInfo:
    """Open the file and decode its first video frame to prove it is playable."""
    try:
        with av.open(str(path)) as container:
            videos = [
                s
                for s in container.streams.video
                if not (s.disposition & av.stream.Disposition.attached_pic)
            ]
            audios = list(container.streams.audio)
            video = videos[0] if videos else None
            duration_s = _duration(container, video)
            fps = float(video.average_rate or video.guessed_rate or 0) if video else 0.0
            turned = _first_frame(container, video) if video is not None else False
            width = video.codec_context.width if video else 0
            height = video.codec_context.height if video else 0
            if turned:
                width, height = height, width
            return MediaInfo(
                duration_s=duration_s,
                has_video=video is not None,
                has_audio=bool(audios),
                fps=fps,
                width=width,
                height=height,
                video_codec=video.codec_context.name if video else None,
                audio_codec=audios[0].codec_context.name if audios else None,
                container=container.format.name,
            )
    except (av.FFmpegError, ValueError, IndexError, ZeroDivisionError) as exc:
        raise Undecodable(f"{type(exc).__name__}: {exc}") from exc


def _duration(container: av.container.InputContainer, video: av.VideoStream | None) -> float:
    if video is not None and video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    if container.duration is not None:
        return float(container.duration / av.time_base)
    return 0.0


def _first_frame(container: av.container.InputContainer, video: av.VideoStream) -> bool:
    """Decode one frame; True when the video is shown turned a quarter (a phone's portrait)."""
    for frame in container.decode(video):
        return round(frame.rotation / 90) % 2 == 1
    raise Undecodable("no decodable video frame")
