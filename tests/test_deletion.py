"""Deletion deletes: a hard delete finds soft-deleted rows and leaves nothing of the id under
the data directory; uploads can be deleted; a replica deleted while it trains leaves no
folder and is announced no more."""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from likeness.jobs.context import JobContext
from likeness.kit.db import transaction
from likeness.models import Replica, Upload, Video, WebhookAttempt, WebhookEvent
from likeness.replica import service
from likeness.replica import tasks as replica_tasks
from likeness.runtime import Runtime
from likeness.video import tasks as video_tasks
from likeness.webhooks import service as webhooks

from .conftest import FIXTURES, Receiver
from .test_data_dir import readable_by_others


def _deps(runtime: Runtime) -> JobContext:
    settings = runtime.settings.model_copy(update={"min_duration_s": 5.0})
    return JobContext(runtime.sessions, runtime.storage, settings, runtime.queue)


def _upload(client: TestClient, clip: Path) -> dict[str, str]:
    response = client.post("/v2/uploads", files={"file": (clip.name, clip.read_bytes())})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def _mentions(data_dir: Path, *ids: str) -> list[str]:
    """Every path under the data directory that names one of ``ids``."""
    found = []
    for folder, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if any(i in path for i in ids):
                found.append(path)
    return found


def _rows(runtime: Runtime, *ids: str) -> list[object]:
    with runtime.sessions() as session:
        return [
            *session.scalars(select(Replica).where(Replica.id.in_(ids))),
            *session.scalars(select(Video).where(Video.id.in_(ids) | Video.replica_id.in_(ids))),
            *session.scalars(select(Upload).where(Upload.id.in_(ids))),
            *session.scalars(select(WebhookEvent).where(WebhookEvent.subject_id.in_(ids))),
        ]


def _deliver_all(runtime: Runtime) -> list[str]:
    """Deliver every recorded callback now (no worker runs here); returns the event ids."""
    with runtime.sessions() as session:
        events = list(session.scalars(select(WebhookEvent.id)))
    for event_id in events:
        outcome = webhooks.deliver(
            runtime.sessions,
            event_id,
            secret="whsec_test",
            retry_delays_s=[],
            timeout_s=5,
            allow_private=True,
        )
        assert outcome.delivered
    return events


def test_hard_delete_after_a_real_training_and_render_leaves_nothing_of_the_ids(
    client: TestClient, runtime: Runtime, receiver: Receiver
) -> None:
    data = runtime.settings.resolved_data_dir
    upload = _upload(client, FIXTURES / "short_talk.mp4")
    replica_id = client.post(
        "/v2/replicas",
        json={"train_video_url": upload["url"], "callback_url": receiver.url},
    ).json()["replica_id"]
    deps = _deps(runtime)
    replica_tasks.train(deps, replica_id)
    assert client.get(f"/v2/replicas/{replica_id}").json()["status"] == "completed"
    video_id = client.post(
        "/v2/videos",
        json={"replica_id": replica_id, "script": "Gone soon.", "callback_url": receiver.url},
    ).json()["video_id"]
    video_tasks.render(deps, video_id)
    video = client.get(f"/v2/videos/{video_id}").json()
    assert video["status"] == "ready"
    assert client.get(_path(video["download_url"])).status_code == 200
    events = _deliver_all(runtime)
    assert len(receiver.received()) == 2  # the replica's and the video's
    ids = (replica_id, video_id, upload["upload_id"])
    assert _mentions(data, *ids) and _rows(runtime, *ids)  # the walk does see them
    assert readable_by_others(data) == []

    assert client.delete(f"/v2/replicas/{replica_id}").status_code == 200  # soft first
    assert client.delete(f"/v2/replicas/{replica_id}", params={"hard": "true"}).status_code == 200

    assert _mentions(data, *ids) == []
    assert _rows(runtime, *ids) == []
    with runtime.sessions() as session:
        assert not list(
            session.scalars(select(WebhookAttempt).where(WebhookAttempt.event_id.in_(events)))
        )
    assert client.get(_path(video["download_url"])).status_code == 404
    assert client.get(_path(video["stream_url"])).status_code == 404
    assert client.get(f"/v2/videos/{video_id}").status_code == 404
    assert client.delete(f"/v2/replicas/{replica_id}", params={"hard": "true"}).status_code == 404


def test_hard_delete_of_a_soft_deleted_video(client: TestClient, runtime: Runtime) -> None:
    upload = _upload(client, FIXTURES / "short_talk.mp4")
    replica_id = client.post("/v2/replicas", json={"train_video_url": upload["url"]}).json()[
        "replica_id"
    ]
    video_id = client.post(
        "/v2/videos", json={"replica_id": replica_id, "script": "Never rendered."}
    ).json()["video_id"]
    (runtime.storage.ensure_dir(f"videos/{video_id}") / "video.mp4").write_bytes(b"mp4")
    assert client.delete(f"/v2/videos/{video_id}").status_code == 200
    assert client.delete(f"/v2/videos/{video_id}").status_code == 404  # soft twice: gone
    assert client.delete(f"/v2/videos/{video_id}", params={"hard": "true"}).status_code == 200
    assert _mentions(runtime.settings.resolved_data_dir, video_id) == []
    assert _rows(runtime, video_id) == []


def test_an_upload_can_be_deleted(client: TestClient, runtime: Runtime) -> None:
    upload = _upload(client, FIXTURES / "short_talk.mp4")
    assert client.get(_path(upload["url"])).status_code == 200
    deleted = client.delete(f"/v2/uploads/{upload['upload_id']}")
    assert deleted.status_code == 200
    assert client.get(_path(upload["url"])).status_code == 404
    assert _mentions(runtime.settings.resolved_data_dir, upload["upload_id"]) == []
    assert _rows(runtime, upload["upload_id"]) == []
    again = client.delete(f"/v2/uploads/{upload['upload_id']}")
    assert again.status_code == 404
    assert again.json() == {"error": "Invalid upload_id", "message": "Invalid upload_id"}


@pytest.mark.parametrize("hard", [False, True])
def test_a_replica_deleted_while_it_trains_is_never_announced(
    client: TestClient, runtime: Runtime, receiver: Receiver, hard: bool
) -> None:
    upload = _upload(client, FIXTURES / "short_talk.mp4")
    replica_id = client.post(
        "/v2/replicas", json={"train_video_url": upload["url"], "callback_url": receiver.url}
    ).json()["replica_id"]
    job = threading.Thread(target=replica_tasks.train, args=(_deps(runtime), replica_id))
    job.start()
    deadline = time.monotonic() + 60
    while client.get(f"/v2/replicas/{replica_id}").json()["training_progress"] == "0/100":
        assert time.monotonic() < deadline and job.is_alive()
        time.sleep(0.01)  # the training video is in its folder; the stages are under way
    deleted = client.delete(f"/v2/replicas/{replica_id}", params={"hard": hard})
    assert deleted.status_code == 200
    job.join(timeout=120)
    assert not job.is_alive()
    with runtime.sessions() as session:
        events = list(
            session.scalars(select(WebhookEvent).where(WebhookEvent.subject_id == replica_id))
        )
    assert events == []  # no callback recorded for it, so none can be sent
    if hard:  # and no folder was re-created for it after the delete
        assert _mentions(runtime.settings.resolved_data_dir, replica_id) == []
        assert _rows(runtime, replica_id) == []


def test_a_soft_delete_stops_callbacks_not_yet_sent(
    client: TestClient, runtime: Runtime, receiver: Receiver
) -> None:
    replica_id = client.post(
        "/v2/replicas",
        json={"train_video_url": "http://127.0.0.1:9/gone.mp4", "callback_url": receiver.url},
    ).json()["replica_id"]
    replica_tasks.train(_deps(runtime), replica_id)  # fails: the error callback is recorded
    assert client.delete(f"/v2/replicas/{replica_id}").status_code == 200
    with runtime.sessions() as session:
        (event_id,) = session.scalars(
            select(WebhookEvent.id).where(WebhookEvent.subject_id == replica_id)
        )
    webhooks.deliver(
        runtime.sessions,
        event_id,
        secret="whsec_test",
        retry_delays_s=[],
        timeout_s=5,
        allow_private=True,
    )
    assert receiver.received() == []


def test_a_replica_hard_deleted_while_its_callback_is_in_flight_leaves_no_log(
    client: TestClient, runtime: Runtime
) -> None:
    """The receiver deletes the replica while it answers the callback about it."""
    holder: dict[str, str] = {}

    class DeletesOnCall(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"] or 0))
            with transaction(runtime.sessions) as session:
                service.delete(
                    session,
                    runtime.storage,
                    holder["id"],
                    True,
                    runtime.settings.public_url,
                    runtime.purge_videos_of,
                )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), DeletesOnCall)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        holder["id"] = client.post(
            "/v2/replicas",
            json={"train_video_url": "http://127.0.0.1:9/gone.mp4", "callback_url": hook},
        ).json()["replica_id"]
        replica_tasks.train(_deps(runtime), holder["id"])  # fails: its callback is recorded
        _deliver_all(runtime)
    finally:
        server.shutdown()
        server.server_close()
    assert _rows(runtime, holder["id"]) == []
    with runtime.sessions() as session:
        assert list(session.scalars(select(WebhookAttempt))) == []
