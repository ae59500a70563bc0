"""``likeness replica``: a client of a running server, over its HTTP API.

A client never creates secrets: it finds the key the server made (LIKENESS_API_KEY, else the
``api_key`` file in the data directory) or says where it looked and how to set it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer

from likeness.config import Settings

replica_app = typer.Typer(no_args_is_help=True, help="Create and inspect replicas over the API.")
POLL_S = 2.0


@dataclass(frozen=True)
class _Key:
    value: str
    source: str  # where it came from, for the messages


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _find_key(settings: Settings) -> _Key:
    if settings.api_key:
        return _Key(settings.api_key, "LIKENESS_API_KEY")
    key_file = settings.resolved_data_dir / "api_key"
    if key_file.is_file():
        return _Key(key_file.read_text().strip(), str(key_file))
    _fail(
        f"no API key: LIKENESS_API_KEY is not set and there is no {key_file}. Set "
        "LIKENESS_API_KEY to the key `likeness serve` printed at its first start (it keeps it "
        "in api_key in its data directory), or LIKENESS_DATA_DIR to that data directory."
    )


class _Client:
    def __init__(self) -> None:
        settings = Settings()
        self.key = _find_key(settings)
        self.base = settings.public_url
        self.http = httpx.Client(
            base_url=self.base, headers={"x-api-key": self.key.value}, timeout=600
        )

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            _fail(
                f"cannot reach {self.base} ({exc}). Is `likeness serve` running there? "
                "Set LIKENESS_PUBLIC_URL to the server's address."
            )
        if response.status_code == 401:
            _fail(
                f"{self.base} refused the API key from {self.key.source}. Set "
                "LIKENESS_API_KEY to the key `likeness serve` printed (kept in api_key in "
                "its data directory)."
            )
        if response.is_error:
            _fail(f"HTTP {response.status_code}: {response.text}")
        return response.json()

    def url_of(self, video: str) -> str:
        """An http(s) URL as it is; a local file uploaded first."""
        if video.startswith(("http://", "https://")):
            return video
        path = Path(video)
        if not path.is_file():
            _fail(f"no such file: {video}")
        with path.open("rb") as handle:
            uploaded = self.call("POST", "/v2/uploads", files={"file": (path.name, handle)})
        return str(uploaded["url"])

    def wait(self, replica_id: str) -> dict[str, Any]:
        """Poll until training ends; the final replica."""
        while True:
            body: dict[str, Any] = self.call("GET", f"/v2/replicas/{replica_id}")
            typer.echo(f"{body['status']} {body['training_progress']}", err=True)
            if body["status"] != "started":
                return body
            time.sleep(POLL_S)


def _failed(body: dict[str, Any]) -> None:
    if body["status"] == "error":
        _fail(f"training failed: {body.get('error_message') or 'no reason given'}")


@replica_app.command("create")
def replica_create(
    video: str = typer.Argument(..., help="A local video file or an http(s) URL."),
    name: str | None = typer.Option(None, "--name"),
    callback_url: str | None = typer.Option(None, "--callback-url"),
    model_name: str = typer.Option("phoenix-4", "--model-name"),
    replica_type: str | None = typer.Option(
        None,
        "--type",
        help="non_human: a character, not a person (no spoken consent is checked).",
    ),
    consent_video: str | None = typer.Option(
        None,
        "--consent-video",
        help="A separate video (file or URL) of the person saying the consent statement.",
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Poll until training ends; exit 1 with the reason if it fails."
    ),
) -> None:
    """Upload (if local) and start training; prints the replica id."""
    if replica_type not in (None, "user", "non_human"):
        raise typer.BadParameter("use user or non_human", param_hint="--type")
    with _Client() as client:
        body = {
            "train_video_url": client.url_of(video),
            "consent_video_url": client.url_of(consent_video) if consent_video else None,
            "replica_name": name,
            "replica_type": replica_type,
            "callback_url": callback_url,
            "model_name": model_name,
        }
        created = client.call("POST", "/v2/replicas", json={k: v for k, v in body.items() if v})
        replica_id = created["replica_id"]
        typer.echo(replica_id)
        if wait:
            _failed(client.wait(replica_id))


@replica_app.command("get")
def replica_get(
    replica_id: str,
    wait: bool = typer.Option(
        False, "--wait", help="Poll until training ends; exit 1 if it failed."
    ),
) -> None:
    """Show a replica (its status, training progress and checks)."""
    with _Client() as client:
        if wait:
            client.wait(replica_id)
        body = client.call("GET", f"/v2/replicas/{replica_id}", params={"verbose": "true"})
        typer.echo(json.dumps(body, indent=2))
        if wait:
            _failed(body)
