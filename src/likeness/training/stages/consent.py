"""Stage 3: the spoken consent statement, heard with offline speech recognition in the first
40 s of the training video or in the separate consent video. Its verdict is given with the
other checks (stage 5, validate), so that a clip without it still hears about everything
else; a consent video that cannot be fetched ends the training here.

The recognition runs beside the next stage (the tracking): the port's ``hearing`` (PocketSphinx
in a child process, since it holds the GIL that the tracking's threads need; ADR 0008,
addendum)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import numpy as np

from likeness.media.audio import read_audio
from likeness.media.probe import Undecodable
from likeness.training.consent import WINDOW_S, judge
from likeness.training.stage import Context, Progress, Stage
from likeness.training.stages.download import fetch

SAMPLE_RATE_HZ = 16000  # what speech recognisers take (the ASR resamples anything else)


def run(ctx: Context, _progress: Progress) -> None:
    with beside(ctx):
        pass


@contextlib.contextmanager
def beside(ctx: Context) -> Iterator[None]:
    """Starts hearing the statement, lets the block run, then waits for the words and saves
    the report. A block that raises ends the recognition unheard."""
    report, audio = _listen(ctx)
    if audio is None:
        yield
    else:
        with ctx.asr.hearing(audio, SAMPLE_RATE_HZ) as heard:
            yield
            report.update(asdict(judge(heard(), ctx.limits.consent_min_score)))
    ctx.work.save_consent(report)


def _listen(ctx: Context) -> tuple[dict[str, Any], np.ndarray | None]:
    """The report so far and the (N,) float32 16 kHz audio to recognise; no audio when there
    is nothing to recognise (the report is then whole)."""
    if ctx.non_human:
        return {"checked": False, "skipped": 'replica_type "non_human"'}, None
    if ctx.limits.consent_policy != "required":
        return {"checked": False, "skipped": "the consent policy is off"}, None
    source, where = ctx.work.source, "train_video_url"
    if ctx.consent_video_url:
        source, where = ctx.work.consent_source, "consent_video_url"
        fetch(ctx, ctx.consent_video_url, source)
    report: dict[str, Any] = {"checked": True, "source": where}
    try:
        audio, _ = read_audio(source, SAMPLE_RATE_HZ, up_to_s=WINDOW_S)  # not the whole video
    except Undecodable as exc:
        result = judge("", ctx.limits.consent_min_score)
        return {**report, **asdict(result), "error": f"consent audio unreadable: {exc}"}, None
    return report, audio[: int(WINDOW_S * SAMPLE_RATE_HZ)]


STAGE = Stage("consent", 20, run, beside=beside)
