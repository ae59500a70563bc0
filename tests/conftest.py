"""Shared fixtures: settings on a temp data dir, the app, and two real HTTP servers on
loopback (one serving media files, one receiving callbacks)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from fastapi.testclient import TestClient

from likeness.app import create_app
from likeness.config import Settings
from likeness.engines.mouthbank import MouthbankEngine, MouthbankModel
from likeness.providers.asr_sphinx import SphinxAsr, SphinxPhones
from likeness.providers.voice_process import VoiceProcess
from likeness.runtime import Runtime, build_runtime
from likeness.training import pipeline
from likeness.training.limits import Limits

FIXTURES = Path(__file__).parent / "fixtures"
API_KEY = "test-key-0123456789"

os.environ.setdefault("GLOG_minloglevel", "2")


def local_job(clip: Path, work_dir: Path, **fields: Any) -> pipeline.Job:
    """A training job for a local clip, with the short-clip limits the fixtures need."""
    return pipeline.Job(
        **{
            "replica_id": "rtest",
            "train_video_url": "http://unused.invalid/clip.mp4",
            "engine": "mouthbank",
            "work_dir": work_dir,
            "asr": SphinxAsr(),
            "phones": SphinxPhones(),
            "limits": Limits(min_duration_s=5.0),
            "resolve_upload": lambda _url: clip,
            **fields,
        }
    )


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replica's bundle, trained once by the real pipeline from a fixture clip (the live
    conversation tests share it)."""
    work = tmp_path_factory.mktemp("live")
    pipeline.run(local_job(FIXTURES / "short_talk.mp4", work))
    return work / "bundle"


@pytest.fixture(scope="session")
def model(trained: Path) -> MouthbankModel:
    return MouthbankEngine().load(trained)


@pytest.fixture(scope="session")
def voice() -> Iterator[VoiceProcess]:
    process = VoiceProcess(steady=True)  # one take per text: no check rests on a draw
    list(process.say("Ready."))  # warm: the voice and its decoder load once (seconds)
    yield process
    process.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        api_key=API_KEY,
        allow_private_urls=True,
        webhook_retry_delays_s=[0.1, 0.1],
        download_attempts=1,
        download_timeout_s=5,
        consent_policy="off",  # tests/test_consent.py covers the default, "required"
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings)
    yield rt
    rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), headers={"x-api-key": API_KEY}) as test_client:
        yield test_client


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up early (e.g. the size cap) is expected here


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Serves a temp folder (pre-filled with the fixtures) over http://127.0.0.1."""
    root = tmp_path_factory.mktemp("served")
    for item in FIXTURES.iterdir():
        (root / item.name).write_bytes(item.read_bytes())
    server = _Server(("127.0.0.1", 0), partial(_QuietFiles, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


@dataclass
class Receiver:
    url: str
    fail_first: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.calls)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An endpoint on loopback that records every POST (and can fail the first N) and GET."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"] or 0)).decode()
            rec = holder["r"]
            with rec.lock:
                rec.calls.append(
                    {
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                        "json": json.loads(body),
                    }
                )
                failing = len(rec.calls) <= rec.fail_first
            self.send_response(500 if failing else 200)
            self.end_headers()

        def do_GET(self) -> None:
            rec = holder["r"]
            with rec.lock:
                rec.calls.append({"headers": {k.lower(): v for k, v in self.headers.items()}})
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()


PUBLIC_IP = "93.184.215.14"  # a public address; the tests never connect to it


@dataclass
class Dns:
    """The system resolver, stubbed for some names: each lookup of a name takes its next
    answer (the last one repeats); other names, and address literals, resolve for real."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def answer(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Dns:
    stub = Dns()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in stub.answers:
            return real(host, port, *args, **kwargs)
        stub.lookups.append(name)
        queue = stub.answers[name]
        ips = queue.pop(0) if len(queue) > 1 else queue[0]
        if not ips:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (ip, int(port or 0), 0, 0) if ":" in ip else (ip, int(port or 0)),
            )
            for ip in ips
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return stub


def take_queued(runtime: Runtime) -> list[tuple[str, Any]]:
    """Take every message waiting in the broker, as a worker would: (job name, its id)."""
    taken = []
    with runtime.queue.celery.connection_for_read() as connection:
        queue = connection.SimpleQueue("celery")
        while True:
            try:
                message = queue.get(block=False)
            except Empty:
                break
            taken.append((message.headers["task"], message.payload[0][0]))
            message.ack()
        queue.close()
    return taken


def live_children(marker: bytes) -> list[int]:
    """This process's live children whose command line holds ``marker`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and marker in cmdline:
            found.append(int(stat.parent.name))
    return found
