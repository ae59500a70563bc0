"""Callbacks: Standard Webhooks signatures, retries with backoff, every attempt recorded, and
a dead URL that never touches the replica."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.models import Replica, WebhookEvent
from likeness.replica import service
from likeness.replica.schemas import CreateReplica
from likeness.runtime import Runtime
from likeness.webhooks import service as webhooks
from likeness.webhooks.repository import attempts_for
from likeness.webhooks.signing import verify

from .conftest import PUBLIC_IP, Dns, Receiver


def _completed_replica(runtime: Runtime, callback_url: str, api_name: str = "replica") -> str:
    body = CreateReplica(train_video_url="https://example.com/v.mp4", callback_url=callback_url)
    with transaction(runtime.sessions) as session:
        replica = service.create(session, runtime.settings, body, api_name)  # type: ignore[arg-type]
        replica_id = replica.id
    with transaction(runtime.sessions) as session:
        row = session.get(Replica, replica_id)
        assert row is not None
        event_id = service.mark_completed(session, row, {"bundle": "bundle"})
    assert event_id
    return event_id


def _deliver(runtime: Runtime, event_id: str, allow_private: bool = True) -> webhooks.Outcome:
    settings = runtime.settings
    assert settings.webhook_secret
    with runtime.sessions() as session:  # a scheduled retry is held until it is due
        due = session.get(WebhookEvent, event_id).lease_expires_at  # type: ignore[union-attr]
    if due is not None:
        time.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.01)
    return webhooks.deliver(
        runtime.sessions,
        event_id,
        secret=settings.webhook_secret,
        retry_delays_s=settings.webhook_retry_delays_s,
        timeout_s=2,
        allow_private=allow_private,
    )


def test_ready_callback_is_signed(runtime: Runtime, receiver: Receiver) -> None:
    event_id = _completed_replica(runtime, receiver.url)
    outcome = _deliver(runtime, event_id)
    assert outcome.delivered and outcome.retry_in_s is None
    (call,) = receiver.received()
    assert call["json"]["status"] == "ready"
    assert set(call["json"]) == {"replica_id", "status"}
    headers = call["headers"]
    assert headers["webhook-id"] == event_id
    assert runtime.settings.webhook_secret
    verify(runtime.settings.webhook_secret, call["body"], headers)
    with pytest.raises(WebhookVerificationError):
        verify(runtime.settings.webhook_secret, call["body"].replace("ready", "error"), headers)


def test_face_callers_get_face_id(runtime: Runtime, receiver: Receiver) -> None:
    event_id = _completed_replica(runtime, receiver.url, api_name="face")
    _deliver(runtime, event_id)
    payload = receiver.received()[0]["json"]
    assert payload["face_id"] == payload["replica_id"]


def test_error_callback_carries_the_tavus_message(runtime: Runtime, receiver: Receiver) -> None:
    body = CreateReplica(train_video_url="https://example.com/v.mp4", callback_url=receiver.url)
    with transaction(runtime.sessions) as session:
        replica = service.create(session, runtime.settings, body, "replica")
        event_id = service.mark_failed(session, replica, "video_duration", "3.0 s < 30 s")
    assert event_id
    _deliver(runtime, event_id)
    payload = receiver.received()[0]["json"]
    assert payload["status"] == "error"
    assert payload["error_message"].endswith("minimum duration requirement for training")


def test_retries_with_backoff_until_delivered(runtime: Runtime, receiver: Receiver) -> None:
    receiver.fail_first = 2
    event_id = _completed_replica(runtime, receiver.url)
    delays = runtime.settings.webhook_retry_delays_s
    assert _deliver(runtime, event_id).retry_in_s == delays[0]
    assert _deliver(runtime, event_id).retry_in_s == delays[1]
    assert _deliver(runtime, event_id).delivered
    with runtime.sessions() as session:
        attempts = attempts_for(session, session.get(WebhookEvent, event_id).subject_id)
        assert [a.status_code for a in attempts] == [500, 500, 200]
        assert session.get(WebhookEvent, event_id).status == "delivered"


def test_dead_url_gives_up_and_never_touches_the_replica(runtime: Runtime) -> None:
    event_id = _completed_replica(runtime, "http://127.0.0.1:9/hook")
    outcomes = [_deliver(runtime, event_id) for _ in range(3)]
    assert [o.delivered for o in outcomes] == [False, False, False]
    assert outcomes[-1].retry_in_s is None  # out of attempts
    with runtime.sessions() as session:
        event = session.get(WebhookEvent, event_id)
        assert event is not None and event.status == "failed" and event.attempts == 3
        replica = session.get(Replica, event.subject_id)
        assert replica is not None and replica.status == "completed"
        assert all(a.error for a in attempts_for(session, replica.id))


def test_private_callback_urls_fail_at_once(runtime: Runtime, receiver: Receiver) -> None:
    event_id = _completed_replica(runtime, receiver.url)
    outcome = _deliver(runtime, event_id, allow_private=False)
    assert not outcome.delivered
    assert outcome.retry_in_s is None  # no later attempt would be let through either
    assert receiver.received() == []
    with runtime.sessions() as session:
        event = session.get(WebhookEvent, event_id)
        assert event is not None and event.status == "failed" and event.attempts == 1
        (attempt,) = attempts_for(session, event.subject_id)
        assert attempt.error and attempt.error.startswith("refused")


@pytest.mark.parametrize(
    "answers",
    [
        [["127.0.0.1"]],  # a name that resolves to loopback
        [[PUBLIC_IP], ["127.0.0.1"]],  # public when checked, loopback at connect (rebinding)
    ],
)
def test_a_callback_name_resolving_inside_gets_no_post(
    runtime: Runtime, receiver: Receiver, dns: Dns, answers: list[list[str]]
) -> None:
    dns.answer("hooks.test", *answers)
    port = receiver.url.split(":")[2].split("/")[0]
    event_id = _completed_replica(runtime, f"http://hooks.test:{port}/hook")
    outcome = _deliver(runtime, event_id, allow_private=False)
    assert receiver.received() == []
    assert not outcome.delivered and outcome.retry_in_s is None
    with runtime.sessions() as session:
        event = session.get(WebhookEvent, event_id)
        assert event is not None and event.status == "failed" and event.attempts == 1


def test_a_name_that_does_not_resolve_is_retried(runtime: Runtime, dns: Dns) -> None:
    """DNS failing is not a refusal: the schedule goes on."""
    dns.answer("hooks.test", [])
    event_id = _completed_replica(runtime, "http://hooks.test/hook")
    outcome = _deliver(runtime, event_id, allow_private=False)
    assert outcome.retry_in_s == runtime.settings.webhook_retry_delays_s[0]
