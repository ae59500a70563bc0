"""Stage 3: the spoken consent statement, heard with offline speech recognition in the first
40 s of the training video or in the separate consent video. Its verdict is given with the
other checks (stage 5, validate), so that a clip without it still hears about everything
else; a consent video that cannot be fetched ends the training here."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from likeness.media.audio import read_audio
from likeness.media.probe import Undecodable
from likeness.training.consent import WINDOW_S, judge
from likeness.training.stage import Context, Progress, Stage
from likeness.training.stages.download import fetch

SAMPLE_RATE_HZ = 16000  # what speech recognisers take (the ASR resamples anything else)


def run(ctx: Context, _progress: Progress) -> None:
    ctx.work.save_consent(hear(ctx))


def hear(ctx: Context) -> dict[str, Any]:
    if ctx.non_human:
        return {"checked": False, "skipped": 'replica_type "non_human"'}
    if ctx.limits.consent_policy != "required":
        return {"checked": False, "skipped": "the consent policy is off"}
    source, where = ctx.work.source, "train_video_url"
    if ctx.consent_video_url:
        source, where = ctx.work.consent_source, "consent_video_url"
        fetch(ctx, ctx.consent_video_url, source)
    report: dict[str, Any] = {"checked": True, "source": where}
    try:
        audio, _ = read_audio(source, SAMPLE_RATE_HZ, up_to_s=WINDOW_S)  # not the whole video
    except Undecodable as exc:
        result = judge("", ctx.limits.consent_min_score)
        return {**report, **asdict(result), "error": f"consent audio unreadable: {exc}"}
    heard = ctx.asr.recognise(audio[: int(WINDOW_S * SAMPLE_RATE_HZ)], SAMPLE_RATE_HZ)
    result = judge(heard, ctx.limits.consent_min_score)
    return {**report, **asdict(result)}


STAGE = Stage("consent", 20, run)
