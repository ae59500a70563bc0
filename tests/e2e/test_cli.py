"""A newcomer's CLI against `likeness serve`: `replica create --wait` from another folder
exits 1 with the reason when training fails, and serve's output is quiet unless --verbose."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import FIXTURES
from .test_serve import NO_FACE, _serve

pytestmark = pytest.mark.slow

NOISE = (
    "inference_feedback_manager",  # MediaPipe, from C++
    "XNNPACK delegate",  # TensorFlow Lite
    "SymbolDatabase.GetPrototype() is deprecated",  # protobuf
    "-------------- celery@",  # Celery's banner
)


@pytest.mark.parametrize("verbose", [False, True])
def test_create_wait_fails_with_the_reason_and_serve_is_quiet_unless_verbose(
    tmp_path: Path, verbose: bool
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with _serve(tmp_path, *(["--verbose"] if verbose else [])) as (base, env, _pid):
        client_env = {**env, "LIKENESS_PUBLIC_URL": base}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "likeness",
                "replica",
                "create",
                str(FIXTURES / "world.mp4"),  # a landscape: no face (MediaPipe runs on it)
                "--wait",
            ],
            cwd=elsewhere,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        replica_id = done.stdout.strip()  # printed first
        shown = subprocess.run(
            [sys.executable, "-m", "likeness", "replica", "get", replica_id, "--wait"],
            cwd=elsewhere,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert replica_id.startswith("r")
    assert f"training failed: {NO_FACE}" in done.stderr
    assert shown.returncode == 1 and json.loads(shown.stdout)["error_message"] == NO_FACE
    assert f"training failed: {NO_FACE}" in shown.stderr
    assert list(elsewhere.iterdir()) == []  # the client wrote nothing where it ran
    log = (tmp_path / "serve.log").read_text()
    noise = [line for line in NOISE if line in log]
    assert noise == (list(NOISE) if verbose else []), log
