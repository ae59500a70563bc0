"""The whole product from outside: `likeness serve` (API + embedded Celery worker on SQLite),
real HTTP downloads and callbacks, then `likeness render` on the trained replica."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from likeness.media.audio import read_audio, to_int16
from likeness.training.stages.validate import ORDER
from likeness.webhooks.signing import verify

from ..conftest import API_KEY, FIXTURES, Receiver

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serve(data: Path, *args: str, **extra_env: str) -> Iterator[tuple[str, dict[str, str], int]]:
    """`likeness serve ARGS` on a free port; yields (base URL, its environment, its pid).
    Its output goes to ``data / "serve.log"``."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        LIKENESS_DATA_DIR=str(data / "data"),
        LIKENESS_API_KEY=API_KEY,
        LIKENESS_ALLOW_PRIVATE_URLS="true",
        LIKENESS_WEBHOOK_RETRY_DELAYS_S="[0.5, 1]",
        GLOG_minloglevel="2",
        LIKENESS_CONSENT_POLICY="off",  # the plumbing clips carry no spoken consent
        LIKENESS_API_WORKERS="1",  # serve's children: the job worker and the media worker
    )
    env.update(extra_env)
    env.pop("LIKENESS_PUBLIC_URL", None)  # serve derives it from --port: the tests fetch it
    log = (data / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "likeness", "serve", "--port", str(port), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/v2/replicas", headers={"x-api-key": API_KEY}).is_success:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (data / "serve.log").read_text()
            assert time.monotonic() < deadline, "likeness serve did not come up"
            time.sleep(0.3)
        yield base, env, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    with _serve(tmp_path_factory.mktemp("serve")) as (base, env, _pid):
        yield base, env


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _job_worker(pid: int) -> int:
    """serve's embedded job worker (`likeness worker`; the media worker is its sibling)."""
    (worker,) = [
        c
        for c in _children(pid)
        if Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0")[-2:] == [b"worker", b""]
    ]
    return worker


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("workers, verbose", [(2, False), (1, True)])
def test_serve_runs_an_api_process_per_worker_and_logs_requests_only_if_verbose(
    tmp_path: Path, workers: int, verbose: bool
) -> None:
    """LIKENESS_API_WORKERS API processes answer (an upload's URL is the --port one in each),
    the access log is on only with --verbose, and nothing is left running after SIGTERM."""
    args = ["--no-embedded-worker", *(["--verbose"] if verbose else [])]
    with _serve(tmp_path, *args, LIKENESS_API_WORKERS=str(workers)) as (base, _env, pid):
        children = _children(pid)
        spawned = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(spawned) == (workers if workers > 1 else 0), children
        with httpx.Client(base_url=base, headers={"x-api-key": API_KEY}) as client:
            for _ in range(2 * workers):  # each connection may land on another process
                with httpx.Client(base_url=base, headers={"x-api-key": API_KEY}) as fresh:
                    sent = fresh.post("/v2/uploads", files={"file": ("a.txt", b"hi")})
                assert sent.json()["url"].startswith(f"{base}/v2/uploads/"), sent.text
                assert client.get(sent.json()["url"]).content == b"hi"
    deadline = time.monotonic() + 15
    while not all(_gone(c) for c in [pid, *children]):
        assert time.monotonic() < deadline, [c for c in children if not _gone(c)]
        time.sleep(0.2)
    log = (tmp_path / "serve.log").read_text()
    assert ('"GET /v2/replicas HTTP/1.1" 200' in log) == verbose, log


def test_serve_api_processes_die_with_a_killed_serve(tmp_path: Path) -> None:
    """SIGKILL gives serve no chance to stop uvicorn's API processes: each asked the kernel
    to end it with its parent, so none keeps the port (and the database) after it."""
    args = ["--no-embedded-worker", "--no-embedded-media-worker"]
    with _serve(tmp_path, *args, LIKENESS_API_WORKERS="2") as (_base, _env, pid):
        spawned = [
            c for c in _children(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
        ]
        assert len(spawned) == 2, _children(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not all(_gone(c) for c in spawned):
            assert time.monotonic() < deadline, [c for c in spawned if not _gone(c)]
            time.sleep(0.2)


def _render(env: dict[str, str], replica_id: str, flag: str, value: str, output: Path) -> None:
    """`likeness render` as a user runs it."""
    command = [
        sys.executable,
        "-m",
        "likeness",
        "render",
        "--replica",
        replica_id,
        flag,
        value,
        "--output",
        str(output),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _wait_done(client: httpx.Client, replica_id: str, timeout_s: float = 300) -> list[dict]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/v2/replicas/{replica_id}").json()
        seen.append(body)
        if body["status"] != "started":
            return seen
        time.sleep(0.3)
    raise AssertionError(f"still training after {timeout_s} s: {seen[-1]}")


def _wait_calls(
    receiver: Receiver, count: int, timeout_s: float = 30, log: Path | None = None
) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while len(receiver.received()) < count:
        assert time.monotonic() < deadline, f"no callback arrived\n{_tail(log)}"
        time.sleep(0.2)
    return receiver.received()


def _tail(log: Path | None) -> str:
    """The end of serve's log (what its workers said), for a failure's message."""
    return "" if log is None else log.read_text(errors="replace")[-4000:]


def test_train_then_render(
    server: tuple[str, dict[str, str]],
    media_server: tuple[str, Path],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    base, env = server
    files, _ = media_server
    with httpx.Client(base_url=base, headers={"x-api-key": API_KEY}, timeout=30) as client:
        created = client.post(
            "/v2/replicas",
            json={
                "train_video_url": f"{files}/talking_unsynced.mp4",
                "replica_name": "e2e",
                "callback_url": receiver.url,
            },
        )
        assert created.status_code == 200, created.text
        replica_id = created.json()["replica_id"]
        states = _wait_done(client, replica_id)
        final = states[-1]
        assert final["status"] == "completed", final
        assert final["training_progress"] == "100/100"
        progress = [int(s["training_progress"].split("/")[0]) for s in states]
        assert progress == sorted(progress) and len(set(progress)) > 2
        verbose = client.get(f"/v2/replicas/{replica_id}", params={"verbose": True}).json()
        assert verbose["replica_type"] == "user"
        assert [c["check"] for c in verbose["training_checks"] if not c["passed"]] == []
        assert [c["check"] for c in verbose["training_checks"]] == list(ORDER)
        quality = verbose["quality_report"]
        for system in ("replica", "frozen_mouth", "audio_shifted_1s"):
            assert 0.0 <= quality[system]["mouth_landmark_distance"] < 0.5, quality
            assert quality[system]["face_similarity"] > 0.5, quality  # the same person
        thumbnail = client.get(final["thumbnail_video_url"])
        assert thumbnail.status_code == 200 and thumbnail.content[4:8] == b"ftyp"

    (call,) = _wait_calls(receiver, 1)
    assert call["json"] == {"replica_id": replica_id, "status": "ready"}

    with httpx.Client(base_url=base, headers={"x-api-key": API_KEY}, timeout=30) as client:
        video_id = client.post(
            "/v2/videos",
            json={
                "replica_id": replica_id,
                "script": "Hello from the worker.",
                "callback_url": receiver.url,
            },
        ).json()["video_id"]
        deadline = time.monotonic() + 120
        while (video := client.get(f"/v2/videos/{video_id}").json())["status"] in (
            "queued",
            "generating",
        ):
            assert time.monotonic() < deadline, video
            time.sleep(0.3)
        assert video["status"] == "ready", video
        assert httpx.get(video["download_url"]).content[4:8] == b"ftyp"
    video_call = _wait_calls(receiver, 2)[1]["json"]
    assert video_call["video_id"] == video_id and video_call["status"] == "ready"
    secret = (Path(env["LIKENESS_DATA_DIR"]) / "webhook_secret").read_text().strip()
    verify(secret, call["body"], call["headers"])

    # Say one second of silence, a real LibriVox sentence, one second of silence.
    speech, rate = read_audio(FIXTURES / "librivox_0880.wav")
    silence = np.zeros(rate, np.float32)
    audio_path = tmp_path / "say.wav"
    with wave.open(str(audio_path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(to_int16(np.concatenate([silence, speech, silence])).tobytes())
    output = tmp_path / "out.mp4"
    _render(env, replica_id, "--audio", str(audio_path), output)
    with av.open(str(output)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (400, 300)
        assert video.codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = sum(1 for _ in container.decode(video))
    duration_s = (len(speech) + 2 * rate) / rate
    assert frames == int(np.ceil(duration_s * 25))

    spoken = tmp_path / "spoken.mp4"
    _render(
        env, replica_id, "--text", "Hello. I am a replica, and I speak with my own face.", spoken
    )
    with av.open(str(spoken)) as container:
        audio = container.streams.audio[0]
        seconds = sum(f.samples for f in container.decode(audio)) / audio.codec_context.sample_rate
    assert 2.0 < seconds < 8.0  # Piper really spoke the sentence


DAMAGED = (
    "There was an error processing your training video file. Please check your video format "
    "and make sure it not damaged and could be played correctly."
)
NO_FACE = (
    "There was an error processing your training video. Face not detected because it appeared "
    "too small in the frame or it was occluded. Please edit or record a new video and ensure "
    "your face is clearly visible and occupies a larger portion of the frame."
)


def test_bad_inputs_fail_with_tavus_messages_and_the_service_keeps_serving(
    server: tuple[str, dict[str, str]], media_server: tuple[str, Path], receiver: Receiver
) -> None:
    base, _ = server
    files, root = media_server
    (root / "truncated.mp4").write_bytes((root / "talking_unsynced.mp4").read_bytes()[:100_000])
    (root / "notes.mp4").write_bytes(b"just some text, renamed\n" * 50)
    (root / "empty.mp4").write_bytes(b"")
    cases = {
        f"{files}/muted_b.mp4": "There was an error processing the audio in the provided "
        "training video file.",
        f"{files}/single_face.mp4": "There was an issue processing your training video. The "
        "video provided does not meet the minimum duration requirement for training",
        "http://127.0.0.1:9/unreachable.mp4": "There was an issue downloading your video "
        "file. Please ensure that the link you provided is correct and try again",
        f"{files}/world.mp4": NO_FACE,
        f"{files}/withcover.mp3": DAMAGED,
        f"{files}/truncated.mp4": DAMAGED,
        f"{files}/notes.mp4": DAMAGED,
        f"{files}/empty.mp4": DAMAGED,
    }
    with httpx.Client(base_url=base, headers={"x-api-key": API_KEY}, timeout=30) as client:
        ids = {}
        for url in cases:
            response = client.post(
                "/v2/replicas", json={"train_video_url": url, "callback_url": receiver.url}
            )
            ids[response.json()["replica_id"]] = cases[url]
        for replica_id, message in ids.items():
            final = _wait_done(client, replica_id, timeout_s=120)[-1]
            assert final["status"] == "error"
            assert final["error_message"] == message
        assert client.get("/v2/replicas").status_code == 200
    calls = _wait_calls(receiver, len(cases))
    by_id = {c["json"]["replica_id"]: c["json"] for c in calls}
    for replica_id, message in ids.items():
        assert by_id[replica_id] == {
            "replica_id": replica_id,
            "status": "error",
            "error_message": message,
        }


def test_a_killed_worker_is_restarted_and_its_job_resumes(
    tmp_path_factory: pytest.TempPathFactory, media_server: tuple[str, Path]
) -> None:
    files, _ = media_server
    data = tmp_path_factory.mktemp("kill")
    with (
        _serve(data, LIKENESS_JOB_LEASE_S="3") as (base, _env, pid),
        httpx.Client(base_url=base, headers={"x-api-key": API_KEY}, timeout=30) as client,
    ):
        replica_id = client.post(
            "/v2/replicas", json={"train_video_url": f"{files}/talking_unsynced.mp4"}
        ).json()["replica_id"]
        deadline = time.monotonic() + 120
        while True:  # wait until it is tracking faces, then kill the worker mid-job
            body = client.get(f"/v2/replicas/{replica_id}").json()
            if int(body["training_progress"].split("/")[0]) >= 20:
                break
            assert body["status"] == "started" and time.monotonic() < deadline, body
            time.sleep(0.05)
        worker = _job_worker(pid)
        os.kill(worker, signal.SIGKILL)
        final = _wait_done(client, replica_id, timeout_s=180)[-1]
        assert final["status"] == "completed", final
        restarted = _job_worker(pid)
        assert restarted != worker
    with sqlite3.connect(data / "data" / "likeness.sqlite") as db:
        (attempts,) = db.execute(
            "SELECT attempts FROM replicas WHERE id = ?", (replica_id,)
        ).fetchone()
    assert attempts == 2


def test_a_callback_retry_held_by_a_killed_worker_is_still_delivered(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> None:
    """The retry's countdown message lives in the worker's memory; the worker is killed
    holding it. The row says when it was due, so the restarted worker's sweep re-sends it."""
    receiver.fail_first = 1
    data = tmp_path_factory.mktemp("kill-callback")
    database = data / "data" / "likeness.sqlite"
    # The budgets below are safety nets, not claims (speed is never asserted): each spans a
    # job worker's cold start (serve starts one, and restarts the killed one), which on a
    # loaded machine takes tens of seconds; the same budgets as the killed-job test above.
    with (
        _serve(data, LIKENESS_JOB_LEASE_S="3", LIKENESS_WEBHOOK_RETRY_DELAYS_S="[3]") as (
            base,
            _env,
            pid,
        ),
        httpx.Client(base_url=base, headers={"x-api-key": API_KEY}, timeout=30) as client,
    ):
        replica_id = client.post(  # fails at once (nothing listens there): one callback
            "/v2/replicas",
            json={"train_video_url": "http://127.0.0.1:9/gone.mp4", "callback_url": receiver.url},
        ).json()["replica_id"]
        deadline = time.monotonic() + 120
        while True:  # the first attempt failed and the worker took its retry: kill it
            with sqlite3.connect(database) as db:
                (recorded,) = db.execute("SELECT count(*) FROM webhook_attempts").fetchone()
            with sqlite3.connect(data / "data" / "broker.sqlite") as db:
                (waiting,) = db.execute(
                    "SELECT count(*) FROM kombu_message WHERE visible = 1"
                ).fetchone()
            if recorded and not waiting:
                break
            assert time.monotonic() < deadline, f"no callback attempt\n{_tail(data / 'serve.log')}"
            time.sleep(0.05)
        os.kill(_job_worker(pid), signal.SIGKILL)
        calls = _wait_calls(receiver, 2, timeout_s=180, log=data / "serve.log")
        # The receiver holds the POST before the worker has its answer, let alone has written
        # it down: wait for the row to settle before serve (and its worker) stop.
        deadline = time.monotonic() + 60
        while True:
            with sqlite3.connect(database) as db:
                rows = db.execute("SELECT status, attempts FROM webhook_events").fetchall()
            if all(status != "pending" for status, _ in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert calls[1]["json"]["replica_id"] == replica_id
    assert calls[1]["headers"]["webhook-id"] == calls[0]["headers"]["webhook-id"]
    assert rows == [("delivered", 2)], (rows, len(calls), _tail(data / "serve.log"))
