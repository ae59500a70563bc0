"""Capability links (a video's files, a replica's thumbnail): they open without the key,
refuse a forged token, and a valid token for a file that is not there is Tavus's 404."""

from __future__ import annotations

import re
import shutil

import httpx
from fastapi.testclient import TestClient

from likeness.kit.db import transaction
from likeness.media.hls import write_hls
from likeness.replica import service as replicas
from likeness.runtime import Runtime
from likeness.video import service as videos

from .conftest import FIXTURES

NO_KEY = {"x-api-key": ""}


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def _finished_replica(client: TestClient, runtime: Runtime, with_file: bool = True) -> str:
    """A replica as training leaves it: completed, with its thumbnail in its folder."""
    replica_id: str = client.post(
        "/v2/replicas", json={"train_video_url": "http://127.0.0.1:9/gone.mp4"}
    ).json()["replica_id"]
    work = runtime.storage.ensure_dir(replicas.work_key(replica_id))
    if with_file:
        shutil.copyfile(FIXTURES / "short_talk.mp4", work / "thumbnail.mp4")
    with transaction(runtime.sessions) as session:
        row = replicas.get(session, replica_id)
        replicas.mark_completed(session, row, {"thumbnail": "thumbnail.mp4"})
    return replica_id


def _ready_mp4_video(client: TestClient, runtime: Runtime) -> str:
    """A video as a render leaves it: video.mp4 and its HLS rendition (no WebM, no still)."""
    replica_id = _finished_replica(client, runtime)
    video_id: str = client.post(
        "/v2/videos", json={"replica_id": replica_id, "script": "Hello."}
    ).json()["video_id"]
    work = runtime.storage.ensure_dir(videos.work_key(video_id))
    shutil.copyfile(FIXTURES / "short_talk.mp4", work / "video.mp4")
    write_hls(work / "video.mp4", work / "hls")
    with transaction(runtime.sessions) as session:
        videos.mark_ready(session, videos.get(session, video_id), "http://h", "k")
    return video_id


def _assert_tavus_404(response: httpx.Response, message: str) -> None:
    assert response.status_code == 404
    assert response.json() == {"error": message, "message": message}


def test_missing_media_files_are_404_not_500(client: TestClient, runtime: Runtime) -> None:
    video_id = _ready_mp4_video(client, runtime)
    body = client.get(f"/v2/videos/{video_id}", params={"verbose": True}).json()
    base = _path(body["download_url"]).rsplit("/", 1)[0]
    mp4 = client.get(f"{base}/video.mp4", headers=NO_KEY)
    assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp"
    assert mp4.headers["content-disposition"] == f'attachment; filename="{video_id}.mp4"'
    playlist = client.get(f"{base}/index.m3u8", headers=NO_KEY)
    assert playlist.status_code == 200 and "seg_000.ts" in playlist.text
    assert client.get(f"{base}/seg_000.ts", headers=NO_KEY).status_code == 200

    _assert_tavus_404(
        client.get(f"{base}/video.webm", headers=NO_KEY), "This video has no video.webm"
    )
    _assert_tavus_404(
        client.get(f"{base}/seg_999.ts", headers=NO_KEY), "This video has no seg_999.ts"
    )
    still = client.get(_path(body["still_image_thumbnail_url"]), headers=NO_KEY)
    _assert_tavus_404(still, "This video has no thumbnail.jpg")
    forged = base.rsplit("/", 1)[0] + "/" + "0" * 32
    assert client.get(f"{forged}/seg_999.ts", headers=NO_KEY).status_code == 401


def test_the_watch_page_escapes_the_video_name(client: TestClient, runtime: Runtime) -> None:
    video_id = _ready_mp4_video(client, runtime)
    name = '<script>alert("x")</script>'
    assert client.patch(f"/v2/videos/{video_id}/name", json={"video_name": name}).status_code == 200
    hosted = client.get(f"/v2/videos/{video_id}").json()["hosted_url"]
    page = client.get(_path(hosted), headers=NO_KEY)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in page.text
    assert "<title>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</title>" in page.text
    assert '<video src="video.mp4"' in page.text


def test_thumbnail_video_url_opens_without_the_key(client: TestClient, runtime: Runtime) -> None:
    replica_id = _finished_replica(client, runtime)
    for plural in ("replicas", "faces"):
        url = client.get(f"/v2/{plural}/{replica_id}").json()["thumbnail_video_url"]
        assert re.fullmatch(
            rf"http://[^/]+/v2/{plural}/{replica_id}/media/[0-9a-f]{{32}}/thumbnail\.mp4", url
        ), url
        thumbnail = client.get(_path(url), headers=NO_KEY)
        assert thumbnail.status_code == 200 and thumbnail.content[4:8] == b"ftyp"
        assert thumbnail.headers["content-type"] == "video/mp4"
        forged = re.sub(r"/media/[0-9a-f]+/", "/media/" + "0" * 32 + "/", _path(url))
        refused = client.get(forged, headers=NO_KEY)
        assert refused.status_code == 401 and refused.json() == {"message": "Invalid access token"}
    # The keyed route stays as it was.
    assert client.get(f"/v2/replicas/{replica_id}/thumbnail.mp4").status_code == 200
    assert client.get(f"/v2/replicas/{replica_id}/thumbnail.mp4", headers=NO_KEY).status_code == 401


def test_a_thumbnail_missing_from_disk_is_404(client: TestClient, runtime: Runtime) -> None:
    replica_id = _finished_replica(client, runtime, with_file=False)
    url = client.get(f"/v2/replicas/{replica_id}").json()["thumbnail_video_url"]
    _assert_tavus_404(client.get(_path(url), headers=NO_KEY), "The thumbnail is not ready")
    keyed = client.get(f"/v2/replicas/{replica_id}/thumbnail.mp4")
    _assert_tavus_404(keyed, "The thumbnail is not ready")


def test_an_upload_missing_from_disk_is_404(client: TestClient, runtime: Runtime) -> None:
    created = client.post("/v2/uploads", files={"file": ("clip.mp4", b"\x00" * 64, "video/mp4")})
    upload_id = created.json()["upload_id"]
    runtime.storage.delete_tree(f"uploads/{upload_id}")
    _assert_tavus_404(client.get(f"/v2/uploads/{upload_id}"), "Invalid upload_id")


def test_an_upload_is_served_with_the_type_its_bytes_show(client: TestClient) -> None:
    """Never the Content-Type the uploader claimed: HTML comes back as an inert download."""
    page = b"<html><script>alert(document.cookie)</script></html>"
    cases = [
        (page, "text/html", "application/octet-stream"),
        ((FIXTURES / "short_talk.mp4").read_bytes(), "text/html", "video/mp4"),
        ((FIXTURES / "librivox_0870.wav").read_bytes(), "text/html", "audio/wav"),
        ((FIXTURES / "withcover.mp3").read_bytes(), "image/svg+xml", "audio/mpeg"),
    ]
    for body, claimed, served in cases:
        upload_id = client.post("/v2/uploads", files={"file": ("x.html", body, claimed)}).json()[
            "upload_id"
        ]
        response = client.get(f"/v2/uploads/{upload_id}")
        assert response.status_code == 200 and response.content == body
        assert response.headers["content-type"] == served
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"].startswith("attachment;")
