"""Spoken consent, with real recognition (PocketSphinx) of real synthetic speech (Piper)
prepended to a real clip."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from likeness.cli.main import app
from likeness.errors import TrainingFailure
from likeness.jobs.context import JobContext
from likeness.kit.db import transaction
from likeness.media.audio import read_audio, resample
from likeness.media.video import iter_frames, write_mp4
from likeness.providers.asr_sphinx import SphinxAsr
from likeness.providers.tts_piper import synthesize
from likeness.replica import service, tasks
from likeness.replica.schemas import CreateReplica
from likeness.runtime import Runtime
from likeness.training import consent, failures, pipeline
from likeness.training.limits import Limits

from .conftest import FIXTURES, live_children, local_job

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
        limits=Limits(min_duration_s=5.0, consent_policy="required"),
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
    report = _checks(caught.value)["consent_phrase_mismatch"]
    assert not report["passed"] and report["threshold"] == ">= 0.60"
    assert report["score"] < 0.3 and len(report["heard"].split()) > 10  # it heard speech
    assert report["source"] == "train_video_url" and report["ranges_s"][0][0] == 0.0


def _checks(failure: TrainingFailure) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in json.loads(failure.detail)["checks"]}


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


def test_no_face_and_no_statement_reports_both(tmp_path: Path) -> None:
    """Tavus's message is the first failure's (consent); the report lists every failure."""
    clip = tmp_path / "world.mp4"
    shutil.copyfile(FIXTURES / "world.mp4", clip)
    with pytest.raises(TrainingFailure) as caught:
        pipeline.run(_job(tmp_path, clip))
    assert caught.value.failure_type == "consent_phrase_mismatch"
    failed = [name for name, c in _checks(caught.value).items() if not c["passed"]]
    assert failed[:2] == ["consent_phrase_mismatch", "face_not_detected"], failed


def test_consent_is_heard_beside_the_tracking_and_its_child_ends(tmp_path: Path) -> None:
    """The recognition runs in a child process while the frames are tracked; the stages are
    still reported done in order, and the child is gone once the checks have answered."""
    seen_while_tracking: list[list[int]] = []
    done: list[str] = []
    job = _job(tmp_path, FIXTURES / "short_talk.mp4")  # says no statement
    job.on_progress = lambda _pct: seen_while_tracking.append(_recognisers())
    job.on_stage_done = lambda stage, _pct: done.append(stage)
    verdict = pipeline.check_video(job)
    assert seen_while_tracking and seen_while_tracking[0], "no recognition beside the tracking"
    assert done == ["download", "probe", "consent", "track", "validate"]
    assert verdict.failure is not None
    assert verdict.failure.failure_type == "consent_phrase_mismatch"
    assert not _recognisers(), "the child is ended once the checks have answered"


def test_a_tracking_that_stops_ends_the_recognition(tmp_path: Path) -> None:
    """A job that stops mid-tracking (its lease lost) leaves no recogniser running, and no
    consent report: a retry hears it again."""

    class Lost(Exception):
        pass

    def lose(_pct: int) -> None:
        assert _recognisers(), "the recognition runs beside the tracking"
        raise Lost

    done: list[str] = []
    job = _job(tmp_path, FIXTURES / "short_talk.mp4")
    job.on_progress = lose
    job.on_stage_done = lambda stage, _pct: done.append(stage)
    with pytest.raises(Lost):
        pipeline.check_video(job)
    assert not _recognisers(), "the child is ended, not left running"
    assert done == ["download", "probe"] and not (job.work_dir / "consent.json").exists()


def _recognisers() -> list[int]:
    """This process's live word-recognition children."""
    return live_children(b"--words")


@pytest.mark.parametrize(
    ("policy", "replica_type", "skipped"),
    [
        ("required", None, None),
        ("required", "non_human", 'replica_type "non_human"'),
        ("off", None, "the consent policy is off"),
    ],
)
def test_the_verbose_view_shows_the_consent_report(
    runtime: Runtime,
    client: TestClient,
    policy: str,
    replica_type: str | None,
    skipped: str | None,
) -> None:
    """A faceless clip without the statement: the error is consent's (or, with consent not
    asked for, the face's); ``training_checks`` has consent's report, or why it was skipped,
    beside the missing face."""
    settings = runtime.settings.model_copy(update={"consent_policy": policy})
    body = CreateReplica(train_video_url="http://127.0.0.1:9/gone.mp4", replica_type=replica_type)
    with transaction(runtime.sessions) as session:
        row = service.create(session, settings, body, "replica")
        row.stage = "download"  # the video is already in place: no download
        replica_id = row.id
    work = runtime.storage.ensure_dir(service.work_key(replica_id))
    shutil.copyfile(FIXTURES / "world.mp4", work / "source.media")
    tasks.train(JobContext(runtime.sessions, runtime.storage, settings, runtime.queue), replica_id)

    wire = client.get(f"/v2/replicas/{replica_id}", params={"verbose": True}).json()
    assert wire["status"] == "error" and wire["replica_type"] == "user"
    checks = {c["check"]: c for c in wire["training_checks"]}
    assert not checks["face_not_detected"]["passed"]
    entry = checks["consent_phrase_mismatch"]
    if skipped is None:
        assert wire["error_message"] == failures.MESSAGES["consent_phrase_mismatch"]
        assert not entry["passed"] and entry["checked"]
        assert entry["score"] < 0.3 and entry["threshold"] == ">= 0.60"
        assert isinstance(entry["heard"], str) and entry["source"] == "train_video_url"
        assert entry["ranges_s"] == [[0.0, 30.03]]
    else:
        assert wire["error_message"] == failures.MESSAGES["face_not_detected"]
        assert entry["passed"] and not entry["checked"] and entry["skipped"] == skipped
        assert skipped in entry["detail"]


def test_cli_check_asks_for_consent_as_the_server_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LIKENESS_MIN_DURATION_S", "5")
    runner = CliRunner()
    clip = str(FIXTURES / "short_talk.mp4")  # passes every other check, says no statement
    refused = runner.invoke(app, ["check", clip])
    assert refused.exit_code == 1, refused.output
    assert "FAIL consent_phrase_mismatch" in refused.output and "heard: " in refused.output
    assert failures.MESSAGES["consent_phrase_mismatch"] in refused.output
    assert refused.output.count("FAIL") == 1, refused.output
    non_human = runner.invoke(app, ["check", clip, "--type", "non_human"])
    assert non_human.exit_code == 0, non_human.output
    assert 'skipped: replica_type "non_human"' in non_human.output
    monkeypatch.setenv("LIKENESS_CONSENT_POLICY", "off")
    off = runner.invoke(app, ["check", clip])
    assert off.exit_code == 0 and "skipped: the consent policy is off" in off.output


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


class _Recording(SphinxAsr):
    """The real recogniser, noting what the check asked it (the port at the edge)."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []
        self.heard: list[str] = []

    @contextlib.contextmanager
    def hearing(self, samples: np.ndarray, sample_rate_hz: int) -> Iterator[Callable[[], str]]:
        self.asked.append((len(samples), sample_rate_hz))
        with super().hearing(samples, sample_rate_hz) as heard:

            def noted() -> str:
                self.heard.append(heard())
                return self.heard[-1]

            yield noted


def test_the_check_hears_through_the_jobs_asr(tmp_path: Path) -> None:
    """The stage uses the recogniser its job was given (providers/base.py's Asr port), on the
    first 40 s at most."""
    asr = _Recording()
    job = _job(tmp_path, _clip(tmp_path, STATEMENT, "ok.mp4"))
    job.asr = asr
    verdict = pipeline.check_video(job)
    assert verdict.failure is None
    ((n_samples, rate),) = asr.asked
    assert rate == 16000 and 0 < n_samples <= consent.WINDOW_S * rate
    report = next(c for c in verdict.checks if c["check"] == "consent_phrase_mismatch")
    assert report["heard"] == asr.heard[0] and report["passed"]
