"""Real Tavus clients from PyPI, unchanged, pointed at a likeness server on loopback (uvicorn
in a thread, real HTTP) by their own base-URL settings: every REST call they make for
conversations and pals gets through, or a 400 that says what to change.

- tavus-cli 0.11.0 (the ``tavus`` command): ``TAVUS_PUBLIC_API_BASE_URL``.
- astrocyte-integration-tavus 0.22.0: ``TavusClient(base_url=…)``.
- livekit-plugins-tavus 1.8.9: ``TavusAPI(api_url=…)``. It needs protobuf>=5 and mediapipe
  0.10.14 needs protobuf<5, so it cannot share likeness's environment: it runs in its own
  (``make clients`` builds ``.venv-livekit``), and this test skips, saying so, without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from likeness.app import create_app
from likeness.config import Settings
from likeness.runtime import Runtime, build_runtime

from .conftest import API_KEY
from .test_conversations import make_replica

ROOT = Path(__file__).resolve().parents[1]
LIVEKIT_PYTHON = Path(os.environ.get("LIKENESS_LIVEKIT_PYTHON", ROOT / ".venv-livekit/bin/python"))


@pytest.fixture
def server(settings: Settings) -> Iterator[tuple[str, Runtime]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    runtime = build_runtime(
        settings.model_copy(update={"public_url": base, "max_conversations": 10})
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime=runtime), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    yield base, runtime
    server.should_exit = True
    thread.join(timeout=10)
    runtime.close()


# -- tavus-cli --------------------------------------------------------------------------------


def _tavus(base: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``tavus`` command as its users run it, configured by its environment."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TAVUS_API_KEY": API_KEY,
        "TAVUS_PUBLIC_API_BASE_URL": f"{base}/v2",
        "COLUMNS": "10000",  # rich wraps its JSON at the terminal's width
        "NO_COLOR": "1",
    }
    command = [str(Path(sys.executable).parent / "tavus"), *args]
    return subprocess.run(
        command, cwd=home, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _tavus_json(base: str, home: Path, *args: str) -> Any:
    result = _tavus(base, home, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def test_tavus_cli(server: tuple[str, Runtime], tmp_path: Path) -> None:
    base, runtime = server
    face = make_replica(runtime)

    doctor = _tavus(base, tmp_path, "doctor")  # probes GET /v2/pals?limit=1 and /v2/faces
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "Network check passed" in doctor.stdout

    created = _tavus_json(
        base, tmp_path, "pal", "create", "--name", "Coach", "--system-prompt", "Be kind.",
        "--face-id", face, "--greeting", "Hi!", "--document-tag", "faq",
    )  # fmt: skip
    pal_id = created["pal_id"]
    assert created["pal_name"] == "Coach"
    echo = _tavus_json(
        base, tmp_path, "pal", "create", "--name", "Echo", "--pipeline-mode", "echo",
        "--face-id", face,
    )  # fmt: skip

    listed = _tavus_json(base, tmp_path, "pal", "list", "--json")  # page=0
    assert {p["pal_id"] for p in listed["data"]} == {pal_id, echo["pal_id"]}
    got = _tavus_json(base, tmp_path, "pal", "get", pal_id)
    assert got["default_face_id"] == face and got["document_tags"] == ["faq"]
    # tavus-cli adds its default LLM to a full pal; likeness keeps layers as given.
    assert got["layers"]["llm"]["model"]

    patched = _tavus_json(
        base, tmp_path, "pal", "patch", pal_id, "--path", "/pal_name", "--value", "Head Coach"
    )
    assert patched["pal_name"] == "Head Coach"

    conversation = _tavus_json(
        base, tmp_path, "conversation", "create", "--pal-id", pal_id, "--face-id", face,
        "--name", "Practice",
    )  # fmt: skip
    assert conversation["status"] == "active"
    assert conversation["persona_id"] == pal_id and conversation["replica_id"] == face
    _tavus_json(base, tmp_path, "conversation", "end", conversation["conversation_id"])

    chat = _tavus_json(
        base, tmp_path, "chat", "start", "--pal-id", pal_id, "--greeting", "Hello!"
    )  # {"persona_id", "chat": true, "custom_greeting"}
    assert chat["status"] == "active" and chat["conversation_url"].startswith(base)
    _tavus_json(base, tmp_path, "chat", "end", chat["conversation_id"])

    _tavus_json(base, tmp_path, "pal", "delete", echo["pal_id"])
    left = _tavus_json(base, tmp_path, "pal", "list", "--json")
    assert [p["pal_id"] for p in left["data"]] == [pal_id]


def test_tavus_cli_gets_told_what_to_change(
    server: tuple[str, Runtime], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command prints only the status; its SDK (the same client) carries the body."""
    from tavus_mcp.sdk.client.http import TavusClient
    from tavus_mcp.sdk.errors import TavusApiError

    base, _runtime = server
    # A pal without a face: Tavus requires default_face_id on /v2/pals, and so do we.
    refused = _tavus(base, tmp_path, "pal", "create", "--pipeline-mode", "echo")
    assert refused.returncode == 1 and "failed with 400" in refused.stdout

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TAVUS_API_KEY", API_KEY)
    monkeypatch.setenv("TAVUS_PUBLIC_API_BASE_URL", f"{base}/v2")

    async def create(body: dict[str, Any]) -> Any:
        async with TavusClient.from_env(surface="cli") as client:
            return await client.pals.create(body)

    with pytest.raises(TavusApiError) as error:
        asyncio.run(create({"pal_name": "Echo", "pipeline_mode": "echo"}))
    assert error.value.status_code == 400
    assert error.value.body["error"].startswith("default_face_id is required on /v2/pals")
    with pytest.raises(TavusApiError) as error:
        asyncio.run(create({"pipeline_mode": "speech-to-speech", "default_face_id": "r1"}))
    assert error.value.body["error"].startswith("pipeline_mode must be full or echo")


# -- astrocyte-integration-tavus --------------------------------------------------------------


def test_astrocyte(server: tuple[str, Runtime]) -> None:
    from astrocyte_integration_tavus.client import TavusClient

    base, runtime = server
    face = make_replica(runtime)

    async def calls() -> tuple[Any, ...]:
        import httpx

        # The conversations it reads are made as any app would: over REST.
        async with httpx.AsyncClient(base_url=base, headers={"x-api-key": API_KEY}) as http:
            ids = []
            for _ in range(3):
                response = await http.post("/v2/conversations", json={"replica_id": face})
                ids.append(response.json()["conversation_id"])
            await http.post(f"/v2/conversations/{ids[0]}/end")
        async with TavusClient(API_KEY, base_url=f"{base}/v2") as client:
            everything = await client.list_conversations()
            ended = await client.list_conversations(limit=10, page=1, status="ended")
            page_two = await client.list_conversations(limit=2, page=2)
            one = await client.get_conversation(ids[0], verbose=True)
            plain = await client.get_conversation(ids[1])
        return ids, everything, ended, page_two, one, plain

    ids, everything, ended, page_two, one, plain = asyncio.run(calls())
    assert everything["total_count"] == 3 and len(everything["data"]) == 3
    assert [c["conversation_id"] for c in ended["data"]] == [ids[0]]
    assert len(page_two["data"]) == 1
    assert one["status"] == "ended" and one["shutdown_reason"] == "end_conversation_endpoint_hit"
    assert [e["event_type"] for e in one["events"]] == ["system.shutdown"]
    assert one["transcript"] == []
    assert plain["status"] == "active" and "events" not in plain


# -- livekit-plugins-tavus --------------------------------------------------------------------

_LIVEKIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import aiohttp
    from livekit.agents import APIStatusError
    from livekit.plugins.tavus.api import TavusAPI

    base, key, face = sys.argv[1:4]

    async def main():
        out = {}
        async with aiohttp.ClientSession() as http:
            api = TavusAPI(api_key=key, api_url=base + "/v2", session=http)
            pal_id = await api.create_pal(default_face_id=face)
            out["pal_id"] = pal_id
            # What AvatarSession.start sends: its pal (or the stock one), the face and the
            # room it wants the replica to join.
            room = {"livekit_ws_url": "wss://lk.example.com", "livekit_room_token": "eyJ0"}
            for name, kwargs in (
                ("own_pal", {"pal_id": pal_id, "face_id": face}),
                ("stock_pal", {}),
            ):
                try:
                    await api.create_conversation(properties=room, **kwargs)
                    out[name] = {"status": 200}
                except APIStatusError as error:
                    out[name] = {"status": error.status_code, "body": json.loads(error.body)}
        print(json.dumps(out))

    asyncio.run(main())
    """
)


@pytest.mark.skipif(
    not LIVEKIT_PYTHON.exists(),
    reason=f"livekit-plugins-tavus needs its own environment ({LIVEKIT_PYTHON} not found; "
    "`make clients` builds it): it requires protobuf>=5, which mediapipe 0.10.14 refuses",
)
def test_livekit_plugins_tavus(server: tuple[str, Runtime], tmp_path: Path) -> None:
    base, runtime = server
    face = make_replica(runtime)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(LIVEKIT_PYTHON), "-c", _LIVEKIT_SCRIPT, base, API_KEY, face],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    pal = out["pal_id"]
    with runtime.sessions() as session:
        from likeness.models import Persona

        row = session.get(Persona, pal)
        assert row is not None and row.pipeline_mode == "echo"
        assert row.layers == {"transport": {"transport_type": "livekit"}}
        assert row.default_replica_id == face
    for case in ("own_pal", "stock_pal"):
        assert out[case]["status"] == 400
        message = out[case]["body"]["error"]
        assert message.startswith("LiveKit transport is not supported yet"), message
