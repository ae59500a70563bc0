"""What a training accepts: the download's bounds, the probe's minimums, the upload checks'
thresholds and the consent policy. Plain values, filled from settings by the job
(replica/tasks.py ``limits_from``) and by ``likeness check``; the defaults match the settings'
defaults except for consent (see ``Limits.consent_policy``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Thresholds:
    """The upload checks' limits (training/checks.py says how each default was measured)."""

    hidden_share: float = 0.1  # frames where the face tracker lost the face
    hand_in_face: float = 0.25  # share of one hand's 21 points inside the face outline
    hand_share: float = 0.1  # sampled face frames with such a hand
    cut_change: float = 25.0  # grey levels; also at least 8x the video's median change
    second_face_share: float = 0.2
    turned_yaw: float = 0.3
    turned_share: float = 0.25
    min_face_height: float = 0.08  # inter-ocular distance / frame height
    max_face_height: float = 0.45
    distance_range: float = 0.7  # ln(p95 / p5) of the inter-ocular distance
    lighting_range: float = 60.0  # grey levels of the 1 s mean brightness
    min_brightness: float = 35.0
    min_speech_share: float = 0.1
    min_snr_db: float = 15.0
    max_movement: float = 1.0  # p95 distance of the head from its usual place, in IODs


@dataclass(frozen=True)
class Limits:
    max_download_bytes: int = 750 * 1024 * 1024
    download_timeout_s: float = 30.0
    download_attempts: int = 3
    allow_private_urls: bool = False
    min_duration_s: float = 30.0
    max_duration_s: float = 600.0
    min_fps: float = 20.0
    min_face_share: float = 0.5
    # What one training may hold in memory at once: a video whose frames would need more
    # (stages/probe.py ``memory_needed_bytes``) is refused at the probe, before any decoding,
    # rather than have the worker killed for memory half-way.
    max_memory_bytes: int = 3 * 1024**3
    # The replica's frame size: the training video's own, or scaled down to this short side
    # (1080 for 1080p); media/probe.py ``output_size``.
    output_short_side_px: int | None = None
    checks: Thresholds = field(default_factory=Thresholds)
    # Spoken consent. The service's default is "required" (settings); a bare Limits() is what
    # tests and benchmarks build for clips that carry no statement, so it checks none.
    consent_policy: Literal["required", "off"] = "off"
    consent_min_score: float = 0.6
