"""The same product on PostgreSQL and on a Redis broker (spec: both must work)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient

from likeness.app import create_app
from likeness.config import Settings
from likeness.jobs.context import JobContext
from likeness.kit.db import MAX_PAGE
from likeness.replica import tasks
from likeness.runtime import Runtime, build_runtime
from likeness.worker import register

from .backends import postgres_url, redis_url
from .conftest import API_KEY, Receiver

__all__ = ["postgres_url", "redis_url"]


@pytest.fixture
def pg_runtime(postgres_url: str, tmp_path: Path) -> Iterator[Runtime]:
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as conn:  # a clean schema for each test
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    runtime = build_runtime(
        Settings(
            data_dir=tmp_path / "data",
            api_key=API_KEY,
            database_url=postgres_url,
            allow_private_urls=True,
            min_duration_s=5.0,
            consent_policy="off",
        )
    )
    yield runtime
    runtime.close()


def test_postgres_runs_the_api_and_a_training_job(
    pg_runtime: Runtime, media_server: tuple[str, Path]
) -> None:
    files, _ = media_server
    with TestClient(create_app(runtime=pg_runtime), headers={"x-api-key": API_KEY}) as client:
        created = client.post("/v2/replicas", json={"train_video_url": f"{files}/short_talk.mp4"})
        assert created.status_code == 200
        replica_id = created.json()["replica_id"]
        ctx = JobContext(
            pg_runtime.sessions, pg_runtime.storage, pg_runtime.settings, pg_runtime.queue
        )
        tasks.train(ctx, replica_id)
        body = client.get(f"/v2/replicas/{replica_id}").json()
        assert body["status"] == "completed" and body["training_progress"] == "100/100"
        listed = client.get("/v2/replicas", params={"replica_ids": replica_id}).json()
        assert listed["total_count"] == 1
        assert client.delete(f"/v2/replicas/{replica_id}?hard=true").status_code == 200
        assert client.get(f"/v2/replicas/{replica_id}").status_code == 404


def test_redis_broker_carries_jobs_to_a_worker(
    redis_url: str, tmp_path: Path, media_server: tuple[str, Path], receiver: Receiver
) -> None:
    files, _ = media_server
    runtime = build_runtime(
        Settings(
            data_dir=tmp_path / "data",
            api_key=API_KEY,
            broker_url=redis_url,
            allow_private_urls=True,
            min_duration_s=5.0,
            consent_policy="off",
        )
    )
    celery = register(runtime)
    with (
        start_worker(
            celery, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30
        ),
        TestClient(create_app(runtime=runtime), headers={"x-api-key": API_KEY}) as client,
    ):
        replica_id = client.post(
            "/v2/replicas",
            json={
                "train_video_url": f"{files}/short_talk.mp4",
                "callback_url": receiver.url,
            },
        ).json()["replica_id"]
        deadline = time.monotonic() + 120
        while client.get(f"/v2/replicas/{replica_id}").json()["status"] == "started":
            assert time.monotonic() < deadline, "the job never ran"
            time.sleep(0.2)
        assert client.get(f"/v2/replicas/{replica_id}").json()["status"] == "completed"
        while not receiver.received():
            assert time.monotonic() < deadline, "the callback never came"
            time.sleep(0.2)
    assert receiver.received()[0]["json"] == {"replica_id": replica_id, "status": "ready"}
    runtime.close()


def test_postgres_gets_no_input_it_cannot_hold(pg_runtime: Runtime) -> None:
    """What overflowed on PostgreSQL (an OFFSET past bigint, a name past its column, a lone
    surrogate, a long Content-Type) is refused with a 400 before it gets there."""
    with TestClient(create_app(runtime=pg_runtime), headers={"x-api-key": API_KEY}) as client:
        for path in ("/v2/replicas", "/v2/videos"):
            last = client.get(path, params={"page": MAX_PAGE, "limit": 1000})
            assert last.status_code == 200 and last.json()["data"] == []
            assert client.get(path, params={"page": 10**19}).status_code == 400
        video = {"train_video_url": "https://example.com/v.mp4"}
        named = client.post("/v2/replicas", json=video | {"replica_name": "n" * 255})
        assert named.status_code == 200
        assert client.post("/v2/replicas", json=video | {"replica_name": "n" * 256}).is_client_error
        lone = b'{"train_video_url": "https://example.com/v.mp4", "replica_name": "\\ud800"}'
        headers = {"content-type": "application/json"}
        assert client.post("/v2/replicas", content=lone, headers=headers).status_code == 400
        nul = video | {"replica_name": "a\0b"}
        assert client.post("/v2/replicas", json=nul).status_code == 400
        for path in ("/v2/replicas/r%00x", "/v2/videos/v%00x", "/v2/replicas?replica_ids=a%00"):
            assert client.get(path).status_code == 400, path
        kind = "video/mp4; x=" + "a" * 200
        upload = client.post("/v2/uploads", files={"file": ("v.mp4", b"\0" * 10, kind)})
        assert upload.status_code == 400
        assert client.get("/v2/replicas").json()["total_count"] == 1


def test_postgres_holds_conversations_and_personas(pg_runtime: Runtime) -> None:
    """Personas (JSON layers, a JSON Patch), conversations (create, list, end) and the sweep
    ending one whose media worker died, on PostgreSQL."""
    from datetime import timedelta

    from likeness.conversation import service as conversations
    from likeness.kit.clock import utcnow
    from likeness.worker import sweep

    from .test_conversations import make_replica

    face = make_replica(pg_runtime)
    with TestClient(create_app(runtime=pg_runtime), headers={"x-api-key": API_KEY}) as client:
        layers = {"llm": {"model": "m", "headers": {"x": "é"}}, "transport": None}
        pal = client.post(
            "/v2/pals", json={"pipeline_mode": "echo", "default_face_id": face, "layers": layers}
        ).json()["pal_id"]
        patch = [{"op": "add", "path": "/layers/tts", "value": {"tts_engine": "cartesia"}}]
        assert client.patch(f"/v2/pals/{pal}", json=patch).status_code == 200
        assert client.get(f"/v2/pals/{pal}").json()["layers"] == layers | {"tts": patch[0]["value"]}
        ended, lost = (
            client.post("/v2/conversations", json={"pal_id": pal}).json()["conversation_id"]
            for _ in range(2)
        )
        assert client.post(f"/v2/conversations/{ended}/end").status_code == 200
        last = client.get("/v2/conversations", params={"page": MAX_PAGE, "limit": 1000})
        assert last.status_code == 200 and last.json()["data"] == []
        assert (
            client.get("/v2/conversations", params={"status": "ended"}).json()["total_count"] == 1
        )
        lease_s = pg_runtime.settings.conversation_lease_s
        assert conversations.claim(pg_runtime.sessions, lost, lease_s) is not None
        ctx = JobContext(
            pg_runtime.sessions, pg_runtime.storage, pg_runtime.settings, pg_runtime.queue
        )
        later = utcnow() + timedelta(seconds=2 * lease_s)
        assert sweep(ctx, later) == [("conversation.media", lost)]
        body = client.get(f"/v2/conversations/{lost}", params={"verbose": True}).json()
        assert body["status"] == "ended"
        assert body["shutdown_reason"] == "internal error occurred at step media worker"


def test_postgres_capacity_holds_under_concurrent_creates(
    pg_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_conversations import race_creates

    with TestClient(create_app(runtime=pg_runtime), headers={"x-api-key": API_KEY}) as client:
        race_creates(client, pg_runtime, monkeypatch)
