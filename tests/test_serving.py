"""How the API is served: C parser and loop under `likeness serve`, no thread-pool hop for a
read by id, and every read's connection back in the pool. (Speed itself: benchmarks/api.py.)"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
import uvicorn
from fastapi.testclient import TestClient

from likeness.app import create_app
from likeness.cli.main import EVENT_LOOP, HTTP_PARSER
from likeness.config import Settings
from likeness.runtime import Runtime, build_runtime

from .backends import postgres_url
from .conftest import API_KEY

__all__ = ["postgres_url"]


def test_serve_runs_on_httptools_and_uvloop(runtime: Runtime) -> None:
    config = uvicorn.Config(create_app(runtime=runtime), http=HTTP_PARSER, loop=EVENT_LOOP)
    config.load()
    assert config.http_protocol_class.__module__ == "uvicorn.protocols.http.httptools_impl"
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions sent to the thread pool."""
    sent: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return sent


def test_reads_take_no_thread_pool_hop(client: TestClient, hops: list[str]) -> None:
    """The lean path, the routes by id and the lists of replicas and videos all read on the
    event loop (api/reads.py); a bad key is refused before any thread or database is
    involved."""
    created = client.post("/v2/replicas", json={"train_video_url": "https://example.com/a.mp4"})
    replica_id = created.json()["replica_id"]
    hops.clear()
    assert client.get(f"/v2/replicas/{replica_id}").status_code == 200  # the lean path
    assert client.get(f"/v2/replicas/{replica_id}?verbose=1").status_code == 200  # the route
    assert client.get(f"/v2/faces/{replica_id}?verbose=yes").status_code == 200
    assert client.get("/v2/videos/0000000000?verbose=0").status_code == 404
    assert client.get("/v2/replicas", params={"replica_ids": replica_id}).json()["total_count"] == 1
    assert client.get("/v2/videos").json()["total_count"] == 0
    assert hops == []
    assert client.get("/v2/replicas/r0000000000", headers={"x-api-key": "wrong"}).status_code == 401
    assert hops == []


def _reads_give_their_connections_back(runtime: Runtime) -> None:
    """Every read gives its connection back, but the reads by id, which share one held
    connection (kit/db.py HeldConnection)."""
    with TestClient(create_app(runtime=runtime), headers={"x-api-key": API_KEY}) as client:
        created = client.post("/v2/replicas", json={"train_video_url": "https://example.com/a.mp4"})
        replica_id = created.json()["replica_id"]
        for _ in range(3):
            assert client.get(f"/v2/replicas/{replica_id}").status_code == 200
            assert client.get(f"/v2/replicas/{replica_id}?verbose=1").status_code == 200
            assert client.get("/v2/replicas").json()["total_count"] == 1
            assert client.get("/v2/replicas/r0000000000").status_code == 404  # raised inside
            assert client.get("/v2/videos").status_code == 200
            assert runtime.db.pool.checkedout() == 1  # type: ignore[attr-defined]
    runtime.reads.close()
    assert runtime.db.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_reads_give_their_sqlite_connections_back(runtime: Runtime) -> None:
    _reads_give_their_connections_back(runtime)


def test_reads_give_their_postgres_connections_back(postgres_url: str, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as conn:  # a clean schema
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    runtime = build_runtime(Settings(data_dir=tmp_path, api_key=API_KEY, database_url=postgres_url))
    try:
        _reads_give_their_connections_back(runtime)
    finally:
        runtime.close()


def test_the_sqlite_broker_writes_ahead_and_carries_a_job(runtime: Runtime) -> None:
    runtime.queue.enqueue("replica.train", "r0000000001")
    path = runtime.settings.resolved_data_dir / "broker.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as broker:
        assert broker.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        (payload,) = broker.execute("SELECT payload FROM kombu_message").fetchone()
    assert json.loads(payload)["headers"]["task"] == "replica.train"
