"""Rendering speed: render time ÷ audio duration (encode included), engine-only frames/s,
peak RSS, per replica trained by benchmarks/train.py.

    .venv/bin/python benchmarks/train.py && .venv/bin/python benchmarks/render.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import OUT, clips, speech


def render_one(bundle: Path) -> dict[str, float]:
    from likeness.engines.mouthbank import MouthbankEngine
    from likeness.providers import asr_whisper
    from likeness.providers.phones_whisper import WhisperPhones
    from likeness.rendering.frames import AudioFrame
    from likeness.rendering.offline import render_mp4
    from likeness.rendering.source import frames_for

    asr_whisper.warm()  # a worker loads Whisper once, on its first audio_url render
    t0 = time.perf_counter()
    model = MouthbankEngine().load(bundle)
    load_s = time.perf_counter() - t0
    audio, rate = speech()
    duration = len(audio) / rate

    t0 = time.perf_counter()
    n = sum(1 for _ in frames_for(model, AudioFrame(audio, rate), WhisperPhones()))
    engine_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    render_mp4(
        model, AudioFrame(audio, rate), OUT / f"{bundle.parent.name}_render.mp4", WhisperPhones()
    )
    total_s = time.perf_counter() - t0

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
        "engine_fps": n / engine_s,
        "load_s": load_s,
        "first_frame_ms": first_frame_ms,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "width": model.width,
        "height": model.height,
    }


def main() -> None:
    if len(sys.argv) == 2:
        print(json.dumps(render_one(Path(sys.argv[1]))))
        return
    print(
        f"{'replica':<14} {'size':>9} {'audio s':>8} {'render s':>9} {'÷ dur':>6} "
        f"{'engine fps':>11} {'1st frame ms':>13} {'load s':>7} {'peak RSS MB':>12}"
    )
    for name in clips():
        bundle = OUT / name / "bundle"
        if not bundle.exists():
            sys.exit(f"no bundle at {bundle}: run benchmarks/train.py first")
        out = subprocess.run(
            [sys.executable, __file__, str(bundle)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        size = f"{r['width']}x{r['height']}"
        print(
            f"{name:<14} {size:>9} {r['audio_s']:>8.1f} {r['render_s']:>9.2f} "
            f"{r['ratio']:>6.3f} {r['engine_fps']:>11.0f} {r['first_frame_ms']:>13.1f} "
            f"{r['load_s']:>7.2f} {r['peak_rss_mb']:>12.0f}"
        )


if __name__ == "__main__":
    main()
