"""Training speed: wall time and CPU time ÷ video duration, peak RSS and bundle size, per clip.

    .venv/bin/python benchmarks/train.py [clip ...]    # all clips of _clips.CLIPS by default

Each clip trains in its own process; its peak RSS is the largest sum of the resident memory of
that process and all its children, sampled every 50 ms (what the machine must hold at once),
and its CPU time is user + system of the whole tree. The bundles are kept under
benchmarks/out/<clip>/ for benchmarks/render.py. The quality report runs beside the fit, so the
"fit" stage time covers both (and "report" shows ~0).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import CLIPS, OUT, clips

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def train_one(video: Path, work: Path) -> dict[str, float]:
    from likeness.media.probe import probe
    from likeness.providers.asr_sphinx import SphinxAsr, SphinxPhones
    from likeness.training import pipeline

    if work.exists():
        shutil.rmtree(work)
    stage_times: dict[str, float] = {}
    stage_cpu: dict[str, float] = {}
    last, last_cpu = time.perf_counter(), time.process_time()

    def done(stage: str, _pct: int) -> None:
        nonlocal last, last_cpu
        now, now_cpu = time.perf_counter(), time.process_time()
        stage_times[stage], stage_cpu[stage] = now - last, now_cpu - last_cpu
        last, last_cpu = now, now_cpu

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
        "bundle_mb": float(artifacts["bundle_bytes"]) / 1e6,  # type: ignore[arg-type]
        **{f"{k}_s": v for k, v in stage_times.items()},
        **{f"{k}_cpu": v for k, v in stage_cpu.items()},
    }


def _tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and all its descendants, in KiB (0 once it is gone)."""
    children: dict[int, list[int]] = {}
    resident: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
        resident[int(entry.name)] = pages * PAGE_KB
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += resident.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def measure(name: str, video: Path) -> dict[str, float]:
    """Train ``video`` in a child process; its figures plus the tree's peak RSS and CPU time."""
    OUT.mkdir(parents=True, exist_ok=True)
    result = OUT / f"{name}.json"
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", str(video), str(OUT / name), str(result)]
    )
    peak_kb = 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        peak_kb = max(peak_kb, _tree_rss_kb(child.pid))
        time.sleep(0.05)
    if status:
        sys.exit(f"{name}: training failed ({status})")
    r: dict[str, float] = json.loads(result.read_text())
    r["peak_rss_mb"] = peak_kb / 1024
    r["cpu_s"] = usage.ru_utime + usage.ru_stime  # the child's and every child it waited for
    return r


def main() -> None:
    if sys.argv[1:2] == ["--child"]:  # one clip: video, work folder, result file
        figures = train_one(Path(sys.argv[2]), Path(sys.argv[3]))
        Path(sys.argv[4]).write_text(json.dumps(figures))
        return
    unknown = set(sys.argv[1:]) - set(CLIPS)
    if unknown:
        sys.exit(f"unknown clips {sorted(unknown)}; known: {', '.join(CLIPS)}")
    rows = []
    for name, video in clips(sys.argv[1:]).items():
        rows.append((name, measure(name, video)))
    print(
        f"{'clip':<14} {'video s':>8} {'train s':>8} {'÷ dur':>6} {'cpu s':>7} {'cpu ÷ dur':>9} "
        f"{'peak RSS MB':>12} {'bundle MB':>10}   stages (s)"
    )
    for name, r in rows:
        stages = " ".join(
            f"{k[:-2]}={v:.1f}/{r.get(k[:-2] + '_cpu', 0.0):.1f}"
            for k, v in r.items()
            if k.endswith("_s") and k not in ("duration_s", "wall_s", "cpu_s")
        )
        print(
            f"{name:<14} {r['duration_s']:>8.1f} {r['wall_s']:>8.1f} {r['ratio']:>6.3f} "
            f"{r['cpu_s']:>7.1f} {r['cpu_s'] / r['duration_s']:>9.3f} "
            f"{r['peak_rss_mb']:>12.0f} {r['bundle_mb']:>10.1f}   {stages}"
        )


if __name__ == "__main__":
    main()
