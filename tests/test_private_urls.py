"""Private URLs with the default settings (``allow_private_urls`` off): obviously private
ones answer 400 at create time; our own uploads are accepted in every media field, however
their host is spelled, and read from storage with no network fetch."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from likeness.config import Settings
from likeness.jobs.context import JobContext
from likeness.kit.safe_url import is_obviously_private
from likeness.replica import tasks as replica_tasks
from likeness.runtime import Runtime
from likeness.upload import service as uploads
from likeness.video import tasks as video_tasks

from .conftest import FIXTURES


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_private_urls": False})


def _deps(runtime: Runtime) -> JobContext:
    settings = runtime.settings.model_copy(update={"min_duration_s": 5.0})
    return JobContext(runtime.sessions, runtime.storage, settings, runtime.queue)


def _upload(client: TestClient, name: str) -> str:
    response = client.post("/v2/uploads", files={"file": (name, (FIXTURES / name).read_bytes())})
    url: str = response.json()["url"]
    assert url.startswith("http://127.0.0.1:8000/v2/uploads/u")  # the default public URL
    return url


def _spelled(url: str, host: str) -> str:
    return url.replace("127.0.0.1", host, 1)


def _replica(client: TestClient, url: str = "https://example.com/v.mp4") -> str:
    response = client.post("/v2/replicas", json={"train_video_url": url})
    assert response.status_code == 200, response.json()
    replica_id: str = response.json()["replica_id"]
    return replica_id


@pytest.mark.parametrize(
    ("path", "field", "url"),
    [
        ("/v2/replicas", "train_video_url", "http://127.0.0.1:9/v.mp4"),
        ("/v2/replicas", "train_video_url", "http://LOCALHOST./v.mp4"),
        ("/v2/replicas", "consent_video_url", "http://10.0.0.5/c.mp4"),
        ("/v2/replicas", "callback_url", "http://169.254.169.254/latest/meta-data"),
        ("/v2/replicas", "callback_url", "http://[::1]:8000/hook"),
        ("/v2/videos", "audio_url", "http://192.168.1.2/a.wav"),
        ("/v2/videos", "audio_url", "http://127.1/a.wav"),
        ("/v2/videos", "background_source_url", "http://[fd00::1]/b.mp4"),
        ("/v2/videos", "callback_url", "http://0x7f000001/hook"),
        ("/v2/videos", "callback_url", "http://app.localhost/hook"),
    ],
)
def test_obviously_private_urls_are_refused_at_create(
    client: TestClient, path: str, field: str, url: str
) -> None:
    if path == "/v2/replicas":
        body = {"train_video_url": "https://example.com/v.mp4", field: url}
    else:
        body = {"replica_id": _replica(client), "audio_url": "https://example.com/a.wav"}
        body[field] = url
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["message"] == (
        f"Invalid {field}: private and loopback addresses are not allowed"
    )


def test_the_operator_may_allow_private_urls(runtime: Runtime) -> None:
    allowed = runtime.settings.model_copy(update={"allow_private_urls": True})
    with runtime.sessions() as session:
        uploads.refuse_private(session, allowed, "callback_url", "http://127.0.0.1:9/hook")


def test_only_literals_and_localhost_are_obvious() -> None:
    assert not is_obviously_private("https://example.com/v.mp4")
    assert not is_obviously_private("http://8.8.8.8/v.mp4")
    assert not is_obviously_private("http://[2606:4700::1111]/v.mp4")
    assert not is_obviously_private("http://localhost.example.com/v.mp4")
    assert is_obviously_private("http://[::ffff:127.0.0.1]/v.mp4")
    assert is_obviously_private("http://0.0.0.0:8000/v.mp4")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_own_uploads_are_accepted_in_every_media_field(client: TestClient, host: str) -> None:
    audio = _spelled(_upload(client, "librivox_0870.wav"), host)
    video = _spelled(_upload(client, "world.mp4"), host)
    replica_id = _replica(client, video)
    response = client.post(
        "/v2/replicas", json={"train_video_url": video, "consent_video_url": video}
    )
    assert response.status_code == 200
    response = client.post(
        "/v2/videos",
        json={"replica_id": replica_id, "audio_url": audio, "background_source_url": video},
    )
    assert response.status_code == 200
    refused = client.post("/v2/replicas", json={"train_video_url": video, "callback_url": video})
    assert refused.status_code == 400  # a callback is not media: no exception for uploads
    unknown = video[: -len("u000000000000")] + "u000000000000"
    assert client.post("/v2/replicas", json={"train_video_url": unknown}).status_code == 400


@pytest.mark.parametrize(
    "spell",
    [
        lambda url: url,
        lambda url: _spelled(url, "localhost"),
        lambda url: _spelled(url, "LocalHost."),
        lambda url: _spelled(url, "[::1]"),
        lambda url: _spelled(url, "127.0.0.1").replace(":8000", ":9"),  # another local port
        lambda url: url.replace("http://", "https://") + "/",
    ],
)
def test_the_render_copies_own_uploads_from_storage(
    client: TestClient, runtime: Runtime, tmp_path: Path, spell: object
) -> None:
    """No network fetch: one would be refused (every spelling is a private address)."""
    url = _upload(client, "librivox_0870.wav")
    assert callable(spell)
    video_tasks._fetch(_deps(runtime), spell(url), tmp_path / "audio", "audio_url")
    assert (tmp_path / "audio").read_bytes() == (FIXTURES / "librivox_0870.wav").read_bytes()


@pytest.mark.parametrize(
    "crafted",
    [
        "{base}/../../likeness.sqlite",
        "{base}/%2e%2e/%2e%2e/likeness.sqlite",
        "{base}/librivox_0870.wav",
        "http://127.0.0.1:8000/v2/uploads/../api_key",
        "http://127.0.0.1:8000/v2/uploads/%2e%2e%2fapi_key",
        "http://127.0.0.1:8000/x/v2/uploads/{id}",
        "http://10.0.0.1:8000/v2/uploads/{id}",
        "ftp://localhost/v2/uploads/{id}",
    ],
)
def test_crafted_upload_urls_never_leave_the_uploads(
    client: TestClient, runtime: Runtime, tmp_path: Path, crafted: str
) -> None:
    base = _upload(client, "librivox_0870.wav")
    url = crafted.format(base=base, id=base.rsplit("/", 1)[1])
    with runtime.sessions() as session:
        assert (
            uploads.local_path(session, runtime.storage, runtime.settings.public_url, url) is None
        )
    with pytest.raises(video_tasks.RenderFailure):  # and fetching it is refused
        video_tasks._fetch(_deps(runtime), url, tmp_path / "audio", "audio_url")
    assert not (tmp_path / "audio").exists()


def test_train_and_render_from_uploads_spelled_as_loopback(
    client: TestClient, runtime: Runtime
) -> None:
    """The whole path with private URLs refused: training from ``localhost``, the audio from
    ``localhost`` and the background from ``[::1]``."""
    train = _spelled(_upload(client, "short_talk.mp4"), "localhost")
    replica_id = _replica(client, train)
    replica_tasks.train(_deps(runtime), replica_id)
    assert client.get(f"/v2/replicas/{replica_id}").json()["status"] == "completed"
    video_id = client.post(
        "/v2/videos",
        json={
            "replica_id": replica_id,
            "audio_url": _spelled(_upload(client, "librivox_0870.wav"), "localhost"),
            "background_source_url": _spelled(_upload(client, "world.mp4"), "[::1]"),
        },
    ).json()["video_id"]
    video_tasks.render(_deps(runtime), video_id)
    video = client.get(f"/v2/videos/{video_id}").json()
    assert video["status"] == "ready", video
