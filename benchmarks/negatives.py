"""Every clip in ../shared/data (plus a stacked two-face clip, a truncated file, a zero-byte
file and a text file named .mp4) through the training pipeline up to the upload checks:
the failure it ends in, Tavus's message, and the seconds from submission to that answer
(target: under 30 s). Consent is off here so that each clip shows its own first failure
(every check runs whichever fails first).

    .venv/bin/python benchmarks/negatives.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import OUT, REAL

from likeness.errors import TrainingFailure
from likeness.media.audio import read_audio
from likeness.media.video import iter_frames, write_mp4
from likeness.providers.asr_sphinx import SphinxAsr, SphinxPhones
from likeness.training import failures, pipeline

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def made(folder: Path) -> dict[str, Path]:
    """The negatives that are not files in shared/data, built from the real clip."""
    frames = list(iter_frames(REAL))[:1000]
    audio, rate = read_audio(REAL)
    two = folder / "two_faces.mp4"
    write_mp4(two, [np.hstack([f, f[:, ::-1]]) for f in frames], 25.0, audio[: 40 * rate], rate)
    data = REAL.read_bytes()
    out = {"stacked two faces": two}
    for name, content in (
        ("truncated", data[: len(data) // 2]),
        ("zero-byte", b""),
        ("text named .mp4", b"this is not a video\n" * 100),
    ):
        path = folder / f"{name.replace(' ', '_')}.mp4"
        path.write_bytes(content)
        out[name] = path
    return out


def first_answer(video: Path, work: Path) -> tuple[str, float]:
    """check_video, as the training job runs it before fitting: its first failure, and the
    seconds it took to answer."""
    job = pipeline.Job(
        replica_id="rneg",
        train_video_url="http://unused.invalid/clip.mp4",
        engine="mouthbank",
        work_dir=work,
        asr=SphinxAsr(),
        phones=SphinxPhones(),
        resolve_upload=lambda _u: video,
    )
    started = time.perf_counter()
    try:
        verdict = pipeline.check_video(job)
        failure = verdict.failure
        outcome = failure.failure_type if failure is not None else "passes every check"
    except TrainingFailure as exc:
        outcome = exc.failure_type
    return outcome, time.perf_counter() - started


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT) as folder:
        clips = {
            p.name: p for p in sorted(SHARED.glob("*")) if p.is_file() and p.name != "README.md"
        }
        clips.update(made(Path(folder)))
        print(f"{'clip':<28} {'seconds':>7}  outcome (Tavus type): message")
        for index, (name, path) in enumerate(clips.items()):
            outcome, took = first_answer(path, Path(folder) / f"work{index}")
            public = failures.public_type(outcome) if outcome in failures.MESSAGES else ""
            message = failures.MESSAGES.get(outcome, "")
            label = f"{outcome} ({public})" if public and public != outcome else outcome
            print(f"{name:<28} {took:>7.1f}  {label}: {message[:70]}")


if __name__ == "__main__":
    main()
