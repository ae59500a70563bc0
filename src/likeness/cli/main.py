"""The ``likeness`` command: serve, worker, render, and replica helpers."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from likeness.cli.client import replica_app
from likeness.cli.quiet import quiet
from likeness.config import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(replica_app, name="replica")
VERBOSE = (
    "Show the libraries' own logs too (MediaPipe, TensorFlow Lite, protobuf, Celery's banner)."
)


# C for the HTTP parser and the event loop (both are dependencies): about a fifth less CPU a
# request than uvicorn's pure-Python h11 and asyncio's loop (benchmarks/api.py).
HTTP_PARSER, EVENT_LOOP = "httptools", "uvloop"
MEDIA_WORKER = [sys.executable, "-m", "likeness", "media-worker"]


def _settings() -> Settings:
    return Settings()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    embedded_worker: bool = typer.Option(True, help="Run a worker as a child process."),
    embedded_media_worker: bool = typer.Option(
        True, help="Serve live conversations in a child process."
    ),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE),
) -> None:
    """Run the API and (by default) an embedded worker on the embedded defaults."""
    settings = _settings()
    # One API process per core: a read costs ~2 ms of CPU under one GIL (ADR 0007, addendum).
    workers = settings.api_workers or len(os.sched_getaffinity(0))
    if workers > 1:  # the children's resource tracker lives as long as we do: started before
        # quiet() takes fd 2 over, it does not hold the filter's pipe open at our exit
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    quiet(verbose)
    import uvicorn

    from likeness.app import create_app
    from likeness.runtime import build_runtime, keep_temp_files_under
    from likeness.supervisor import EmbeddedWorker

    if "public_url" not in settings.model_fields_set:  # URLs we return point at this server
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        os.environ["LIKENESS_PUBLIC_URL"] = f"http://{shown}:{port}"  # the worker child too
        settings = _settings()
    key_file = settings.resolved_data_dir / "api_key"
    announce = settings.api_key is None and not key_file.exists()
    runtime = build_runtime(settings)
    keep_temp_files_under(runtime.settings.resolved_data_dir / "tmp")
    if announce:
        typer.echo(f"Generated an API key (kept in {key_file}); send it as x-api-key:")
        typer.echo(f"  {runtime.settings.api_key}")
    typer.echo(f"Data directory: {runtime.settings.resolved_data_dir}")
    worker = EmbeddedWorker() if embedded_worker else None
    # The API carries no media: conversations are served by a media worker child (restarted
    # if it dies, like the job worker); more run as `likeness media-worker` to scale out.
    media = EmbeddedWorker(MEDIA_WORKER, "media worker") if embedded_media_worker else None
    for child in (worker, media):
        if child is not None:
            child.start()
    # Each API process builds its own runtime (serving_app) from the environment set above;
    # the embedded worker and the key are made once, here.
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        log_level="info",
        access_log=bool(os.environ.get("LIKENESS_VERBOSE")),  # a line a request costs ~5 %
        http=HTTP_PARSER,
        loop=EVENT_LOOP,
    )
    try:
        if workers == 1:
            uvicorn.run(create_app(runtime=runtime), **options)
        else:
            uvicorn.run("likeness.app:serving_app", factory=True, workers=workers, **options)
    finally:
        for child in (media, worker):
            if child is not None:
                child.stop()
        runtime.close()


@app.command()
def worker(
    concurrency: int = typer.Option(0, help="Jobs at once (default: settings)."),
    loglevel: str = typer.Option("INFO"),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE),
) -> None:
    """Run a worker alone (scale out: many workers, one broker, one database)."""
    quiet(verbose)
    from likeness.runtime import build_runtime, keep_temp_files_under
    from likeness.worker import run_worker

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(name)s %(message)s")
    runtime = build_runtime(_settings())
    keep_temp_files_under(runtime.settings.resolved_data_dir / "tmp")
    concurrency = concurrency or runtime.settings.worker_concurrency
    run_worker(runtime, concurrency, loglevel, banner=bool(os.environ.get("LIKENESS_VERBOSE")))


@app.command("media-worker")
def media_worker(
    capacity: int = typer.Option(0, help="Conversations at once (default: settings)."),
    loglevel: str = typer.Option("INFO"),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE),
) -> None:
    """Serve live conversations (WebRTC, the Interactions WebSocket) in this process; the API
    finds it through the data directory (scale out: one per core)."""
    quiet(verbose)
    from likeness.media_worker import run_media_worker
    from likeness.runtime import build_runtime

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(name)s %(message)s")
    runtime = build_runtime(_settings())
    try:
        run_media_worker(runtime, capacity or runtime.settings.media_worker_capacity)
    finally:
        runtime.close()


@app.command()
def render(
    replica: str = typer.Option(..., "--replica", help="Replica id (trained, completed)."),
    audio: Path | None = typer.Option(None, "--audio", exists=True, dir_okay=False),
    text: str | None = typer.Option(None, "--text", help="Say this (offline Piper voice)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the MP4."),
    height: int | None = typer.Option(
        None,
        "--height",
        min=64,
        help="At most this many lines, as in 1080p (the shorter side). "
        "Default: LIKENESS_OUTPUT_HEIGHT, else the training video's size.",
    ),
) -> None:
    """Make a replica say an audio file or a text, as an H.264 + AAC MP4."""
    quiet(False)
    from likeness.engines.registry import get_engine
    from likeness.media.audio import read_audio
    from likeness.media.probe import Undecodable
    from likeness.providers.base import Phone, PhoneRecognizer
    from likeness.providers.phones_whisper import WhisperPhones
    from likeness.providers.script import speak
    from likeness.rendering.frames import AudioFrame
    from likeness.rendering.offline import render_mp4
    from likeness.replica import repository, service
    from likeness.runtime import build_runtime

    if (audio is None) == (text is None):
        raise typer.BadParameter("give exactly one of --audio or --text")
    runtime = build_runtime(_settings())
    with runtime.sessions() as session:
        row = repository.get_live(session, replica)
        if row is None:
            _fail(f"no replica {replica}")
        assert row is not None
        if row.status != "completed":
            _fail(f"replica {replica} is {row.status}, not completed")
        bundle = runtime.storage.path(f"{service.work_key(row.id)}/{row.artifacts['bundle']}")
        engine_name = row.engine
    started = time.perf_counter()
    phones: list[Phone] | PhoneRecognizer = WhisperPhones()  # heard while rendering
    if audio is not None:
        try:
            samples, rate = read_audio(audio)
        except Undecodable as exc:
            _fail(f"cannot read audio from {audio}: {exc}")
    else:
        assert text is not None
        samples, rate, phones = speak(text)
    if samples.size == 0:
        _fail("the audio is empty")
    model = get_engine(engine_name).load(bundle, height or runtime.settings.output_height)
    frames = render_mp4(model, AudioFrame(samples, rate), output, phones)
    seconds = len(samples) / rate
    took = time.perf_counter() - started
    typer.echo(
        f"wrote {output}: {frames} frames, {seconds:.2f} s of audio, "
        f"{model.width}x{model.height} @ {model.fps:g} fps in {took:.1f} s"
    )


@app.command()
def check(
    video: Path = typer.Argument(..., exists=True, dir_okay=False),
    replica_type: str = typer.Option(
        "user", "--type", help='"non_human" asks for no spoken consent, as on the server.'
    ),
    consent_video: Path | None = typer.Option(
        None, "--consent-video", exists=True, dir_okay=False, help="A separate consent clip."
    ),
) -> None:
    """Run the server's checks on a local video (no server needed) and print a report: every
    check, spoken consent included under the same settings (LIKENESS_CONSENT_POLICY)."""
    quiet(False)
    import tempfile

    from likeness.errors import TrainingFailure
    from likeness.providers.asr_sphinx import SphinxAsr, SphinxPhones
    from likeness.replica.tasks import limits_from
    from likeness.runtime import owner_only
    from likeness.training import failures, pipeline
    from likeness.training.workspace import Workspace

    if replica_type not in ("user", "non_human"):
        raise typer.BadParameter('use "user" or "non_human"', param_hint="--type")
    settings = _settings()
    owner_only(settings.resolved_data_dir)  # the clip's frames are spooled in it
    scratch = settings.resolved_data_dir / "tmp"
    scratch.mkdir(exist_ok=True)
    local = {"file:video": video, "file:consent": consent_video}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        job = pipeline.Job(
            replica_id="check",
            train_video_url="file:video",
            engine="",  # nothing is fitted
            work_dir=Path(folder),
            asr=SphinxAsr(),
            phones=SphinxPhones(),
            limits=limits_from(settings),
            non_human=replica_type == "non_human",
            consent_video_url="file:consent" if consent_video else None,
            resolve_upload=local.get,
        )
        try:
            verdict = pipeline.check_video(job)
        except TrainingFailure as failure:
            typer.echo(f"FAIL {failures.public_type(failure.failure_type)}: {failure.detail}")
            typer.echo(f"     {failures.message_for(failure.failure_type)}")
            raise typer.Exit(1) from failure
        info = Workspace(job.work_dir).media_info()
    took = time.perf_counter() - started
    typer.echo(
        f"{video.name}: {info.duration_s:.1f} s, {info.width}x{info.height} "
        f"@ {info.fps:.2f} fps, checked in {took:.1f} s"
    )
    for entry in verdict.checks:
        where = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in entry["ranges_s"][:5])
        mark = "ok  " if entry["passed"] else "FAIL"
        typer.echo(
            f"  {mark} {entry['check']:<28} {entry['value']:>8.3f}  "
            f"(want {entry['threshold'] or '-'})  {entry['detail']}"
            + (f"  at {where}" if where and not entry["passed"] else "")
        )
        if entry.get("checked"):  # the consent statement: what was heard
            typer.echo(f'       heard: "{entry["heard"]}"')
        if entry.get("warning"):
            typer.echo(f"       warning: {entry['warning']}")
    if verdict.failure is not None:
        typer.echo(f"error_message: {failures.message_for(verdict.failure.failure_type)}")
        raise typer.Exit(1)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
