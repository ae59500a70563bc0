"""Rendering speed per replica trained by benchmarks/train.py (the 53 s and 2-minute 720p clips,
and the phone-grade 1080p landscape, 1080x1920 portrait and 4K ones): render wall time and
CPU time (the render's process and its children) ÷ audio duration, encode included, for an
audio whose phones are recognised (Whisper's words, aligned) and again with the phones known
(a script's, from the voice: the render alone); peak RSS summed over the process tree; then
engine-only frames/s, the first real-time frame and the model's load time.

    .venv/bin/python benchmarks/train.py && .venv/bin/python benchmarks/render.py
    .venv/bin/python benchmarks/render.py --height 1080 30s_3840x2160   # LIKENESS_OUTPUT_HEIGHT

Each replica renders in its own process, so its peak RSS is its own. On a shared machine the
CPU figures are the ones to compare: wall time grows with everything else running.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import CLIPS, OUT, speech
from train import _tree_rss_kb


def _cpu_s() -> float:
    """CPU seconds of this process and the children it has waited for."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def render_one(bundle: Path, height: int | None) -> dict[str, float]:
    from likeness.engines.mouthbank import MouthbankEngine
    from likeness.providers import asr_whisper
    from likeness.providers.phones_whisper import WhisperPhones
    from likeness.rendering.frames import AudioFrame
    from likeness.rendering.offline import render_mp4
    from likeness.rendering.source import frames_for

    asr_whisper.warm()  # a worker loads Whisper once, on its first audio_url render
    t0 = time.perf_counter()
    model = MouthbankEngine().load(bundle, height)
    load_s = time.perf_counter() - t0
    audio, rate = speech()
    duration = len(audio) / rate

    cpu0, t0 = _cpu_s(), time.perf_counter()
    suffix = f"_{model.height}p" if height else ""
    render_mp4(
        model,
        AudioFrame(audio, rate),
        OUT / f"{bundle.parent.name}{suffix}_render.mp4",
        WhisperPhones(),
    )
    total_s, cpu_s = time.perf_counter() - t0, _cpu_s() - cpu0
    # the same render with the phones known (a script's, from the voice): the render alone
    cpu0, t0 = _cpu_s(), time.perf_counter()
    render_mp4(model, AudioFrame(audio, rate), OUT / f"{bundle.parent.name}_known.mp4", [])
    known_s, known_cpu_s = time.perf_counter() - t0, _cpu_s() - cpu0

    t0 = time.perf_counter()
    n = sum(1 for _ in frames_for(model, AudioFrame(audio, rate), WhisperPhones()))
    engine_s = time.perf_counter() - t0

    session = model.session()
    first = audio[: rate // 10]  # one 100 ms chunk, as a real-time client sends it
    t0 = time.perf_counter()
    session.push_audio(first, rate)
    frames = session.pull()
    while not frames:
        session.push_audio(audio[len(first) : len(first) + rate // 10], rate)
        frames = session.pull()
    first_frame_ms = (time.perf_counter() - t0) * 1000
    return {
        "audio_s": duration,
        "render_s": total_s,
        "ratio": total_s / duration,
        "cpu_ratio": cpu_s / duration,
        "known_ratio": known_s / duration,
        "known_cpu_ratio": known_cpu_s / duration,
        "engine_fps": n / engine_s,
        "load_s": load_s,
        "first_frame_ms": first_frame_ms,
        "width": model.width,
        "height": model.height,
    }


def measure(bundle: Path, height: int | None) -> dict[str, float]:
    """Render in a child process; its figures plus the process tree's peak RSS."""
    result = OUT / f"{bundle.parent.name}_render.json"
    command = [sys.executable, __file__, "--child", str(bundle), str(height or 0), str(result)]
    child = subprocess.Popen(command)
    peak_kb = 0
    while True:
        pid, status, _usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        peak_kb = max(peak_kb, _tree_rss_kb(child.pid))
        time.sleep(0.05)
    if status:
        sys.exit(f"{bundle}: rendering failed ({status})")
    r: dict[str, float] = json.loads(result.read_text())
    r["peak_rss_mb"] = peak_kb / 1024
    return r


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--child"]:  # one replica: bundle, height (0: its own), result file
        figures = render_one(Path(args[1]), int(args[2]) or None)
        Path(args[3]).write_text(json.dumps(figures))
        return
    height = None
    if args[:1] == ["--height"]:
        height, args = int(args[1]), args[2:]
    unknown = set(args) - set(CLIPS)
    if unknown:
        sys.exit(f"unknown replicas {sorted(unknown)}; known: {', '.join(CLIPS)}")
    print(
        f"{'replica':<14} {'size':>9} {'audio s':>8} {'render s':>9} {'÷ dur':>6} "
        f"{'cpu ÷ dur':>9} {'known: ÷ dur':>12} {'cpu ÷ dur':>9} {'peak RSS MB':>12} "
        f"{'engine fps':>11} {'1st frame ms':>13} {'load s':>7}"
    )
    for name in args or CLIPS:
        bundle = OUT / name / "bundle"
        if not bundle.exists():
            print(f"{name:<14} no bundle: run benchmarks/train.py {name} first")
            continue
        r = measure(bundle, height)
        size = f"{r['width']}x{r['height']}"
        print(
            f"{name:<14} {size:>9} {r['audio_s']:>8.1f} {r['render_s']:>9.2f} "
            f"{r['ratio']:>6.3f} {r['cpu_ratio']:>9.3f} {r['known_ratio']:>12.3f} "
            f"{r['known_cpu_ratio']:>9.3f} {r['peak_rss_mb']:>12.0f} "
            f"{r['engine_fps']:>11.0f} {r['first_frame_ms']:>13.1f} {r['load_s']:>7.2f}"
        )


if __name__ == "__main__":
    main()
