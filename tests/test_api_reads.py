"""The lean read path (api/reads.py): GET /v2/replicas|faces|videos/{id} answered before
routing sends the bytes the routes send, and hands every other request to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse
from starlette.types import Scope

from likeness.api.reads import LeanReads
from likeness.kit.db import transaction
from likeness.models import Replica, Video
from likeness.replica import service as replicas
from likeness.runtime import Runtime
from likeness.video import service as videos

from .conftest import API_KEY

TRAIN = {"train_video_url": "https://example.com/a.mp4"}
# (a query the lean path takes, one meaning the same that only FastAPI reads, verbose)
QUERIES = (
    ("", "?verbose=0", False),
    ("?verbose=true", "?verbose=1", True),
    ("?verbose=false", "?verbose=no", False),
)


@pytest.fixture
def lean(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """For each request, whether LeanReads answered it (True) or passed it on (False)."""
    answered: list[bool] = []
    real = LeanReads._answer

    def spy(self: LeanReads, scope: Scope) -> JSONResponse | None:
        response = real(self, scope)
        answered.append(response is not None)
        return response

    monkeypatch.setattr(LeanReads, "_answer", spy)
    yield answered


@pytest.fixture
def items(client: TestClient, runtime: Runtime) -> dict[str, str]:
    """A trained replica with a thumbnail and checks, a face, a failed and a deleted replica,
    a queued video, a ready transparent one and a deleted one."""
    create = client.post
    ids = {
        "done": create("/v2/replicas", json=TRAIN | {"replica_name": 'Zoë "☃"'}).json(),
        "face": create("/v2/faces", json=TRAIN | {"face_name": "Lucy"}).json(),
        "failed": create("/v2/replicas", json=TRAIN).json(),
        "deleted": create("/v2/replicas", json=TRAIN).json(),
    }
    out = {name: body.get("replica_id") or body["face_id"] for name, body in ids.items()}
    for name, extra in (("queued", {}), ("ready", {"transparent_background": True})):
        body = {"replica_id": out["done"], "script": "Hello there."} | extra
        out[name] = create("/v2/videos", json=body).json()["video_id"]
    out["video deleted"] = create(
        "/v2/videos", json={"replica_id": out["done"], "script": "Bye."}
    ).json()["video_id"]
    assert client.delete(f"/v2/replicas/{out['deleted']}").status_code == 200
    assert client.delete(f"/v2/videos/{out['video deleted']}").status_code == 200
    with transaction(runtime.sessions) as session:
        done = session.get(Replica, out["done"])
        assert done is not None
        done.status, done.training_progress = "completed", 100
        checks = [{"name": "face", "passed": True, "value": 1e16, "threshold": 1.5e-7}]
        done.artifacts = {"thumbnail": "thumb.mp4", "checks": checks, "quality": {"psnr": 31.5}}
        failed = session.get(Replica, out["failed"])
        assert failed is not None
        failed.status, failed.error_message, failed.error_detail = "error", "bad", "no face"
        ready = session.get(Video, out["ready"])
        assert ready is not None
        ready.status, ready.generation_progress = "ready", 100
    return out


def _orm_body(runtime: Runtime, path: str, verbose: bool) -> bytes:
    """The body the route sent before reads went through Core: to_wire of the ORM object."""
    _, collection, item_id = path.rsplit("/", 2)
    key, public_url = API_KEY, runtime.settings.public_url
    with runtime.sessions() as session:
        body: dict[str, Any]
        if collection == "videos":
            body = videos.to_wire(videos.get(session, item_id), public_url, key, verbose)
        else:
            replica = replicas.get(session, item_id)
            api_name = "face" if collection == "faces" else "replica"
            body = replicas.to_wire(replica, api_name, public_url, key, verbose)
    return bytes(JSONResponse(body).body)


def test_lean_reads_send_the_routes_bytes(
    client: TestClient, runtime: Runtime, items: dict[str, str], lean: list[bool]
) -> None:
    found = [f"/v2/replicas/{items[n]}" for n in ("done", "face", "failed")]
    found += [f"/v2/faces/{items['face']}", f"/v2/faces/{items['done']}"]
    found += [f"/v2/videos/{items[n]}" for n in ("queued", "ready")]
    gone = [f"/v2/replicas/{items['deleted']}", f"/v2/videos/{items['video deleted']}"]
    gone += ["/v2/replicas/r0000000000", "/v2/faces/nope", "/v2/videos/0000000000"]
    for path in found + gone:
        for lean_query, route_query, verbose in QUERIES:
            lean.clear()
            fast = client.get(path + lean_query)
            slash = client.get(path + "/" + lean_query)
            routed = client.get(path + route_query)
            assert lean == [True, True, False], path  # the first two were answered lean
            for response in (fast, slash):
                assert response.status_code == routed.status_code
                assert response.headers.items() == routed.headers.items()
                assert response.content == routed.content
            if path in found:
                assert fast.status_code == 200
                assert fast.content == _orm_body(runtime, path, verbose)
            else:
                assert fast.status_code == 404
                name = "video_id" if "/videos/" in path else "replica_id"
                assert fast.json() == {"error": f"Invalid {name}", "message": f"Invalid {name}"}
    assert client.get(f"/v2/replicas/{items['done']}").json()["thumbnail_video_url"]


def test_a_bad_key_is_tavus_401_on_every_read(
    client: TestClient, items: dict[str, str], lean: list[bool]
) -> None:
    for path in (f"/v2/replicas/{items['done']}", f"/v2/faces/{items['face']}"):
        for headers in ({"x-api-key": "wrong"}, {"x-api-key": ""}, {"x-api-key": API_KEY + "x"}):
            response = client.get(path, headers=headers)
            assert response.status_code == 401
            assert response.content == b'{"message":"Invalid access token"}'
    client.headers.pop("x-api-key")
    response = client.get(f"/v2/videos/{items['queued']}")
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid access token"}
    assert not any(lean)


def test_odd_reads_are_left_to_the_routes(
    client: TestClient, runtime: Runtime, items: dict[str, str], lean: list[bool]
) -> None:
    path = f"/v2/replicas/{items['done']}"
    too_big = b"x" * (runtime.settings.max_body_bytes + 1)
    assert client.request("GET", path, content=too_big).status_code == 413  # BodyGuard
    assert client.get("/v2/replicas/r%00").status_code == 400  # BodyGuard: a NUL
    response = client.get(path, params={"verbose": "maybe"})
    assert response.status_code == 400 and "verbose" in response.json()["error"]
    assert client.get(path, params={"verbose": "true", "x": "1"}).status_code == 200
    assert client.get(f"{path}/thumbnail.mp4").status_code == 404  # no file: another route
    assert client.get("/v2/replicas/a%2Fb").status_code == 404
    assert not any(lean)


def test_a_read_sees_the_last_write(client: TestClient, items: dict[str, str]) -> None:
    """The held connection reads in autocommit: no snapshot outlives a read."""
    path = f"/v2/replicas/{items['done']}"
    for name in ("First", "Second"):
        client.patch(f"{path}/name", json={"replica_name": name})
        assert client.get(path).json()["replica_name"] == name
        listed = client.get("/v2/replicas", params={"replica_ids": items["done"]}).json()
        assert listed["data"][0]["replica_name"] == name
    client.delete(path)
    assert client.get(path).status_code == 404
    assert client.get("/v2/replicas", params={"replica_ids": items["done"]}).json() == {
        "data": [],
        "total_count": 0,
    }


def test_the_held_connection_comes_back_after_a_disconnect(
    client: TestClient, items: dict[str, str]
) -> None:
    path = f"/v2/videos/{items['queued']}"
    assert client.get(path).status_code == 200
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    held = runtime.reads._connection
    assert held is not None
    held.connection.dbapi_connection.close()  # type: ignore[union-attr]
    assert client.get(path).json()["video_id"] == items["queued"]
