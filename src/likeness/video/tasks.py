"""The ``video.render`` job: a replica says a script or an audio file; the MP4, an HLS
rendition and a still go to storage (``rendering.offline`` makes them); then the flat Tavus
callback. The user's inputs (script, audio_url, background_source_url) are fetched and
checked here, under the settings' limits; the render takes local files and arrays."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from likeness.engines.base import ReplicaModel
from likeness.engines.registry import get_engine
from likeness.jobs import lease, outbox
from likeness.jobs.context import JobContext
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.media.audio import read_audio, stated_duration_s
from likeness.media.download import DownloadError, download
from likeness.media.probe import Undecodable
from likeness.media.video import iter_frames
from likeness.models import Replica, Video
from likeness.models.replica import work_key
from likeness.providers.base import Phone
from likeness.providers.phones_whisper import WhisperPhones
from likeness.providers.script import speak
from likeness.providers.tts_piper import TooLong as SpeechTooLong
from likeness.providers.tts_piper import Unspeakable
from likeness.rendering.frames import AudioFrame
from likeness.rendering.offline import render_files
from likeness.upload import service as uploads
from likeness.video import repository, service
from likeness.webhooks.service import JOB as WEBHOOK_JOB

log = logging.getLogger(__name__)
RENDER_FROM_PCT = 5  # generation_progress when the first frame is drawn
RETRY_AFTER_S = 5.0  # after an unexpected error


RENDERING = lease.Kind(
    service.RENDER_JOB, Video, repository.unfinished, repository.waiting_for_training
)


class RenderFailure(Exception):
    """Bad input for this video (unreadable audio, too short, too long)."""


@lru_cache(maxsize=2)
def _model(engine: str, bundle: Path, height: int | None) -> ReplicaModel:
    return get_engine(engine).load(bundle, height)


def render(ctx: JobContext, video_id: str) -> None:
    settings = ctx.settings
    assert settings.api_key
    with transaction(ctx.sessions) as session:
        until = lease.acquire(session, RENDERING, video_id, ctx.lease_s)
        if until is None:
            return
        claim = lease.Claim(ctx.sessions, RENDERING, video_id, until, ctx.lease_s)
        video = session.get(Video, video_id)
        assert video is not None
        replica = repository.live_replica(session, video.replica_id)
        event, fail = None, None
        if replica is None or replica.status == "error":
            fail = (
                service.REPLICA_ERROR.format(video.replica_id),
                "the replica is in error or deleted",
            )
        elif replica.status != "completed":
            claim.finish(session)
            service.mark_waiting(video, replica)  # re-sent when the training ends
            return
        elif video.attempts > settings.job_max_attempts:
            last = video.last_error or "no reason recorded"
            fail = (
                service.FAILED,
                f"Rendering stopped: it was interrupted {video.attempts - 1} times. "
                f"The last run ended with: {last}.",
            )
        else:
            service.mark_generating(video)
            bundle = ctx.storage.path(f"{work_key(replica.id)}/{replica.artifacts['bundle']}")
            engine, script, audio_url = replica.engine, video.script, video.audio_url
            background, transparent = video.background_source_url, video.transparent_background
        if fail is not None:
            claim.finish(session)
            event = service.mark_failed(
                session, video, *fail, settings.public_url, settings.api_key
            )
    if fail is not None:
        _send(ctx, event)
        return

    work = ctx.storage.ensure_dir(service.work_key(video_id))
    try:
        with claim.kept_alive():
            samples, rate, phones = _audio(ctx, script, audio_url, work)
            model = _model(engine, bundle, settings.output_height)
            render_files(
                model,
                AudioFrame(samples, rate),
                work,
                # None: the words are heard and aligned to phones while the frames render
                WhisperPhones() if phones is None else phones,
                transparent=transparent,
                background=_background(ctx, background, work),
                on_frame=_Progress(claim),
            )
    except RenderFailure as exc:
        error = str(exc)
        event = _end(ctx, claim, lambda s, row: _failed(ctx, s, row, error))
    except Exception as exc:
        due = utcnow() + timedelta(seconds=RETRY_AFTER_S)
        # A deleted video's claim is gone (its files may have vanished under the job).
        if claim.retry_at(due, lease.summary(exc, settings.resolved_data_dir)):
            log.exception("video %s: unexpected error; it will be retried", video_id)
            ctx.queue.enqueue(service.RENDER_JOB, video_id, countdown=RETRY_AFTER_S)
    else:

        def ready(s: Session, row: Video) -> str | None:
            row.duration_s = len(samples) / rate
            assert settings.api_key
            return service.mark_ready(s, row, settings.public_url, settings.api_key)

        event = _end(ctx, claim, ready)
    with ctx.sessions() as session:
        hard_deleted = session.get(Video, video_id) is None
    if hard_deleted:  # deleted while it rendered: what it wrote after the delete goes too
        ctx.storage.delete_tree(service.work_key(video_id))
    _send(ctx, event)


def release_waiting(ctx: JobContext, session: Session, replica: Replica) -> list[tuple[str, str]]:
    """The worker wires this as ``replica.train``'s end hook: the replica's waiting videos go
    to render, or fail with Tavus's message if training failed. Returns the messages to send
    after commit."""
    settings = ctx.settings
    assert settings.api_key
    renders, events = service.after_replica(session, replica, settings.public_url, settings.api_key)
    # The callbacks owe their messages already (webhooks.record); the released renders now.
    released = outbox.add(session, *[(service.RENDER_JOB, v) for v in renders])
    return released + [(WEBHOOK_JOB, e) for e in events]


def _end(
    ctx: JobContext, claim: lease.Claim, mark: Callable[[Session, Video], str | None]
) -> str | None:
    """Write the final state if the claim still holds (else another run owns the row, or the
    video was deleted: a deleted video is announced no more)."""
    with transaction(ctx.sessions) as session:
        if not claim.finish(session):
            return None
        row = session.get(Video, claim.row_id)
        assert row is not None
        return mark(session, row)


def _failed(ctx: JobContext, session: Session, row: Video, error: str) -> str | None:
    settings = ctx.settings
    assert settings.api_key
    return service.mark_failed(
        session, row, service.FAILED, error, settings.public_url, settings.api_key
    )


def _audio(
    deps: JobContext, script: str | None, audio_url: str | None, work: Path
) -> tuple[np.ndarray, int, list[Phone] | None]:
    """The speech, its rate, and its phones when the script gives them (else None: they are
    recognised while the frames render). Neither the voice nor the decoder ever makes more than
    MAX_AUDIO_S of audio (and a second): the limits are checked before the work, not after."""
    phones = None
    if script:
        try:
            samples, rate, phones = speak(script, max_duration_s=service.MAX_AUDIO_S)
        except Unspeakable as exc:
            raise RenderFailure(f"the script has nothing the voice can say: {exc}") from exc
        except SpeechTooLong as exc:
            raise RenderFailure(_length_problem(f"more than {service.MAX_AUDIO_S:.0f}")) from exc
    else:
        assert audio_url
        source = work / "audio.input"
        try:
            _fetch(deps, audio_url, source, "audio_url")
            stated = stated_duration_s(source)
            if stated is not None and not _allowed(stated, script):
                raise RenderFailure(_length_problem(f"{stated:.1f}"))
            samples, rate = read_audio(source, up_to_s=service.MAX_AUDIO_S + 1.0, max_rate_hz=48000)
        except Undecodable as exc:
            raise RenderFailure(f"audio_url is not readable audio: {exc}") from exc
        finally:
            source.unlink(missing_ok=True)
    seconds = len(samples) / rate
    if not _allowed(seconds, script):
        shown = f"more than {service.MAX_AUDIO_S:.0f}" if seconds > service.MAX_AUDIO_S else ""
        raise RenderFailure(_length_problem(shown or f"{seconds:.1f}"))
    return samples, rate, phones


def _allowed(seconds: float, script: str | None) -> bool:
    shortest = 0.0 if script else service.MIN_AUDIO_S  # the 3 s floor is audio_url's (Tavus)
    return shortest <= seconds <= service.MAX_AUDIO_S


def _length_problem(seconds: str) -> str:
    return (
        f"the audio lasts {seconds} s; it must last between "
        f"{service.MIN_AUDIO_S:.0f} s and {service.MAX_AUDIO_S / 60:.0f} min"
    )


def _fetch(deps: JobContext, url: str, path: Path, field: str) -> None:
    """Download a user-supplied URL under the same limits as training videos; one of our own
    uploads is copied from storage, with no network fetch."""
    settings = deps.settings
    with deps.sessions() as session:
        local = uploads.local_path(session, deps.storage, settings.public_url, url)
    if local is not None:
        if not local.is_file():
            raise RenderFailure(f"the upload behind {field} is gone")
        if local.stat().st_size > settings.max_download_bytes:
            raise RenderFailure(f"{field} exceeds {settings.max_download_bytes} bytes")
        shutil.copyfile(local, path)
        return
    try:
        download(
            url,
            path,
            max_bytes=settings.max_download_bytes,
            timeout_s=settings.download_timeout_s,
            attempts=settings.download_attempts,
            allow_private=settings.allow_private_urls,
        )
    except DownloadError as exc:
        raise RenderFailure(f"could not download {field}: {exc}") from exc


def _background(deps: JobContext, url: str | None, work: Path) -> Path | None:
    if not url:
        return None
    path = work / "background.input"
    try:
        _fetch(deps, url, path, "background_source_url")
        next(iter_frames(path))
    except (Undecodable, StopIteration) as exc:
        raise RenderFailure("background_source_url is not a readable video") from exc
    return path


class _Progress:
    """generation_progress from RENDER_FROM_PCT to 95 as the frames come, written every 5
    (each write renews the lease)."""

    def __init__(self, claim: lease.Claim) -> None:
        self.claim = claim
        self.last_pct = RENDER_FROM_PCT

    def __call__(self, done: int, total: int) -> None:
        pct = min(95, RENDER_FROM_PCT + int((95 - RENDER_FROM_PCT) * done / total))
        if pct >= self.last_pct + 5:
            self.last_pct = pct
            self.claim.update(generation_progress=pct)


def _send(ctx: JobContext, event_id: str | None) -> None:
    if event_id:
        ctx.send((WEBHOOK_JOB, event_id))
