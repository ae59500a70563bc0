"""The ``video.render`` job: a replica says a script or an audio file; the MP4, an HLS
rendition and a still go to storage (``rendering.offline`` makes them); then the flat Tavus
callback. The user's inputs (script, audio_url, background_source_url) are fetched and
checked here, under the settings' limits; the render takes local files and arrays."""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np

from likeness.engines.base import ReplicaModel
from likeness.engines.registry import get_engine
from likeness.jobs.heartbeat import Heartbeat
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.media.audio import read_audio, stated_duration_s
from likeness.media.download import DownloadError, download
from likeness.media.probe import Undecodable
from likeness.media.video import iter_frames
from likeness.models import Replica, Video
from likeness.providers.asr_sphinx import Phone
from likeness.providers.script import speak
from likeness.providers.tts_piper import TooLong as SpeechTooLong
from likeness.providers.tts_piper import Unspeakable
from likeness.rendering.frames import AudioFrame
from likeness.rendering.offline import render_files
from likeness.replica import service as replicas
from likeness.replica.tasks import Deps
from likeness.upload import service as uploads
from likeness.video import repository, service
from likeness.webhooks.service import JOB as WEBHOOK_JOB

log = logging.getLogger(__name__)
RENDER_FROM_PCT = 5  # generation_progress when the first frame is drawn


class RenderFailure(Exception):
    """Bad input for this video (unreadable audio, too short, too long)."""


@lru_cache(maxsize=2)
def _model(engine: str, bundle: Path) -> ReplicaModel:
    return get_engine(engine).load(bundle)


def render(deps: Deps, video_id: str) -> None:
    settings = deps.settings
    assert settings.api_key
    lease = timedelta(seconds=settings.job_lease_s)
    with transaction(deps.sessions) as session:
        if not repository.acquire_lease(session, video_id, utcnow() + lease):
            return
        video = session.get(Video, video_id)
        replica = session.get(Replica, video.replica_id) if video else None
        assert video is not None
        event = None
        if replica is None or replica.deleted_at is not None or replica.status == "error":
            event = service.mark_failed(
                session,
                video,
                service.REPLICA_ERROR.format(video.replica_id),
                "the replica is in error or deleted",
                settings.public_url,
                settings.api_key,
            )
        elif replica.status != "completed":
            service.mark_waiting(video, replica)  # re-sent when the training ends
            return
        elif video.attempts > settings.job_max_attempts:
            event = service.mark_failed(
                session,
                video,
                service.FAILED,
                "gave up after repeated attempts",
                settings.public_url,
                settings.api_key,
            )
        else:
            service.mark_generating(video)
            bundle = deps.storage.path(
                f"{replicas.work_key(replica.id)}/{replica.artifacts['bundle']}"
            )
            engine, script, audio_url = replica.engine, video.script, video.audio_url
            background, transparent = video.background_source_url, video.transparent_background
    if event is not None or video.status == "error":
        _send(deps, event)
        return

    work = deps.storage.ensure_dir(service.work_key(video_id))
    try:
        with Heartbeat(
            lambda: _renew(deps, video_id), lease.total_seconds() / 4, f"lease-{video_id}"
        ):
            samples, rate, phones = _audio(deps, script, audio_url, work)
            model = _model(engine, bundle)
            render_files(
                model,
                AudioFrame(samples, rate),
                work,
                phones,
                transparent=transparent,
                background=_background(deps, background, work),
                on_frame=_Progress(deps, video_id),
            )
    except RenderFailure as exc:
        with transaction(deps.sessions) as session:
            row = repository.get_live(session, video_id)
            if row is not None:  # a deleted video is announced no more
                event = service.mark_failed(
                    session, row, service.FAILED, str(exc), settings.public_url, settings.api_key
                )
    except Exception:
        with transaction(deps.sessions) as session:
            row = repository.get_live(session, video_id)
            if row is not None:
                log.exception("video %s: unexpected error; it will be retried", video_id)
                row.lease_expires_at = None
        if row is not None:
            deps.queue.enqueue(service.RENDER_JOB, video_id, countdown=5)
    else:
        with transaction(deps.sessions) as session:
            row = repository.get_live(session, video_id)
            if row is not None:
                row.duration_s = len(samples) / rate
                event = service.mark_ready(session, row, settings.public_url, settings.api_key)
    with deps.sessions() as session:
        hard_deleted = session.get(Video, video_id) is None
    if hard_deleted:  # deleted while it rendered: what it wrote after the delete goes too
        deps.storage.delete_tree(service.work_key(video_id))
    _send(deps, event)


def recover_stale(deps: Deps) -> list[str]:
    now = utcnow()
    with transaction(deps.sessions) as session:
        rows = repository.stale(session, now)
        for row in rows:
            row.lease_expires_at = None
        found = [row.id for row in rows]
    for video_id in found:
        deps.queue.enqueue(service.RENDER_JOB, video_id)
    return found


def _audio(
    deps: Deps, script: str | None, audio_url: str | None, work: Path
) -> tuple[np.ndarray, int, list[Phone] | None]:
    """The speech, its rate, and its phones when the script gives them (else None: the render
    recognises them while it renders). Neither the voice nor the decoder ever makes more than
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


def _fetch(deps: Deps, url: str, path: Path, field: str) -> None:
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


def _background(deps: Deps, url: str | None, work: Path) -> Path | None:
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
    """generation_progress from RENDER_FROM_PCT to 95 as the frames come, written every 5."""

    def __init__(self, deps: Deps, video_id: str) -> None:
        self.deps, self.video_id = deps, video_id
        self.last_pct = RENDER_FROM_PCT

    def __call__(self, done: int, total: int) -> None:
        pct = min(95, RENDER_FROM_PCT + int((95 - RENDER_FROM_PCT) * done / total))
        if pct >= self.last_pct + 5:
            self.last_pct = pct
            _progress(self.deps, self.video_id, pct)


def _progress(deps: Deps, video_id: str, pct: int) -> None:
    with transaction(deps.sessions) as session:
        row = session.get(Video, video_id)
        if row is not None and row.status == "generating":
            row.generation_progress = pct


def _renew(deps: Deps, video_id: str) -> None:
    with transaction(deps.sessions) as session:
        row = session.get(Video, video_id)
        if row is not None and row.status == "generating":
            row.lease_expires_at = utcnow() + timedelta(seconds=deps.settings.job_lease_s)


def _send(deps: Deps, event_id: str | None) -> None:
    if event_id:
        deps.queue.enqueue(WEBHOOK_JOB, event_id)
