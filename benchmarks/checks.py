"""Upload-check speed: wall time of ``check_video`` (probe, tracking and every check; the
same code as `likeness check` and the training job) for the real clip and the 2-minute 720p
clip (target: under 30 s on 2 cores), without and with the spoken-consent check (neither clip
says the statement, so with it both fail consent after every check has run). CPU seconds
count this process and its children (the consent check's recogniser): the fairer figure on a
busy machine.

    .venv/bin/python benchmarks/checks.py
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import OUT, REAL, two_minute_720p


def main() -> None:
    from likeness.providers.asr_sphinx import SphinxAsr, SphinxPhones
    from likeness.training import pipeline
    from likeness.training.limits import Limits
    from likeness.training.workspace import Workspace

    print(f"{'clip':<22} {'consent':<9} {'video s':>8} {'check s':>8} {'CPU s':>6}  failing")
    for video in (REAL, two_minute_720p()):
        for policy in ("off", "required"):
            with tempfile.TemporaryDirectory(dir=OUT) as folder:
                job = pipeline.Job(
                    replica_id="rbench",
                    train_video_url="http://bench.invalid/video",
                    engine="mouthbank",
                    work_dir=Path(folder),
                    asr=SphinxAsr(),
                    phones=SphinxPhones(),
                    limits=Limits(consent_policy=policy),  # type: ignore[arg-type]
                    resolve_upload=lambda _u, v=video: v,
                )
                started, cpu = time.perf_counter(), _cpu_s()
                verdict = pipeline.check_video(job)
                took, cpu = time.perf_counter() - started, _cpu_s() - cpu
                info = Workspace(job.work_dir).media_info()
            failing = ", ".join(c["check"] for c in verdict.checks if not c["passed"]) or "none"
            times = f"{info.duration_s:>8.1f} {took:>8.1f} {cpu:>6.1f}"
            print(f"{video.name:<22} {policy:<9} {times}  {failing}")


def _cpu_s() -> float:
    """User and system CPU seconds of this process and its finished children."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    main()
