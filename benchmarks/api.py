"""The API under load: creates and gets per second, p50 and p99, on SQLite and PostgreSQL.

Starts ``likeness serve --no-embedded-worker`` (uvicorn, a temp data dir; its API processes
per LIKENESS_API_WORKERS, default one per core) as a child process, so the figures are the
server's alone: the replicas it creates are queued but never trained,
and no worker polls the broker beside it. A lean keep-alive HTTP/1.1 client on loopback then
sends N creates (POST /v2/replicas; the URL is only stored, nothing fetches it), N video
creates (one per replica, queued and never rendered), M gets of each (GET /v2/replicas/{id},
GET /v2/videos/{id}) and M/10 lists, each at a fixed concurrency, and prints requests a
second, p50 and p99 for each, the server's CPU time per request (its process tree: steadier
than requests a second on a shared machine; PostgreSQL's own is not in it) and the client's
(what the load generator took from the same cores).
PostgreSQL runs when the machine has its server binaries (a private one on loopback, fsync
off), and is skipped, saying so, otherwise.

    .venv/bin/python benchmarks/api.py [--creates 200] [--gets 2000] [--concurrency 20]
        [--sqlite-only]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import uvloop

KEY = "bench-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found or (candidates[-1] if candidates else None)


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    """A private PostgreSQL on loopback (as tests/backends.py starts one), or None."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if not initdb or not pg_ctl or (as_user and not shutil.which("runuser")):
        yield None
        return
    root = tempfile.mkdtemp(prefix="likeness-bench-pg-")
    if as_user:
        shutil.chown(root, "postgres")
    data, port = os.path.join(root, "data"), _free_port()
    init = [*as_user, initdb, "-D", data, "-U", "likeness", "--auth=trust", "-E", "UTF8"]
    subprocess.run(init, check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [*as_user, pg_ctl, "-D", data, "-l", f"{root}/log", "-w", "start", "-o", options]
    subprocess.run(start, check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://likeness@127.0.0.1:{port}/postgres"
    finally:
        stop = [*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"]
        subprocess.run(stop, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def server(database_url: str | None) -> Iterator[tuple[int, int]]:
    """``likeness serve`` without the embedded worker, on a temp data dir; yields its port
    and process id."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="likeness-bench-api-") as data:
        env = {**os.environ, "LIKENESS_DATA_DIR": data, "LIKENESS_API_KEY": KEY}
        if database_url:
            env["LIKENESS_DATABASE_URL"] = database_url
        command = [sys.executable, "-m", "likeness", "serve", "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--no-embedded-worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start (exit {process.poll()})")
                time.sleep(0.1)
            yield port, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Connection:
    """One keep-alive HTTP/1.1 connection: lighter than a full client, so the load generator
    leaves the CPU to the server it measures."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        # The whole head in one read: a line at a time cost the client more CPU than the
        # server spent on a read.
        head_bytes = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, fields = head_bytes.lower().partition(b"\r\n")
        at = fields.find(b"content-length:")
        length = int(fields[at + 15 : fields.index(b"\r\n", at)]) if at >= 0 else 0
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def run_load(
    port: int, requests: list[tuple[str, str, bytes]], concurrency: int
) -> tuple[list[float], list[bytes]]:
    """Send every request once, ``concurrency`` at a time; their latencies (s) and bodies."""
    latencies: list[float] = [0.0] * len(requests)
    bodies: list[bytes] = [b""] * len(requests)
    todo = iter(range(len(requests)))

    async def client() -> None:
        connection = await Connection.open(port)
        try:
            for i in todo:
                method, path, body = requests[i]
                started = time.perf_counter()
                status, bodies[i] = await connection.request(method, path, body)
                latencies[i] = time.perf_counter() - started
                if status != 200:
                    raise SystemExit(f"{method} {path} answered {status}: {bodies[i]!r}")
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, bodies


def cpu_s(pid: int) -> float:
    """The CPU time (user + system) a process and its live children (the API processes of
    LIKENESS_API_WORKERS) have used: on a shared machine, a steadier figure than requests a
    second."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return own + sum(cpu_s(child) for child in children)


def figures(
    name: str, latencies: list[float], wall_s: float, cpu_used_s: float, client_s: float
) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))]
    return (
        f"{name:<12} {len(ordered):>6} {len(ordered) / wall_s:>8.0f} "
        f"{statistics.median(ordered) * 1000:>8.1f} {p99 * 1000:>8.1f} "
        f"{cpu_used_s / len(ordered) * 1000:>8.2f} {client_s / len(ordered) * 1000:>8.2f}"
    )


async def phase(
    name: str, port: int, pid: int, requests: list[tuple[str, str, bytes]], concurrency: int
) -> tuple[str, list[bytes]]:
    """One load, with its figures: the server's CPU (its process tree) and the client's."""
    started, cpu, client = time.perf_counter(), cpu_s(pid), time.process_time()
    latencies, bodies = await run_load(port, requests, concurrency)
    wall_s, client_s = time.perf_counter() - started, time.process_time() - client
    return figures(name, latencies, wall_s, cpu_s(pid) - cpu, client_s), bodies


async def measure(port: int, pid: int, creates: int, gets: int, concurrency: int) -> list[str]:
    lines = []
    body = json.dumps({"train_video_url": "https://example.invalid/train.mp4"}).encode()
    line, bodies = await phase(
        "create", port, pid, [("POST", "/v2/replicas", body)] * creates, concurrency
    )
    lines.append(line)
    replica_ids = [json.loads(b)["replica_id"] for b in bodies]
    video_bodies = [
        json.dumps({"replica_id": replica_id, "script": "Hello, and welcome."}).encode()
        for replica_id in replica_ids
    ]
    line, bodies = await phase(
        "video create", port, pid, [("POST", "/v2/videos", b) for b in video_bodies], concurrency
    )
    lines.append(line)
    video_ids = [json.loads(b)["video_id"] for b in bodies]
    for name, path, count in (
        ("get", "/v2/replicas/{}", gets),
        ("video get", "/v2/videos/{}", gets),
        ("list", "/v2/replicas?limit=20", gets // 10),
    ):
        ids = video_ids if "video" in name else replica_ids
        requests = [("GET", path.format(ids[i % len(ids)]), b"") for i in range(count)]
        lines.append((await phase(name, port, pid, requests, concurrency))[0])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    print(
        f"{args.creates} replica creates, as many video creates, {args.gets} gets of each, "
        f"{args.gets // 10} lists of 20; concurrency {args.concurrency}, "
        f"{len(os.sched_getaffinity(0))} cores; no worker running"
    )
    columns = ("count", "req/s", "p50 ms", "p99 ms", "cpu ms", "client")
    print(
        f"{'db':<11}{'request':<12} "
        + " ".join(f"{c:>{6 if c == 'count' else 8}}" for c in columns)
    )
    with contextlib.ExitStack() as stack:
        backends: list[tuple[str, str | None]] = [("sqlite", None)]
        if not args.sqlite_only:
            url = stack.enter_context(postgres())
            if url is None:
                print("postgresql: skipped (no PostgreSQL server binaries on this machine)")
            else:
                backends.append(("postgresql", url))
        for name, url in backends:
            with server(url) as (port, pid):
                load = measure(port, pid, args.creates, args.gets, args.concurrency)
                for line in uvloop.run(load):  # the server's loop: a lighter client too
                    print(f"{name:<11}{line}")


if __name__ == "__main__":
    main()
