"""Spoken consent, with real recognition (PocketSphinx) of real synthetic speech (Piper)
prepended to a real clip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from likeness.errors import TrainingFailure
from likeness.media.audio import read_audio, resample
from likeness.media.video import iter_frames, write_mp4
from likeness.providers.tts_piper import synthesize
from likeness.training import consent, failures, pipeline

from .conftest import FIXTURES, local_job

STATEMENT = (
    "I, Maria Gonzalez, am currently speaking and consent Tavus to create an AI clone of me by "
    "using the audio and video samples I provide. I understand that this AI clone can be used "
    "to create videos that look and sound like me."
)
WRONG = (
    "Hello everyone. Today I would like to talk about the weather, my garden, and my favourite "
    "recipes for dinner with friends on a quiet Sunday evening."
)


def _clip(tmp_path: Path, lead: str | None, name: str) -> Path:
    """Piper saying ``lead``, then the fixture's own speech, over the fixture's frames."""
    audio, rate = read_audio(FIXTURES / "short_talk.mp4", 16000)
    if lead:
        spoken, spoken_rate = synthesize(lead)
        audio = np.concatenate([resample(spoken, spoken_rate, 16000), audio])
    frames = list(iter_frames(FIXTURES / "short_talk.mp4"))
    needed = int(np.ceil(len(audio) / rate * 25))
    looped = [frames[i % len(frames)] for i in range(needed)]
    path = tmp_path / name
    write_mp4(path, looped, 25.0, audio, rate, crf=28)
    return path


def _job(tmp_path: Path, clip: Path, consent_clip: Path | None = None) -> pipeline.Job:
    local = {"http://x.invalid/train.mp4": clip, "http://x.invalid/consent.mp4": consent_clip}
    return local_job(
        clip,
        tmp_path / "work",
        train_video_url="http://x.invalid/train.mp4",
        consent_required=True,
        consent_video_url="http://x.invalid/consent.mp4" if consent_clip else None,
        resolve_upload=lambda url: local.get(url),
    )


def test_the_statement_with_any_name_passes(tmp_path: Path) -> None:
    artifacts = pipeline.run(_job(tmp_path, _clip(tmp_path, STATEMENT, "ok.mp4")))
    report = artifacts["consent"]
    assert report["checked"] and report["passed"], report  # type: ignore[index]
    assert report["score"] >= 0.6  # type: ignore[index,operator]


def test_a_different_statement_fails_with_the_tavus_message(tmp_path: Path) -> None:
    with pytest.raises(TrainingFailure) as caught:
        pipeline.run(_job(tmp_path, _clip(tmp_path, WRONG, "wrong.mp4")))
    assert caught.value.failure_type == "consent_phrase_mismatch"
    assert failures.message_for("consent_phrase_mismatch").startswith(
        "There was an issue processing your training file: Your consent phrase does not match"
    )
    report = json.loads(caught.value.detail)["consent"]
    assert report["score"] < 0.3 and len(report["heard"].split()) > 10  # it heard speech


def test_no_statement_at_all_fails(tmp_path: Path) -> None:
    with pytest.raises(TrainingFailure) as caught:
        pipeline.run(_job(tmp_path, _clip(tmp_path, None, "plain.mp4")))
    assert caught.value.failure_type == "consent_phrase_mismatch"


def test_a_separate_consent_video_counts(tmp_path: Path) -> None:
    plain = tmp_path / "plain.mp4"
    shutil.copyfile(FIXTURES / "short_talk.mp4", plain)
    job = _job(tmp_path, plain, consent_clip=_clip(tmp_path, STATEMENT, "consent.mp4"))
    artifacts = pipeline.run(job)
    assert artifacts["consent"]["source"] == "consent_video_url"  # type: ignore[index]


@pytest.mark.parametrize(
    ("heard", "passes"),
    [
        (STATEMENT.lower(), True),
        (STATEMENT.lower().replace("tavus", "likeness"), True),
        (  # what PocketSphinx heard from Piper saying the statement, here
            "i read insults i'm currently speaking and consent habits to create an ai call "
            "money by using the on the open video samples like provide i understand that the "
            "say icon can be used to create videos that look and sound like me",
            True,
        ),
        ("i consent", False),
        ("", False),
    ],
)
def test_matching_tolerates_recognition_noise(heard: str, passes: bool) -> None:
    assert consent.judge(heard, 0.6).passed is passes
