"""Every bad input ends in a permanent TrainingFailure whose public message is Tavus's exact
string. The pipeline runs for real (download over HTTP, PyAV, FaceMesh)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from likeness.errors import TrainingFailure
from likeness.kit import safe_url
from likeness.media import download
from likeness.providers.asr_sphinx import SphinxAsr, SphinxPhones
from likeness.training import failures, pipeline
from likeness.training.limits import Limits
from likeness.training.stages import validate

from .conftest import PUBLIC_IP, Dns, Receiver

DAMAGED = (
    "There was an error processing your training video file. Please check your video format "
    "and make sure it not damaged and could be played correctly."
)


def _run(url: str, tmp_path: Path, **limits: object) -> TrainingFailure:
    job = pipeline.Job(
        replica_id="rtest",
        train_video_url=url,
        engine="mouthbank",
        work_dir=tmp_path / "work",
        asr=SphinxAsr(),
        phones=SphinxPhones(),
        limits=Limits(allow_private_urls=True, download_attempts=1, download_timeout_s=5, **limits),  # type: ignore[arg-type]
    )
    with pytest.raises(TrainingFailure) as caught:
        pipeline.run(job)
    return caught.value


@pytest.fixture
def served(media_server: tuple[str, Path]) -> tuple[str, Path]:
    return media_server


def test_no_audio_stream(served: tuple[str, Path], tmp_path: Path) -> None:
    failure = _run(f"{served[0]}/muted_b.mp4", tmp_path)
    assert failure.failure_type == "audio_processing"
    assert failures.message_for(failure.failure_type) == (
        "There was an error processing the audio in the provided training video file."
    )


def test_audio_only_file_with_cover_art(served: tuple[str, Path], tmp_path: Path) -> None:
    failure = _run(f"{served[0]}/withcover.mp3", tmp_path)
    assert failure.failure_type == "video_damaged"
    assert failures.message_for(failure.failure_type) == DAMAGED
    assert failures.public_type(failure.failure_type) == "video_processing"


def test_too_short(served: tuple[str, Path], tmp_path: Path) -> None:
    failure = _run(f"{served[0]}/single_face.mp4", tmp_path)
    assert failure.failure_type == "video_duration"
    assert failures.message_for("video_duration").endswith(
        "does not meet the minimum duration requirement for training"
    )
    # every other check still ran, so the person learns everything about the clip at once
    report = {c["check"]: c for c in json.loads(failure.detail)["checks"]}
    assert list(report) == list(validate.ORDER)
    assert report["video_duration"]["value"] == pytest.approx(2.4, abs=0.1)
    assert report["face_not_detected"]["passed"], report["face_not_detected"]


def test_low_frame_rate(served: tuple[str, Path], tmp_path: Path) -> None:
    failure = _run(f"{served[0]}/single_face.mp4", tmp_path, min_duration_s=1.0, min_fps=31.0)
    assert failure.failure_type == "video_fps"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("zero.mp4", b""),
        ("text.mp4", b"this is a text file, not a video\n" * 100),
        ("truncated.mp4", None),
    ],
)
def test_damaged_files(
    served: tuple[str, Path], tmp_path: Path, name: str, content: bytes | None
) -> None:
    base, root = served
    if content is None:
        content = (root / "talking_unsynced.mp4").read_bytes()[:100_000]
    (root / name).write_bytes(content)
    failure = _run(f"{base}/{name}", tmp_path)
    assert failure.failure_type == "video_damaged"


def test_no_face(served: tuple[str, Path], tmp_path: Path) -> None:
    failure = _run(f"{served[0]}/world.mp4", tmp_path)
    assert failure.failure_type == "face_not_detected"
    report = {c["check"]: c for c in json.loads(failure.detail)["checks"]}
    assert report["face_not_detected"]["value"] < 0.1  # FaceMesh sees a face in a few frames
    assert report["face_not_detected"]["ranges_s"][0][0] == 0.0  # where it is missing
    assert "Face not detected because it appeared too small" in failures.message_for(
        failure.failure_type
    )
    assert failures.public_type(failure.failure_type) == "video_processing"


def test_unreachable_url(tmp_path: Path) -> None:
    failure = _run("http://127.0.0.1:9/nothing.mp4", tmp_path)
    assert failure.failure_type == "download_link"
    assert failures.message_for("download_link").startswith(
        "There was an issue downloading your video file."
    )


def test_missing_file_is_a_download_failure(served: tuple[str, Path], tmp_path: Path) -> None:
    assert _run(f"{served[0]}/absent.mp4", tmp_path).failure_type == "download_link"


def test_private_addresses_are_refused_by_default(served: tuple[str, Path], tmp_path: Path) -> None:
    job = pipeline.Job(
        replica_id="rtest",
        train_video_url=f"{served[0]}/talking_unsynced.mp4",
        engine="mouthbank",
        work_dir=tmp_path / "work",
        asr=SphinxAsr(),
        phones=SphinxPhones(),
        limits=Limits(allow_private_urls=False, download_attempts=1),
    )
    with pytest.raises(TrainingFailure) as caught:
        pipeline.run(job)
    assert caught.value.failure_type == "download_link"
    assert "non-public" in caught.value.detail


@pytest.mark.parametrize("rebound", [["127.0.0.1"], [PUBLIC_IP, "127.0.0.1"]])
def test_dns_rebinding_never_reaches_the_inside_address(
    receiver: Receiver, dns: Dns, rebound: list[str], tmp_path: Path
) -> None:
    """The name looks public when checked, then answers a loopback address (alone or among
    public ones) when the connection resolves it: nothing may reach the loopback server."""
    dns.answer("rebind.test", [PUBLIC_IP], rebound)
    port = receiver.url.split(":")[2].split("/")[0]
    with pytest.raises(download.DownloadError, match="non-public"):
        download.download(
            f"http://rebind.test:{port}/video.mp4",
            tmp_path / "video.mp4",
            max_bytes=10**9,
            timeout_s=5,
            attempts=1,
            allow_private=False,
        )
    assert receiver.received() == []
    assert dns.lookups == ["rebind.test", "rebind.test"]
    assert not (tmp_path / "video.mp4").exists()


def test_the_connection_goes_to_the_checked_address_and_keeps_the_name(
    receiver: Receiver, dns: Dns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pinned connection still speaks to the name: Host carries it (and TLS's SNI would)."""
    monkeypatch.setattr(safe_url, "check_peer", lambda *_args, **_kwargs: None)
    dns.answer("media.test", ["127.0.0.1"])  # "public" for this test: check_peer is off
    port = receiver.url.split(":")[2].split("/")[0]
    download.download(
        f"http://media.test:{port}/video.mp4",
        tmp_path / "video.mp4",
        max_bytes=10**9,
        timeout_s=5,
        attempts=1,
        allow_private=False,
    )
    assert (tmp_path / "video.mp4").read_bytes() == b"ok"
    (call,) = receiver.received()
    assert call["headers"]["host"] == f"media.test:{port}"
    assert dns.lookups == ["media.test", "media.test"]  # the check, then the connection


def test_size_cap(served: tuple[str, Path], tmp_path: Path) -> None:
    failure = _run(f"{served[0]}/talking_unsynced.mp4", tmp_path, max_download_bytes=100_000)
    assert failure.failure_type == "file_size"
    assert failures.message_for("file_size").startswith(
        "The video file you provided exceeds the maximum file size allowed."
    )
    assert not list((tmp_path / "work").glob("*.part"))
