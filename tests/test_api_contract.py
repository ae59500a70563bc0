"""The wire contract of /v2/replicas, /v2/faces and /v2/uploads (spec sections 1 and 2)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from likeness.runtime import Runtime

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
VIDEO = {"train_video_url": "https://example.com/video.mp4", "replica_name": "Rio"}


def test_every_route_needs_the_api_key(client: TestClient) -> None:
    for method, path in [
        ("get", "/v2/replicas"),
        ("post", "/v2/replicas"),
        ("get", "/v2/faces/r123"),
        ("post", "/v2/uploads"),
    ]:
        response = client.request(method, path, headers={"x-api-key": "wrong"})
        assert response.status_code == 401
        assert response.json() == {"message": "Invalid access token"}
    response = client.get("/v2/replicas", headers={"x-api-key": ""})
    assert response.status_code == 401


def test_create_answers_started_with_a_tavus_id(client: TestClient) -> None:
    response = client.post("/v2/replicas", json=VIDEO)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"replica_id", "status"}
    assert body["status"] == "started"
    assert re.fullmatch(r"r[0-9a-f]{10}", body["replica_id"])


def test_get_one_has_tavus_fields(client: TestClient) -> None:
    replica_id = client.post("/v2/replicas", json=VIDEO).json()["replica_id"]
    body = client.get(f"/v2/replicas/{replica_id}").json()
    assert body["replica_id"] == replica_id
    assert body["replica_name"] == "Rio"
    assert body["status"] == "started"
    assert body["training_progress"] == "0/100"
    assert body["error_message"] is None
    assert body["model_name"] == "phoenix-4"
    assert body["thumbnail_video_url"] is None
    assert ISO_MS.match(body["created_at"]) and ISO_MS.match(body["updated_at"])
    assert "replica_type" not in body
    verbose = client.get(f"/v2/replicas/{replica_id}", params={"verbose": "true"}).json()
    assert verbose["replica_type"] == "user"


def test_faces_alias_answers_under_face_names(client: TestClient) -> None:
    created = client.post(
        "/v2/faces", json={"train_video_url": VIDEO["train_video_url"], "face_name": "Lucy"}
    ).json()
    assert set(created) == {"face_id", "status"}
    face = client.get(f"/v2/faces/{created['face_id']}").json()
    assert face["face_id"] == created["face_id"] and face["face_name"] == "Lucy"
    assert "replica_id" not in face
    # The same object under the legacy name.
    assert client.get(f"/v2/replicas/{created['face_id']}").json()["replica_name"] == "Lucy"


def test_model_names(client: TestClient) -> None:
    for name in ("phoenix-3", "phoenix-4", "phoenix-4.5"):
        replica_id = client.post("/v2/replicas", json=VIDEO | {"model_name": name}).json()[
            "replica_id"
        ]
        assert client.get(f"/v2/replicas/{replica_id}").json()["model_name"] == name
    response = client.post("/v2/replicas", json=VIDEO | {"model_name": "phoenix-9"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == body["message"] and "model_name" in body["error"]


def test_bad_requests_are_400_with_error_and_message(client: TestClient) -> None:
    for payload in (
        {},
        {"train_video_url": "not a url"},
        {"train_video_url": "ftp://x/y.mp4"},
        VIDEO | {"callback_url": "nope"},
        {"train_image_url": "https://x/y.png"},
    ):
        response = client.post("/v2/replicas", json=payload)
        assert response.status_code == 400, payload
        body = response.json()
        assert body["error"] and body["error"] == body["message"]
    response = client.post(
        "/v2/replicas", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert client.post("/v2/replicas", json={}).json()["error"] == "Invalid train_video_url"


def test_unknown_ids_are_404(client: TestClient) -> None:
    for method, path in [
        ("get", "/v2/replicas/r0000000000"),
        ("delete", "/v2/replicas/rnope"),
        ("get", "/v2/faces/rnope"),
        ("get", "/v2/uploads/u000000000000"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.json()["error"] == response.json()["message"]
    response = client.patch("/v2/replicas/rnope/name", json={"replica_name": "x"})
    assert response.status_code == 404


def test_list_pages_filters_and_counts(client: TestClient) -> None:
    ids = [client.post("/v2/replicas", json=VIDEO).json()["replica_id"] for _ in range(5)]
    body = client.get("/v2/replicas", params={"limit": 2, "page": 1}).json()
    assert body["total_count"] == 5 and len(body["data"]) == 2
    page3 = client.get("/v2/replicas", params={"limit": 2, "page": 3}).json()
    assert len(page3["data"]) == 1
    seen = {
        r["replica_id"]
        for p in (1, 2, 3)
        for r in client.get("/v2/replicas", params={"limit": 2, "page": p}).json()["data"]
    }
    assert seen == set(ids)
    chosen = client.get("/v2/replicas", params={"replica_ids": f"{ids[0]},{ids[3]}"}).json()
    assert {r["replica_id"] for r in chosen["data"]} == {ids[0], ids[3]}
    assert chosen["total_count"] == 2
    assert client.get("/v2/replicas", params={"replica_type": "system"}).json() == {
        "data": [],
        "total_count": 0,
    }
    assert "replica_type" in client.get("/v2/replicas", params={"verbose": True}).json()["data"][0]
    faces = client.get("/v2/faces").json()
    assert "face_id" in faces["data"][0]


def test_trailing_slashes_work_without_redirects(client: TestClient) -> None:
    response = client.post("/v2/replicas/", json=VIDEO, follow_redirects=False)
    assert response.status_code == 200
    replica_id = response.json()["replica_id"]
    response = client.get(f"/v2/replicas/{replica_id}/", follow_redirects=False)
    assert response.status_code == 200
    assert client.get("/v2/replicas/", follow_redirects=False).status_code == 200


def test_rename_and_soft_delete(client: TestClient) -> None:
    replica_id = client.post("/v2/replicas", json=VIDEO).json()["replica_id"]
    assert (
        client.patch(
            f"/v2/replicas/{replica_id}/name", json={"replica_name": "Renamed"}
        ).status_code
        == 200
    )
    assert client.get(f"/v2/replicas/{replica_id}").json()["replica_name"] == "Renamed"
    assert client.patch(f"/v2/replicas/{replica_id}/name", json={}).status_code == 400
    assert client.delete(f"/v2/replicas/{replica_id}").status_code == 200
    assert client.get(f"/v2/replicas/{replica_id}").status_code == 404
    assert client.get("/v2/replicas").json()["total_count"] == 0


def test_hard_delete_removes_every_file(client: TestClient, runtime: Runtime) -> None:
    replica_id = client.post("/v2/replicas", json=VIDEO).json()["replica_id"]
    work = runtime.storage.ensure_dir(f"replicas/{replica_id}")
    (work / "source.media").write_bytes(b"training video")
    (work / "bundle").mkdir()
    (work / "bundle" / "bank.bin").write_bytes(b"x")
    assert client.delete(f"/v2/replicas/{replica_id}", params={"hard": "true"}).status_code == 200
    assert not work.exists()


def test_upload_round_trip(client: TestClient) -> None:
    response = client.post("/v2/uploads", files={"file": ("my clip.mp4", b"\x00\x01abc")})
    assert response.status_code == 200
    body = response.json()
    assert body["filename"] == "my_clip.mp4" and body["size_bytes"] == 5
    assert body["url"].endswith(f"/v2/uploads/{body['upload_id']}")
    path = body["url"].split("://", 1)[1].split("/", 1)[1]
    assert client.get("/" + path).content == b"\x00\x01abc"
    assert client.post("/v2/uploads", files={"file": ("e.mp4", b"")}).status_code == 400


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v2/replicas",
        "/v2/replicas/{replica_id}",
        "/v2/replicas/{replica_id}/name",
        "/v2/faces",
        "/v2/faces/{replica_id}",
        "/v2/uploads",
    ):
        assert path in paths


def test_hard_delete_removes_the_uploaded_training_video(
    client: TestClient, runtime: Runtime
) -> None:
    url = client.post("/v2/uploads", files={"file": ("me.mp4", b"video")}).json()["url"]
    first = client.post("/v2/replicas", json={"train_video_url": url}).json()["replica_id"]
    second = client.post("/v2/replicas", json={"train_video_url": url}).json()["replica_id"]
    upload_path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    client.delete(f"/v2/replicas/{first}", params={"hard": "true"})
    assert client.get(upload_path).status_code == 200  # the second replica still uses it
    client.delete(f"/v2/replicas/{second}", params={"hard": "true"})
    assert client.get(upload_path).status_code == 404
    assert not list((runtime.storage.root / "uploads").iterdir())
