"""Input that hurts: every bad request is a clear 4xx (never a 500), and no request or job
can be made to do unbounded work by the size of what it is sent."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from likeness.errors import TrainingFailure
from likeness.jobs.context import JobContext
from likeness.kit.db import MAX_PAGE, transaction
from likeness.media.audio import read_audio, stated_duration_s
from likeness.models import Replica, Video
from likeness.runtime import Runtime
from likeness.training import pipeline
from likeness.training.limits import Limits
from likeness.training.stages import download, probe, track
from likeness.video import service
from likeness.video import tasks as video_tasks

from .conftest import FIXTURES, local_job

VIDEO = {"train_video_url": "https://example.com/v.mp4"}
JSON = {"content-type": "application/json"}


def _error(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    assert body["error"] == body["message"]
    return str(body["error"])


def test_json_errors_say_what_is_wrong(client: TestClient) -> None:
    no_type = client.post("/v2/replicas", content=b'{"train_video_url": "https://x/v.mp4"}')
    assert no_type.status_code == 400
    assert "Content-Type: application/json" in _error(no_type)
    assert "missing" in _error(no_type)
    form = client.post("/v2/replicas", data={"train_video_url": "https://x/v.mp4"})
    assert "application/x-www-form-urlencoded" in _error(form)
    broken = client.post("/v2/replicas", content=b'{\n  "replica_name": "x",, }', headers=JSON)
    assert broken.status_code == 400
    assert _error(broken) == (
        "The request body is not valid JSON: Expecting property name enclosed in double "
        "quotes at line 2, column 23"
    )
    listed = client.post("/v2/replicas", content=b"[1, 2]", headers=JSON)
    assert _error(listed) == "The request body must be a JSON object ({...})"
    empty = client.post("/v2/replicas", content=b"", headers=JSON)
    assert _error(empty) == "The request body is empty: send a JSON object"
    latin1 = client.post("/v2/replicas", content=b'{"replica_name": "caf\xe9"}', headers=JSON)
    assert latin1.status_code == 400
    assert "not valid JSON" in _error(latin1) and "UTF-8" in _error(latin1), _error(latin1)
    typed = client.post("/v2/replicas", json={"train_video_url": 5})
    assert _error(typed) == "train_video_url: Input should be a valid string"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/v2/replicas", '{"train_video_url": "https://x/\\ud800.mp4"}', "train_video_url"),
        ("post", "/v2/replicas", '{"train_video_url": "https://x/v.mp4", "replica_name": '
         '"a\\udfffb"}', "replica_name"),
        ("post", "/v2/replicas", '{"train_video_url": "https://x/v.mp4", "properties": '
         '{"k": ["ok", "\\ud800"]}}', "properties.k.1"),
        ("post", "/v2/videos", '{"replica_id": "r1", "script": "hi \\ud83d"}', "script"),
        ("post", "/v2/videos", '{"replica_id": "r1", "script": "hi", "video_name": "\\ud800"}',
         "video_name"),
        ("patch", "/v2/replicas/r1/name", '{"replica_name": "\\ud800"}', "replica_name"),
        ("patch", "/v2/videos/v1/name", '{"video_name": "\\ud800"}', "video_name"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_a_400_naming_its_field(
    client: TestClient, method: str, path: str, body: str, field: str
) -> None:
    response = client.request(method, path, content=body.encode(), headers=JSON)
    assert response.status_code == 400
    assert _error(response).startswith(f"{field} is not valid Unicode text")
    assert client.get("/v2/replicas").status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"replica_name": "a\\u0000b"}', "replica_name holds a NUL character"),
        (b'{"properties": {"x": NaN}}', "properties.x is not a finite number"),
        (b'{"properties": {"x": [-Infinity]}}', "properties.x.0 is not a finite number"),
        (b'{"properties": {"x": 1e999}}', "properties.x is not a finite number"),
        (b'{"properties": {"x": ' + b"9" * 5000 + b"}}", "The request body holds a number too"),
        (b'{"p": ' + b"[" * 40 + b"]" * 40 + b"}", "The JSON body is nested more than 32"),
        (b"[" * 100_000 + b"]" * 100_000, "The JSON body is nested more than 32"),
    ],
)
def test_json_no_column_can_hold_is_a_400(client: TestClient, body: bytes, message: str) -> None:
    response = client.post("/v2/replicas", content=body, headers=JSON)
    assert response.status_code == 400
    assert _error(response).startswith(message)


@pytest.mark.parametrize(
    "url", ["/v2/replicas/r%00x", "/v2/videos/v%00/name", "/v2/uploads/u%00", "/v2/faces?x=%00"]
)
def test_a_nul_in_the_url_is_a_400(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 400
    assert _error(response) == "The URL holds a NUL character (%00)"


def test_a_surrogate_pair_is_text(client: TestClient) -> None:
    body = b'{"train_video_url": "https://x/v.mp4", "replica_name": "smile \\ud83d\\ude00"}'
    created = client.post("/v2/replicas", content=body, headers=JSON)
    assert created.status_code == 200
    replica = client.get(f"/v2/replicas/{created.json()['replica_id']}").json()
    assert replica["replica_name"] == "smile \N{GRINNING FACE}"


@pytest.mark.parametrize("path", ["/v2/replicas", "/v2/faces", "/v2/videos"])
def test_a_page_past_the_offset_range_is_a_400(client: TestClient, path: str) -> None:
    for page in (MAX_PAGE + 1, 10**19, 10**40):
        response = client.get(path, params={"page": page, "limit": 1000})
        assert response.status_code == 400
        assert _error(response) == f"query.page: Input should be less than or equal to {MAX_PAGE}"
    last = client.get(path, params={"page": MAX_PAGE, "limit": 1000})
    assert last.status_code == 200 and last.json()["data"] == []


def test_the_body_is_bounded(client: TestClient, runtime: Runtime) -> None:
    limit = runtime.settings.max_body_bytes
    huge = client.post("/v2/replicas", json=VIDEO | {"replica_name": "n" * 10_000_000})
    assert huge.status_code == 413
    assert _error(huge) == f"The request body is larger than the limit of {limit} bytes"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the guard counts what arrives
        yield b'{"train_video_url": "https://x/v.mp4", "replica_name": "'
        for _ in range(limit // 65536 + 1):
            yield b"n" * 65536
        yield b'"}'

    streamed = client.post("/v2/replicas", content=chunks(), headers=JSON)
    assert streamed.status_code == 413
    assert client.get("/v2/replicas").json()["total_count"] == 0
    # Uploads stream to disk under their own, larger limit.
    upload = client.post("/v2/uploads", files={"file": ("big.bin", b"\0" * (limit * 2))})
    assert upload.status_code == 200 and upload.json()["size_bytes"] == limit * 2


@pytest.mark.parametrize(
    ("payload", "field", "limit"),
    [
        (VIDEO | {"replica_name": "n" * 256}, "replica_name", 255),
        (VIDEO | {"face_name": "n" * 256}, "face_name", 255),
        ({"train_video_url": "https://x/" + "v" * 2048}, "train_video_url", 2048),
        (VIDEO | {"callback_url": "https://x/" + "c" * 2048}, "callback_url", 2048),
        (VIDEO | {"consent_video_url": "https://x/" + "c" * 2048}, "consent_video_url", 2048),
        (VIDEO | {"model_name": "m" * 65}, "model_name", 64),
        (VIDEO | {"replica_type": "t" * 65}, "replica_type", 64),
    ],
)
def test_replica_fields_are_bounded(
    client: TestClient, payload: dict[str, str], field: str, limit: int
) -> None:
    response = client.post("/v2/replicas", json=payload)
    assert response.status_code == 400
    assert _error(response) == f"{field}: String should have at most {limit} characters"


def _completed_replica(client: TestClient, runtime: Runtime) -> str:
    """A replica the render can start from; the renders here fail on their speech, before
    the replica's bundle is ever opened, so it is not trained."""
    replica_id = str(client.post("/v2/replicas", json=VIDEO).json()["replica_id"])
    with transaction(runtime.sessions) as session:
        row = session.get(Replica, replica_id)
        assert row is not None
        row.status, row.artifacts = "completed", {"bundle": "bundle"}
    return replica_id


def test_video_fields_are_bounded(client: TestClient, runtime: Runtime) -> None:
    replica_id = _completed_replica(client, runtime)
    for field, value, limit in [
        ("video_name", "n" * 256, 255),
        ("audio_url", "https://x/" + "a" * 2048, 2048),
        ("background_source_url", "https://x/" + "b" * 2048, 2048),
        ("callback_url", "https://x/" + "c" * 2048, 2048),
    ]:
        payload = {"replica_id": replica_id, "script": "Hello.", field: value}
        response = client.post("/v2/videos", json=payload)
        assert response.status_code == 400, field
        assert _error(response) == f"{field}: String should have at most {limit} characters"
    renamed = client.patch("/v2/videos/v1/name", json={"video_name": "n" * 256})
    assert _error(renamed) == "video_name: String should have at most 255 characters"


def test_a_script_past_ten_minutes_of_speech_is_refused_at_create(
    client: TestClient, runtime: Runtime
) -> None:
    replica_id = _completed_replica(client, runtime)
    words = ("Hello there, this is a test. " * 1000)[: service.MAX_SCRIPT_CHARS]
    fits = client.post("/v2/videos", json={"replica_id": replica_id, "script": words})
    assert fits.status_code == 200
    spaced = words.replace(" ", "    \n")  # runs of whitespace count once
    assert client.post("/v2/videos", json={"replica_id": replica_id, "script": spaced}).is_success
    long = client.post("/v2/videos", json={"replica_id": replica_id, "script": words + "!"})
    assert long.status_code == 400
    assert _error(long) == (
        f"script is too long: {service.MAX_SCRIPT_CHARS + 1} characters; at most "
        f"{service.MAX_SCRIPT_CHARS} fit in 10 minutes of speech"
    )
    ten_mb = client.post("/v2/videos", json={"replica_id": replica_id, "script": "a" * 10**7})
    assert ten_mb.status_code == 413


@pytest.mark.parametrize("script", ["...", "—", "- - -", "?!"])
def test_an_unspeakable_script_is_a_400_at_create(
    client: TestClient, runtime: Runtime, script: str
) -> None:
    replica_id = _completed_replica(client, runtime)
    response = client.post("/v2/videos", json={"replica_id": replica_id, "script": script})
    assert response.status_code == 400
    assert _error(response) == "script has nothing to say: it needs at least one word or number"


def _render(client: TestClient, runtime: Runtime, **fields: str) -> dict[str, str]:
    """Render a video row made directly (as an older server, or a CLI, could have made it)."""
    replica_id = _completed_replica(client, runtime)
    with transaction(runtime.sessions) as session:
        session.add(Video(id="v0123456789", replica_id=replica_id, status="queued", **fields))
    settings = runtime.settings
    deps = JobContext(runtime.sessions, runtime.storage, settings, runtime.queue)
    video_tasks.render(deps, "v0123456789")
    body: dict[str, str] = client.get("/v2/videos/v0123456789").json()
    return body


def test_an_unspeakable_script_fails_for_good_in_the_job(
    client: TestClient, runtime: Runtime
) -> None:
    video = _render(client, runtime, script="...")
    assert video["status"] == "error"  # not left "generating" for a retry
    assert video["status_details"] == service.FAILED
    assert video["error_details"].startswith("the script has nothing the voice can say")


def _long_wav(path: Path, seconds: float, rate_hz: int = 8000) -> Path:
    """A real WAV of a quiet 440 Hz tone, written a second at a time (16-bit mono)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate_hz, layout="mono")
        t = np.arange(rate_hz) / rate_hz
        tone = (np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16)[None, :]
        for second in range(int(seconds)):
            frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate_hz, second * rate_hz
            frame.time_base = Fraction(1, rate_hz)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_a_long_audio_url_is_refused_from_its_header_without_decoding(
    client: TestClient, runtime: Runtime, media_server: tuple[str, Path]
) -> None:
    files, root = media_server
    wav = _long_wav(root / "eleven_minutes.wav", 11 * 60, rate_hz=16000)
    assert stated_duration_s(wav) == pytest.approx(660.0)
    tracemalloc.start()
    try:
        video = _render(client, runtime, audio_url=f"{files}/{wav.name}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert video["status"] == "error"
    assert video["error_details"] == "the audio lasts 660.0 s; it must last between 3 s and 10 min"
    # Decoding it whole would hold 660 s x 16 kHz float32 = 42 MB of samples (twice, to join
    # them); refused from the header, the render holds a few MB at most.
    assert peak < 8_000_000, peak


def test_decoding_stops_at_its_bound(tmp_path: Path) -> None:
    wav = _long_wav(tmp_path / "eleven_minutes.wav", 11 * 60)
    tracemalloc.start()
    try:
        samples, rate = read_audio(wav, up_to_s=40.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rate == 8000 and 40.0 <= len(samples) / rate < 41.0
    assert peak < 8_000_000, peak  # the whole file: 21 MB of float32 samples, held twice
    quiet, _ = read_audio(wav, up_to_s=2.0, max_rate_hz=4000)
    assert 2.0 <= len(quiet) / 4000 < 2.5


def test_a_training_video_too_long_is_refused_at_probe(tmp_path: Path) -> None:
    limits = Limits(min_duration_s=5.0, max_duration_s=10.0)  # short_talk is 12 s
    job = local_job(FIXTURES / "short_talk.mp4", tmp_path, limits=limits)
    with pytest.raises(TrainingFailure) as failure:
        pipeline.run(job)
    assert failure.value.failure_type == "video_duration"
    assert failure.value.detail == "12.0 s > 10 s (too long)"


def test_an_upload_content_type_is_bounded(client: TestClient) -> None:
    kind = "video/mp4; x=" + "a" * 200
    response = client.post("/v2/uploads", files={"file": ("v.mp4", b"\0" * 10, kind)})
    assert response.status_code == 400
    assert _error(response) == "The file's Content-Type is longer than 128 characters"


def test_later_stages_decode_no_more_than_the_probe_accepted(tmp_path: Path) -> None:
    """A container that understates its length (here: its probe record says 5 s of a 12 s
    clip) cannot make tracking or the audio reads decode past what the probe accepted."""
    job = local_job(FIXTURES / "short_talk.mp4", tmp_path, limits=Limits(min_duration_s=5.0))
    ctx = pipeline.context(job)
    for stage in (download.STAGE, probe.STAGE):
        stage.run(ctx, lambda _f: None)
    info = ctx.work.media_info()
    assert info.duration_s == pytest.approx(12.0) and info.fps == pytest.approx(25.0)
    ctx.work.save_media_info(replace(info, duration_s=5.0))
    track.STAGE.run(ctx, lambda _f: None)
    assert ctx.work.face_track().n_frames == (5 + 1) * 25 + 1
    audio = ctx.work.training_input().audio
    assert len(audio) == pytest.approx(6.0 * 16000, abs=2048)
