"""/v2/videos: the wire contract and real renders through the video.render job."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from likeness.engines.mouthbank.session import MouthbankSession
from likeness.jobs.context import JobContext
from likeness.kit.db import transaction
from likeness.media.audio import read_audio, to_int16
from likeness.models import Video, WebhookEvent
from likeness.providers import asr_sphinx
from likeness.providers.base import Phone
from likeness.replica import service as replicas
from likeness.replica import tasks as replica_tasks
from likeness.runtime import Runtime
from likeness.video import service
from likeness.video import tasks as video_tasks

from .conftest import FIXTURES

LIBRIVOX_0870 = (  # its transcript (tests/fixtures/README.md)
    "and mister john dashwood had then leisure to consider how much there might be prudently "
    "in his power to do for them"
)
RFC1123 = re.compile(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")


def _deps(runtime: Runtime) -> JobContext:
    settings = runtime.settings.model_copy(update={"min_duration_s": 5.0})
    return JobContext(runtime.sessions, runtime.storage, settings, runtime.queue)


def _replica(client: TestClient, runtime: Runtime, train: bool = True) -> str:
    replica_id = client.post(
        "/v2/replicas", json={"train_video_url": "http://127.0.0.1:9/gone.mp4"}
    ).json()["replica_id"]
    if train:  # the URL is dead: the finished download stage is the fixture itself
        work = runtime.storage.ensure_dir(replicas.work_key(replica_id))
        shutil.copyfile(FIXTURES / "short_talk.mp4", work / "source.media")
        with transaction(runtime.sessions) as session:
            row = replicas.get(session, replica_id)
            row.stage = "download"
        replica_tasks.train(_deps(runtime), replica_id)
        assert client.get(f"/v2/replicas/{replica_id}").json()["status"] == "completed"
    return replica_id


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_create_validates_its_input(client: TestClient, runtime: Runtime) -> None:
    replica_id = _replica(client, runtime, train=False)
    bad = [
        {"script": "hello"},
        {"replica_id": "rnope", "script": "hello"},
        {"replica_id": replica_id},
        {"replica_id": replica_id, "script": "hi", "audio_url": "https://x/y.wav"},
        {"replica_id": replica_id, "audio_url": "not a url"},
        {"replica_id": replica_id, "script": "hi", "background_url": "https://example.com"},
        {
            "replica_id": replica_id,
            "script": "hi",
            "transparent_background": True,
            "background_source_url": "https://example.com/bg.mp4",
        },
    ]
    for payload in bad:
        response = client.post("/v2/videos", json=payload)
        assert response.status_code == 400, payload
        assert response.json()["error"] == response.json()["message"]


def test_wire_format_and_lifecycle(client: TestClient, runtime: Runtime) -> None:
    replica_id = _replica(client, runtime, train=False)
    created = client.post(
        "/v2/videos", json={"replica_id": replica_id, "script": "Hello.", "video_name": "Greeting"}
    )
    assert created.status_code == 200
    body = created.json()
    assert set(body) == {"video_id", "video_name", "status", "hosted_url", "created_at"}
    assert re.fullmatch(r"[0-9a-f]{10}", body["video_id"]) and body["status"] == "queued"
    assert RFC1123.match(body["created_at"])
    video_id = body["video_id"]
    one = client.get(f"/v2/videos/{video_id}").json()
    assert one["data"] == {"script": "Hello."} and one["download_url"] is None
    assert one["generation_progress"] == "0/100" and one["replica_id"] == replica_id
    assert (
        "still_image_thumbnail_url"
        in client.get(f"/v2/videos/{video_id}", params={"verbose": True}).json()
    )
    listed = client.get("/v2/videos").json()
    assert listed["total_count"] == 1 and listed["data"][0]["video_id"] == video_id
    assert client.patch(f"/v2/videos/{video_id}/name", json={"video_name": "Hi"}).status_code == 200
    assert client.get(f"/v2/videos/{video_id}").json()["video_name"] == "Hi"
    page = client.get(_path(body["hosted_url"]), headers={"x-api-key": ""})
    assert page.status_code == 200 and "queued" in page.text
    forged = _path(body["hosted_url"]).replace("/media/", "/media/0")
    assert client.get(forged, headers={"x-api-key": ""}).status_code == 401
    assert client.delete(f"/v2/videos/{video_id}").status_code == 200
    assert client.get(f"/v2/videos/{video_id}").status_code == 404


def test_script_renders_to_mp4_hls_and_a_callback(client: TestClient, runtime: Runtime) -> None:
    replica_id = _replica(client, runtime)
    video_id = client.post(
        "/v2/videos",
        json={
            "replica_id": replica_id,
            "callback_url": "http://127.0.0.1:9/hook",
            "script": "Hello there. I am a replica, and these words were never in my video.",
        },
    ).json()["video_id"]
    video_tasks.render(_deps(runtime), video_id)
    body = client.get(f"/v2/videos/{video_id}", params={"verbose": True}).json()
    assert body["status"] == "ready", body
    assert body["generation_progress"] == "100/100"
    assert body["status_details"] == "Your request has processed successfully!"
    mp4 = client.get(_path(body["download_url"]), headers={"x-api-key": ""})
    assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp"
    playlist = client.get(_path(body["stream_url"]), headers={"x-api-key": ""})
    assert playlist.status_code == 200 and "#EXTM3U" in playlist.text
    segment = playlist.text.strip().splitlines()[-2]
    base = _path(body["stream_url"]).rsplit("/", 1)[0]
    assert client.get(f"{base}/{segment}", headers={"x-api-key": ""}).status_code == 200
    still = client.get(_path(body["still_image_thumbnail_url"]), headers={"x-api-key": ""})
    assert still.content[:2] == b"\xff\xd8"
    watch = client.get(_path(body["hosted_url"]), headers={"x-api-key": ""})
    assert '<video src="video.mp4"' in watch.text
    path = runtime.storage.path(f"videos/{video_id}/video.mp4")
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.width == 400
        assert container.streams.audio[0].codec_context.name == "aac"
    with runtime.sessions() as session:
        event = session.query(WebhookEvent).filter_by(subject_id=video_id).one()
        payload = event.payload
    assert payload["status"] == "ready" and payload["video_id"] == video_id
    assert payload["download_url"] and payload["replica_id"] == replica_id
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$", payload["created_at"])
    json.dumps(payload)
    # LIKENESS_OUTPUT_HEIGHT: the same replica renders smaller (never larger than trained)
    small = client.post("/v2/videos", json={"replica_id": replica_id, "script": "Smaller."})
    settings = runtime.settings.model_copy(update={"min_duration_s": 5.0, "output_height": 150})
    deps = JobContext(runtime.sessions, runtime.storage, settings, runtime.queue)
    video_tasks.render(deps, small.json()["video_id"])
    path = runtime.storage.path(f"videos/{small.json()['video_id']}/video.mp4")
    with av.open(str(path)) as container:
        video = container.streams.video[0].codec_context
        assert (video.width, video.height) == (200, 150)


def test_audio_url_and_its_limits(
    client: TestClient,
    runtime: Runtime,
    media_server: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The render's lips follow the phones of the words heard (Whisper's words aligned by
    PocketSphinx): they time the phones as an alignment to the true transcript does, which
    the free phone recogniser's guesses do not (60 % of their centres on this clip)."""
    files, _ = media_server
    replica_id = _replica(client, runtime)
    pushed: list[list[Phone]] = []
    push = MouthbankSession.push_phones

    def recorded(self: MouthbankSession, phones: list[Phone]) -> None:
        pushed.append(phones)
        push(self, phones)

    monkeypatch.setattr(MouthbankSession, "push_phones", recorded)
    good = client.post(
        "/v2/videos", json={"replica_id": replica_id, "audio_url": f"{files}/librivox_0870.wav"}
    )
    short = client.post(
        "/v2/videos", json={"replica_id": replica_id, "audio_url": f"{files}/single_face.mp4"}
    )
    for response in (good, short):
        video_tasks.render(_deps(runtime), response.json()["video_id"])
    assert client.get(f"/v2/videos/{good.json()['video_id']}").json()["status"] == "ready"
    speech, rate = read_audio(FIXTURES / "librivox_0870.wav")
    truth = asr_sphinx.align(speech, LIBRIVOX_0870)
    spoken = [p for p in pushed[-1] if p.name != "SIL"]
    inside = [
        any(t.name == p.name and t.start_s <= (p.start_s + p.end_s) / 2 < t.end_s for t in truth)
        for p in spoken
    ]
    assert rate == 16000 and sum(inside) >= 0.95 * len(spoken)
    failed = client.get(f"/v2/videos/{short.json()['video_id']}").json()
    assert failed["status"] == "error" and failed["download_url"] is None
    assert failed["status_details"] == service.FAILED
    assert "between 3 s and 10 min" in failed["error_details"]


def test_a_video_waits_for_its_replica(client: TestClient, runtime: Runtime) -> None:
    replica_id = _replica(client, runtime, train=False)
    video_id = client.post(
        "/v2/videos", json={"replica_id": replica_id, "script": "Wait for me please."}
    ).json()["video_id"]
    video_tasks.render(_deps(runtime), video_id)
    waiting = client.get(f"/v2/videos/{video_id}").json()
    assert waiting["status"] == "queued"
    assert waiting["status_details"] == service.TRAINING.format(replica_id)
    with transaction(runtime.sessions) as session:  # the replica fails to train
        row = replicas.get(session, replica_id)
        replicas.mark_failed(session, row, "video_duration", "too short")
        to_render, _events = service.after_replica(session, row, "http://h", "k")
    assert to_render == []
    failed = client.get(f"/v2/videos/{video_id}").json()
    assert failed["status"] == "error"
    assert failed["status_details"] == service.REPLICA_ERROR.format(replica_id)


def test_training_completion_releases_waiting_videos(client: TestClient, runtime: Runtime) -> None:
    replica_id = _replica(client, runtime, train=False)
    video_id = client.post(
        "/v2/videos", json={"replica_id": replica_id, "script": "Now I can speak."}
    ).json()["video_id"]
    with transaction(runtime.sessions) as session:
        row = replicas.get(session, replica_id)
        replicas.mark_completed(session, row, {"bundle": "bundle"})
        to_render, _ = service.after_replica(session, row, "http://h", "k")
    assert to_render == [video_id]
    with runtime.sessions() as session:
        video = session.get(Video, video_id)
        assert video is not None and video.status_details == service.QUEUED


@pytest.mark.parametrize("hard", [False, True])
def test_delete(client: TestClient, runtime: Runtime, hard: bool) -> None:
    replica_id = _replica(client, runtime)
    video_id = client.post(
        "/v2/videos", json={"replica_id": replica_id, "script": "Short lived."}
    ).json()["video_id"]
    video_tasks.render(_deps(runtime), video_id)
    assert client.delete(f"/v2/videos/{video_id}", params={"hard": hard}).status_code == 200
    assert runtime.storage.path(f"videos/{video_id}").exists() is not hard


def test_transparent_background_is_vp9_with_a_real_alpha(
    client: TestClient, runtime: Runtime
) -> None:
    replica_id = _replica(client, runtime)
    video_id = client.post(
        "/v2/videos",
        json={
            "replica_id": replica_id,
            "script": "No background behind me.",
            "transparent_background": True,
        },
    ).json()["video_id"]
    video_tasks.render(_deps(runtime), video_id)
    body = client.get(f"/v2/videos/{video_id}").json()
    assert body["status"] == "ready", body
    assert body["download_url"].endswith("/video.webm") and body["stream_url"] is None
    path = runtime.storage.path(f"videos/{video_id}/video.webm")
    decoder = av.CodecContext.create("libvpx-vp9", "r")
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
        frame = next(
            f for p in container.demux(container.streams.video[0]) for f in decoder.decode(p)
        )
    assert frame.format.name == "yuva420p"
    alpha = frame.to_ndarray(format="rgba")[:, :, 3]
    centre = alpha[100:200, 150:250]  # the face
    corner = alpha[:40, :40]  # the wall behind him
    assert centre.mean() > 200 and corner.mean() < 60


def test_background_source_replaces_the_background(
    client: TestClient, runtime: Runtime, media_server: tuple[str, Path]
) -> None:
    files, _ = media_server
    replica_id = _replica(client, runtime)
    plain, swapped = (
        client.post(
            "/v2/videos", json={"replica_id": replica_id, "script": "Where am I?", **extra}
        ).json()["video_id"]
        for extra in ({}, {"background_source_url": f"{files}/world.mp4"})
    )
    for video_id in (plain, swapped):
        video_tasks.render(_deps(runtime), video_id)
        assert client.get(f"/v2/videos/{video_id}").json()["status"] == "ready"

    def first_frame(video_id: str) -> np.ndarray:
        with av.open(str(runtime.storage.path(f"videos/{video_id}/video.mp4"))) as c:
            return next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)

    a, b = first_frame(plain), first_frame(swapped)
    assert np.abs(a[:40, :40] - b[:40, :40]).mean() > 40  # the wall is gone
    assert np.abs(a[120:200, 170:230] - b[120:200, 170:230]).mean() < 12  # he is not


def test_an_8khz_audio_url_comes_out_at_a_rate_every_player_handles(
    client: TestClient, runtime: Runtime, media_server: tuple[str, Path]
) -> None:
    files, root = media_server
    samples, rate = read_audio(FIXTURES / "librivox_0870.wav", 8000)
    with av.open(str(root / "narrow_8k.wav"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(to_int16(samples).reshape(1, -1), "s16", "mono")
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    replica_id = _replica(client, runtime)
    video_id = client.post(
        "/v2/videos", json={"replica_id": replica_id, "audio_url": f"{files}/narrow_8k.wav"}
    ).json()["video_id"]
    video_tasks.render(_deps(runtime), video_id)
    assert client.get(f"/v2/videos/{video_id}").json()["status"] == "ready"
    with av.open(str(runtime.storage.path(f"videos/{video_id}/video.mp4"))) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.rate == 48000
