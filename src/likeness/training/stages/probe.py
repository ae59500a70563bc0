"""Stage 2: is this a playable video with sound, and not too long? A file that is not ends
the training here; a short clip and a low frame rate are judged with the other checks (stage
5, validate), so that such a clip still hears about everything else."""

from __future__ import annotations

from likeness.errors import TrainingFailure
from likeness.media.probe import Undecodable, probe
from likeness.training.stage import Context, Progress, Stage


def run(ctx: Context, _progress: Progress) -> None:
    path = ctx.work.source
    if path.stat().st_size == 0:
        raise TrainingFailure("video_damaged", "the file is empty")
    try:
        info = probe(path)
    except Undecodable as exc:
        raise TrainingFailure("video_damaged", str(exc)) from exc
    if not info.has_video:
        raise TrainingFailure("video_damaged", "no video stream (audio-only file?)")
    if not info.has_audio:
        raise TrainingFailure("audio_processing", "the file has no audio stream")
    # Too long ends the training here, on the container's word, before anything is decoded;
    # a short clip is cheap to check further, a long one could hold the worker for hours.
    if info.duration_s > ctx.limits.max_duration_s:
        raise TrainingFailure(
            "video_duration",
            f"{info.duration_s:.1f} s > {ctx.limits.max_duration_s:.0f} s (too long)",
        )
    ctx.work.save_media_info(info)


STAGE = Stage("probe", 15, run)
