"""``likeness replica`` against a real server on loopback (uvicorn in a thread, real HTTP):
the client never creates a secret, finds the server's key or says where it looked, and sends
--type and --consent-video. (``--wait`` on a failed training: tests/e2e/test_cli.py.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from likeness.app import create_app
from likeness.cli.main import app
from likeness.config import Settings
from likeness.models import Replica
from likeness.runtime import Runtime, build_runtime

from .conftest import FIXTURES

runner = CliRunner()


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no data directory in it, as the current directory; no key in the env."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in ("LIKENESS_API_KEY", "LIKENESS_DATA_DIR", "LIKENESS_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[str, Runtime]]:
    """The app on a free loopback port, with the key it generated itself (kept on disk)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    runtime = build_runtime(settings.model_copy(update={"api_key": None, "public_url": base}))
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


def test_without_a_key_the_client_says_where_it_looked_and_creates_nothing(
    elsewhere: Path,
) -> None:
    result = runner.invoke(app, ["replica", "get", "r0123456789"])
    assert result.exit_code == 1
    assert "LIKENESS_API_KEY" in result.output
    assert str(elsewhere / "likeness-data" / "api_key") in result.output
    assert list(elsewhere.iterdir()) == []  # no data directory, no minted key


def test_the_client_reads_the_servers_key_and_sends_type_and_consent_video(
    elsewhere: Path, served: tuple[str, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, runtime = served
    monkeypatch.setenv("LIKENESS_PUBLIC_URL", base)
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(runtime.settings.resolved_data_dir))
    result = runner.invoke(
        app,
        [
            "replica",
            "create",
            str(FIXTURES / "short_talk.mp4"),
            "--name",
            "Rio",
            "--type",
            "non_human",
            "--consent-video",
            str(FIXTURES / "talking_unsynced.mp4"),
        ],
    )
    assert result.exit_code == 0, result.output
    replica_id = result.stdout.strip()
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None
        assert row.name == "Rio" and row.properties.get("non_human") is True
        assert row.train_video_url.startswith(f"{base}/v2/uploads/")
        assert row.consent_video_url and row.consent_video_url.startswith(f"{base}/v2/uploads/")
        assert row.consent_video_url != row.train_video_url
    assert list(elsewhere.iterdir()) == []


def test_a_refused_key_says_where_it_came_from(
    elsewhere: Path, served: tuple[str, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = served
    monkeypatch.setenv("LIKENESS_PUBLIC_URL", base)
    monkeypatch.setenv("LIKENESS_API_KEY", "not-the-key")
    result = runner.invoke(app, ["replica", "get", "r0123456789"])
    assert result.exit_code == 1
    assert f"{base} refused the API key from LIKENESS_API_KEY" in result.output


def test_an_unknown_type_is_refused_before_anything_is_sent(elsewhere: Path) -> None:
    result = runner.invoke(app, ["replica", "create", "x.mp4", "--type", "robot"])
    assert result.exit_code == 2
    assert "non_human" in result.output
