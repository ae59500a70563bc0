"""Training speed: wall time ÷ video duration, peak RSS and bundle size, per clip.

    .venv/bin/python benchmarks/train.py

Each clip trains in its own process (so peak RSS is that clip's alone); the bundles are kept
under benchmarks/out/<clip>/ for benchmarks/render.py. The quality report runs beside the fit,
so the "fit" stage time covers both (and "report" shows ~0).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import OUT, clips


def train_one(video: Path, work: Path) -> dict[str, float]:
    from likeness.media.probe import probe
    from likeness.providers.asr_sphinx import SphinxAsr, SphinxPhones
    from likeness.training import pipeline

    if work.exists():
        shutil.rmtree(work)
    stage_times: dict[str, float] = {}
    last = time.perf_counter()

    def done(stage: str, _pct: int) -> None:
        nonlocal last
        now = time.perf_counter()
        stage_times[stage] = now - last
        last = now

    job = pipeline.Job(
        replica_id="rbench",
        train_video_url="http://bench.invalid/video",
        engine="mouthbank",
        work_dir=work,
        asr=SphinxAsr(),
        phones=SphinxPhones(),
        resolve_upload=lambda _u: video,
        on_stage_done=done,
    )
    started = time.perf_counter()
    artifacts = pipeline.run(job)
    wall = time.perf_counter() - started
    duration = probe(video).duration_s
    return {
        "duration_s": duration,
        "wall_s": wall,
        "ratio": wall / duration,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "bundle_mb": float(artifacts["bundle_bytes"]) / 1e6,  # type: ignore[arg-type]
        **{f"{k}_s": v for k, v in stage_times.items()},
    }


def main() -> None:
    if len(sys.argv) == 3:  # child: one clip
        print(json.dumps(train_one(Path(sys.argv[1]), Path(sys.argv[2]))))
        return
    rows = []
    for name, video in clips().items():
        out = subprocess.run(
            [sys.executable, __file__, str(video), str(OUT / name)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append((name, json.loads(out.stdout.strip().splitlines()[-1])))
    print(
        f"{'clip':<14} {'video s':>8} {'train s':>8} {'÷ dur':>6} {'peak RSS MB':>12} "
        f"{'bundle MB':>10}   stages (s)"
    )
    for name, r in rows:
        stages = " ".join(
            f"{k[:-2]}={v:.1f}"
            for k, v in r.items()
            if k.endswith("_s") and k not in ("duration_s", "wall_s")
        )
        print(
            f"{name:<14} {r['duration_s']:>8.1f} {r['wall_s']:>8.1f} {r['ratio']:>6.3f} "
            f"{r['peak_rss_mb']:>12.0f} {r['bundle_mb']:>10.1f}   {stages}"
        )


if __name__ == "__main__":
    main()
