"""/v2/personas and its alias /v2/pals (spec §6): create, get, list, delete and RFC 6902
JSON Patch, under the name the caller used."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from likeness.runtime import Runtime

from .test_conversations import make_replica

ISO_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
COMMON_KEYS = {
    "pipeline_mode",
    "system_prompt",
    "context",
    "document_ids",
    "document_tags",
    "objectives_id",
    "guardrail_ids",
    "layers",
    "created_at",
    "updated_at",
}
PERSONA_KEYS = COMMON_KEYS | {"persona_id", "persona_name", "default_replica_id"}
PAL_KEYS = COMMON_KEYS | {"pal_id", "pal_name", "default_face_id"}
LAYERS = {
    "llm": {"model": "tavus-gpt-oss", "base_url": "https://llm.example.com/v1", "api_key": "k"},
    "tts": {"tts_engine": "cartesia", "external_voice_id": "v1"},
    "transport": {"transport_type": "daily"},
}


def _refused(response: Any) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "message"}
    return str(body["error"])


def test_create_and_get_a_persona(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    created = client.post(
        "/v2/personas",
        json={
            "persona_name": "Life Coach",
            "system_prompt": "Coach kindly.",
            "context": "Ann is a runner.",
            "default_replica_id": ready,
            "document_ids": ["d1"],
            "guardrail_ids": ["g1"],
            "layers": LAYERS,
            "memories": ["ignored"],  # sent by tavus-cli; not used yet
        },
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert set(body) == {"persona_id", "persona_name", "created_at"}
    assert re.fullmatch(r"p[0-9a-f]{11}", body["persona_id"])
    assert body["persona_name"] == "Life Coach" and ISO_US.match(body["created_at"])

    persona = client.get(f"/v2/personas/{body['persona_id']}").json()
    assert set(persona) == PERSONA_KEYS
    assert persona["pipeline_mode"] == "full"
    assert persona["layers"] == LAYERS  # as given
    assert persona["default_replica_id"] == ready
    assert persona["document_ids"] == ["d1"] and persona["guardrail_ids"] == ["g1"]
    # The same object under its new name.
    pal = client.get(f"/v2/pals/{body['persona_id']}").json()
    assert set(pal) == PAL_KEYS
    assert pal["pal_id"] == body["persona_id"] and pal["default_face_id"] == ready


def test_pals_need_a_default_face(client: TestClient, runtime: Runtime) -> None:
    message = _refused(client.post("/v2/pals", json={"pal_name": "x", "pipeline_mode": "echo"}))
    assert message.startswith("default_face_id is required")
    refused = client.post("/v2/pals", json={"pipeline_mode": "echo", "default_face_id": "rnope"})
    assert _refused(refused) == "Invalid default_face_id"
    ready = make_replica(runtime)
    created = client.post(
        "/v2/pals", json={"pal_name": "Echo", "pipeline_mode": "echo", "default_face_id": ready}
    )
    assert set(created.json()) == {"pal_id", "pal_name", "created_at"}


def test_bad_personas_are_refused_clearly(client: TestClient, runtime: Runtime) -> None:
    assert "system_prompt is required" in _refused(client.post("/v2/personas", json={}))
    message = _refused(client.post("/v2/personas", json={"pipeline_mode": "speech-to-speech"}))
    assert message.startswith("pipeline_mode must be full or echo")
    layers_not_object = {"pipeline_mode": "echo", "layers": {"llm": "gpt"}}
    assert _refused(client.post("/v2/personas", json=layers_not_object)) == (
        "layers.llm must be an object"
    )
    bad_url = {"pipeline_mode": "echo", "layers": {"llm": {"base_url": "file:///etc/passwd"}}}
    assert "layers.llm.base_url" in _refused(client.post("/v2/personas", json=bad_url))
    too_many = {"pipeline_mode": "echo", "guardrail_ids": [f"g{i}" for i in range(51)]}
    assert "guardrail_ids" in _refused(client.post("/v2/personas", json=too_many))
    nulls = {
        "persona_name": None,
        "pipeline_mode": "echo",
        "context": None,
        "layers": None,
        "document_ids": None,
        "default_replica_id": None,
    }
    assert client.post("/v2/personas", json=nulls).status_code == 200


def test_a_private_llm_base_url_is_refused_unless_allowed(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"pipeline_mode": "echo", "layers": {"llm": {"base_url": "http://127.0.0.1:11434/v1"}}}
    assert client.post("/v2/personas", json=body).status_code == 200  # the tests allow it
    strict = runtime.settings.model_copy(update={"allow_private_urls": False})
    monkeypatch.setattr(runtime, "settings", strict)
    message = _refused(client.post("/v2/personas", json=body))
    assert message == "Invalid layers.llm.base_url: private and loopback addresses are not allowed"


def test_list_get_delete(client: TestClient) -> None:
    made = [
        client.post("/v2/personas", json={"persona_name": f"P{i}", "pipeline_mode": "echo"})
        .json()["persona_id"]
        for i in range(3)
    ]  # fmt: skip
    listed = client.get("/v2/personas").json()
    assert set(listed) == {"data", "total_count"} and listed["total_count"] == 3
    assert all(set(p) == PERSONA_KEYS for p in listed["data"])
    pals = client.get("/v2/pals", params={"limit": 2, "page": 0}).json()  # tavus-cli's first page
    assert len(pals["data"]) == 2 and all(set(p) == PAL_KEYS for p in pals["data"])
    assert client.get("/v2/pals", params={"limit": 2, "page": 1}).json() == pals
    assert client.get("/v2/pals", params={"limit": 1}).status_code == 200  # tavus-cli doctor
    system = client.get("/v2/personas", params={"persona_type": "system"}).json()
    assert [p["persona_id"] for p in system["data"]] == ["pb87e71797da"]

    assert client.delete(f"/v2/pals/{made[0]}").status_code == 200
    assert client.get(f"/v2/personas/{made[0]}").status_code == 404
    assert client.get(f"/v2/personas/{made[0]}").json()["error"] == "Invalid persona_id"
    assert client.get("/v2/personas").json()["total_count"] == 2


def test_the_stock_pal_is_the_default_persona(client: TestClient) -> None:
    pal = client.get("/v2/pals/pb87e71797da").json()
    assert set(pal) == PAL_KEYS
    assert pal["pipeline_mode"] == "echo" and pal["default_face_id"] is None
    assert "cannot be deleted" in _refused(client.delete("/v2/pals/pb87e71797da"))
    patch = [{"op": "replace", "path": "/pal_name", "value": "x"}]
    assert "cannot be changed" in _refused(client.patch("/v2/pals/pb87e71797da", json=patch))


def test_json_patch(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    persona_id = client.post(
        "/v2/personas",
        json={"persona_name": "Coach", "system_prompt": "Be kind.", "layers": LAYERS},
    ).json()["persona_id"]
    ops = [
        {"op": "test", "path": "/persona_name", "value": "Coach"},
        {"op": "replace", "path": "/persona_name", "value": "Head Coach"},
        {"op": "add", "path": "/layers/llm/model", "value": "my-model"},
        {"op": "remove", "path": "/layers/tts"},
        {"op": "copy", "from": "/system_prompt", "path": "/context"},
        {"op": "replace", "path": "/default_replica_id", "value": ready},
    ]
    patched = client.patch(f"/v2/personas/{persona_id}", json=ops)
    assert patched.status_code == 200, patched.text
    persona = client.get(f"/v2/personas/{persona_id}").json()
    assert patched.json() == persona
    assert persona["persona_name"] == "Head Coach" and persona["context"] == "Be kind."
    assert persona["layers"]["llm"]["model"] == "my-model" and "tts" not in persona["layers"]
    assert persona["default_replica_id"] == ready
    # On /v2/pals the paths use the new names.
    pal_ops = [{"op": "move", "from": "/pal_name", "path": "/context"}]
    assert client.patch(f"/v2/pals/{persona_id}", json=pal_ops).status_code == 200
    assert client.get(f"/v2/pals/{persona_id}").json()["context"] == "Head Coach"
    # Nothing changed: 304, as Tavus answers.
    same = [{"op": "replace", "path": "/context", "value": "Head Coach"}]
    assert client.patch(f"/v2/personas/{persona_id}", json=same).status_code == 304


def test_bad_patches_are_400s(client: TestClient) -> None:
    persona_id = client.post(
        "/v2/personas", json={"persona_name": "Coach", "system_prompt": "Be kind."}
    ).json()["persona_id"]
    url = f"/v2/personas/{persona_id}"

    failed = client.patch(url, json=[{"op": "test", "path": "/persona_name", "value": "Bob"}])
    assert _refused(failed).startswith("JSON Patch test failed")
    missing = client.patch(url, json=[{"op": "remove", "path": "/layers/nope"}])
    assert _refused(missing).startswith("Invalid JSON Patch")
    unknown = client.patch(url, json=[{"op": "add", "path": "/color", "value": "red"}])
    assert _refused(unknown) == "Invalid JSON Patch: unknown field color"
    bad_op = client.patch(url, json=[{"op": "frobnicate", "path": "/persona_name"}])
    assert _refused(bad_op).startswith("Invalid JSON Patch")
    not_a_list = client.patch(url, json={"persona_name": "Bob"})
    assert "JSON Patch (RFC 6902)" in _refused(not_a_list)
    assert "JSON Patch (RFC 6902)" in _refused(client.patch(url))  # no body at all
    # The patched persona is checked as a create would be.
    no_prompt = client.patch(url, json=[{"op": "remove", "path": "/system_prompt"}])
    assert "system_prompt" in _refused(no_prompt)
    bad_mode = client.patch(url, json=[{"op": "replace", "path": "/pipeline_mode", "value": 3}])
    assert "pipeline_mode" in _refused(bad_mode)
    assert client.get(url).json()["persona_name"] == "Coach"  # nothing was written
    gone = client.patch("/v2/personas/pnope", json=[{"op": "remove", "path": "/context"}])
    assert gone.status_code == 404
