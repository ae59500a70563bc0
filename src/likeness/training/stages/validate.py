"""Stage 5: every check's verdict, in one report. The probe's duration and frame rate, the
consent statement, how often a face was found, and the upload checks (training/checks.py)
are all judged here, each whether or not another failed, so a person can fix everything in
one go. The report, with where each went wrong, is kept in ``checks.json`` for the replica's
verbose view (``training_checks``) and `likeness check`; ``failure`` turns its first failure
(in the order above, then Tavus's) into the training's error."""

from __future__ import annotations

import json
from typing import Any

from likeness.errors import TrainingFailure
from likeness.face.tracker import FaceTrack
from likeness.media.probe import MediaInfo
from likeness.media.speech import SAMPLE_RATE_HZ, is_speech, relative_features
from likeness.training import checks
from likeness.training.consent import WINDOW_S
from likeness.training.limits import Limits
from likeness.training.stage import Context, Progress, Stage
from likeness.training.workspace import Workspace

CONSENT = "consent_phrase_mismatch"
# The report's entries, in the order their failures take precedence.
# lips_sealed only ever warns (it never fails a training).
ORDER = (
    "video_duration",
    "video_fps",
    CONSENT,
    "face_not_detected",
    *checks.ORDER,
    checks.LIPS_SEALED,
)


def run(ctx: Context, _progress: Progress) -> None:
    work, limits = ctx.work, ctx.limits
    info, face_track = work.media_info(), work.face_track()
    report = [
        *checks.as_dicts(_probed(info, limits)),
        consent_entry(work.consent(), info),
        *checks.as_dicts([_face(face_track, info.fps, limits)]),
        *checks.as_dicts(checks.run(measure(work, info, face_track), limits.checks)),
        checks.sealed_lips(face_track),
    ]
    work.save_checks(report)


def failure(report: list[dict[str, Any]]) -> TrainingFailure | None:
    """The training's error for a report: Tavus's type of its first failure, with the whole
    report as the detail (what ``training_checks`` shows of a failed replica)."""
    failed = next((entry for entry in report if not entry["passed"]), None)
    if failed is None:
        return None
    return TrainingFailure(str(failed["check"]), json.dumps({"checks": report}))


def measure(work: Workspace, info: MediaInfo, face_track: FaceTrack) -> checks.Measures:
    stats = work.measures()
    features = relative_features(work.audio(SAMPLE_RATE_HZ), info.fps)
    return checks.Measures(
        track=face_track,
        fps=info.fps,
        luma=stats["luma"],
        change=stats["change"],
        face_frames=stats["face_frames"],
        face_counts=stats["face_counts"],
        hand_frames=stats["hand_frames"],
        hand_points=stats["hand_points"],
        speech=is_speech(features[:, 0], features[:, 1]),
        energy_db=features[:, 0],
    )


def consent_entry(report: dict[str, Any], info: MediaInfo) -> dict[str, Any]:
    """The consent report as a check: its score against the threshold, what was heard and
    where; or, when it was not asked for, why."""
    if not report.get("checked"):
        why = str(report.get("skipped", "not required"))
        return {
            **checks.as_dicts([checks.CheckResult(CONSENT, True, 0.0, "", f"skipped: {why}")])[0],
            "checked": False,
            "skipped": why,
        }
    source = str(report["source"])
    where = "the separate consent video" if source == "consent_video_url" else "the video"
    detail = f"share of the consent statement's words heard in order in the first 40 s of {where}"
    if report.get("error"):
        detail += f" ({report['error']})"
    end_s = round(min(WINDOW_S, info.duration_s), 2)
    listened = [] if source == "consent_video_url" else [(0.0, end_s)]
    result = checks.CheckResult(
        CONSENT,
        bool(report["passed"]),
        float(report["score"]),
        f">= {float(report['threshold']):.2f}",
        detail,
        listened,
    )
    return {
        **checks.as_dicts([result])[0],
        "checked": True,
        "score": report["score"],
        "heard": report["heard"],
        "source": source,
    }


def _probed(info: MediaInfo, limits: Limits) -> list[checks.CheckResult]:
    return [
        checks.CheckResult(
            "video_duration",  # (over the maximum ended the training in the probe)
            limits.min_duration_s <= info.duration_s <= limits.max_duration_s,
            info.duration_s,
            f"{limits.min_duration_s:.0f} to {limits.max_duration_s:.0f}",
            "duration (s)",
        ),
        checks.CheckResult(
            "video_fps",
            info.fps >= limits.min_fps,
            info.fps,
            f">= {limits.min_fps:.0f}",
            "frame rate (frames per second)",
        ),
    ]


def _face(face_track: FaceTrack, fps: float, limits: Limits) -> checks.CheckResult:
    """A face in too few frames: too small, turned away, covered or not there at all."""
    passed = face_track.face_share >= limits.min_face_share
    return checks.CheckResult(
        "face_not_detected",
        passed,
        face_track.face_share,
        f">= {limits.min_face_share:.2f}",
        "share of frames with a face found",
        checks.ranges(~face_track.present, fps)
        if face_track.face_share < limits.min_face_share
        else [],
    )


STAGE = Stage("validate", 60, run)
