"""An HLS rendition (VOD playlist + MPEG-TS segments) remuxed from an MP4, and JPEG stills."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import cv2
import numpy as np

PLAYLIST = "index.m3u8"


def write_hls(mp4: Path, out_dir: Path, segment_s: int = 4) -> Path:
    """Remux (no re-encode) ``mp4`` into ``out_dir/index.m3u8`` + ``seg_NNN.ts``."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    playlist = out_dir / PLAYLIST
    options = {
        "hls_time": str(segment_s),
        "hls_playlist_type": "vod",
        "hls_segment_filename": str(out_dir / "seg_%03d.ts"),
    }
    with (
        av.open(str(mp4)) as source,
        av.open(str(playlist), "w", format="hls", options=options) as target,
    ):
        mapping = {
            s.index: target.add_stream_from_template(s)
            for s in source.streams
            if s.type in ("video", "audio")
        }
        for packet in source.demux(*[source.streams[i] for i in mapping]):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            target.mux(packet)
    return playlist


def write_still(image: np.ndarray, path: Path) -> None:
    """(H, W, 3) uint8 RGB → JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise OSError(f"could not write {path}")
