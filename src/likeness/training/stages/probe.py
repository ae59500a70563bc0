"""Stage 2: is this a playable video with sound, not too long, and a picture whose frames
fit in memory? A file that is not ends the training here; a short clip and a low frame rate
are judged with the other checks (stage 5, validate), so that such a clip still hears about
everything else."""

from __future__ import annotations

from likeness.errors import TrainingFailure
from likeness.media.probe import MediaInfo, Undecodable, probe
from likeness.training.stage import Context, Progress, Stage

# What a training holds in memory, measured with benchmarks/train.py (peak RSS of the whole
# process tree, 2026-12-02): 1.59 GB for 60 s at 1920x1080, 1.78 GB for 30 s at 3840x2160. A
# part does not grow with the picture (MediaPipe's models, the per-frame arrays, the face
# cuts, the quality report's renders at 720 lines at most): 1.8 GiB leaves room for a 10-min
# video's arrays. The rest grows with it: the decoder's reference and threaded frames and the
# few frames in flight, ~30 bytes a pixel, counted here as twelve RGB frames. Neither part
# grows with the video's length beyond its arrays.
FIXED_BYTES = 1800 * 1024**2
FRAMES_HELD = 12


def memory_needed_bytes(info: MediaInfo) -> int:
    """About the most memory training this video holds at once."""
    return FIXED_BYTES + FRAMES_HELD * info.width * info.height * 3


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
    # So does a picture too large for the memory budget: decoding it would get the worker
    # killed (and every other job on the machine with it) rather than fail cleanly.
    needed = memory_needed_bytes(info)
    if needed > ctx.limits.max_memory_bytes:
        raise TrainingFailure(
            "video_resolution",
            f"{info.width}x{info.height} frames need about {needed / 2**30:.1f} GB to train, "
            f"over the {ctx.limits.max_memory_bytes / 2**30:.1f} GB allowed",
        )
    ctx.work.save_media_info(info)


STAGE = Stage("probe", 15, run)
