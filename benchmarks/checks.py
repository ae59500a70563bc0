"""Upload-check speed: wall time of probe + tracking + every check for the 2-minute 720p clip
(target: under 30 s on 2 cores).

    .venv/bin/python benchmarks/checks.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import OUT, REAL, two_minute_720p


def main() -> None:
    from likeness.training import checks, pipeline
    from likeness.training.stages import download, probe, track, validate

    limits = pipeline.Limits()
    print(f"{'clip':<22} {'video s':>8} {'check s':>8}  failing")
    for video in (REAL, two_minute_720p()):
        with tempfile.TemporaryDirectory(dir=OUT) as folder:
            work = Path(folder)
            shutil.copyfile(video, work / download.SOURCE)
            started = time.perf_counter()
            info = probe.run(work, limits)
            track.run(work, limits, lambda _f: None)
            results = checks.run(validate.measure(work), limits.checks)
            took = time.perf_counter() - started
        failing = ", ".join(r.check for r in results if not r.passed) or "none"
        print(f"{video.name:<22} {info.duration_s:>8.1f} {took:>8.1f}  {failing}")


if __name__ == "__main__":
    main()
