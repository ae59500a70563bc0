"""The data directory and everything in it are owner-only (it holds faces and voices)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from likeness.app import create_app
from likeness.cli.main import app
from likeness.config import Settings
from likeness.runtime import build_runtime

from .conftest import FIXTURES


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default (022: files readable by everyone), restored afterwards."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def readable_by_others(root: Path) -> list[str]:
    found = [] if stat.S_IMODE(root.stat().st_mode) & 0o077 == 0 else [str(root)]
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
                found.append(f"{path} {oct(stat.S_IMODE(os.stat(path).st_mode))}")
    return found


def test_the_data_dir_and_its_files_are_owner_only(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)  # made by hand before the first start: tightened too
    settings = Settings(data_dir=data, consent_policy="off")
    runtime = build_runtime(settings)
    try:
        with TestClient(create_app(runtime=runtime)) as client:
            key = (data / "api_key").read_text().strip()
            clip = FIXTURES / "short_talk.mp4"
            url = client.post(
                "/v2/uploads",
                files={"file": (clip.name, clip.read_bytes())},
                headers={"x-api-key": key},
            ).json()["url"]
            created = client.post(
                "/v2/replicas", json={"train_video_url": url}, headers={"x-api-key": key}
            )
            assert created.status_code == 200
    finally:
        runtime.close()
    names = {p.name for p in data.rglob("*")}
    assert {"likeness.sqlite", "broker.sqlite", "api_key", "short_talk.mp4"} <= names
    assert readable_by_others(data) == []


def test_likeness_check_makes_its_data_dir_owner_only(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(data))
    clip = tmp_path / "notes.mp4"
    clip.write_bytes(b"just some text, renamed\n" * 50)
    result = CliRunner().invoke(app, ["check", str(clip)])
    assert result.exit_code == 1  # not a video; the scratch folder was made all the same
    assert readable_by_others(data) == []
