"""/v2/conversations over REST (spec §4.1, §4.2), the conversation_url page, the webhooks
(§4.4) and the functions the media side calls, down to the sweep ending a conversation
whose media worker died."""

from __future__ import annotations

import contextlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from likeness.config import Settings
from likeness.conversation import repository, service
from likeness.jobs.context import JobContext
from likeness.kit import ids
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.models import Conversation, Replica, WebhookEvent
from likeness.runtime import Runtime
from likeness.webhooks import service as webhooks
from likeness.webhooks.signing import verify
from likeness.worker import sweep

from .conftest import Receiver, take_queued

ISO_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CREATED_KEYS = {
    "conversation_id",
    "conversation_name",
    "conversation_url",
    "status",
    "callback_url",
    "created_at",
}
GET_KEYS = {
    "conversation_id",
    "conversation_name",
    "conversation_url",
    "callback_url",
    "status",
    "replica_id",
    "face_id",
    "persona_id",
    "pal_id",
    "created_at",
    "updated_at",
}
ENVELOPE_KEYS = {
    "properties",
    "conversation_id",
    "webhook_url",
    "event_type",
    "message_type",
    "timestamp",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_conversations": 50})


def make_replica(runtime: Runtime, status: str = "completed") -> str:
    """A replica row in ``status`` (training itself is tested elsewhere)."""
    replica_id = ids.replica_id()
    with transaction(runtime.sessions) as session:
        session.add(
            Replica(
                id=replica_id,
                model_name="phoenix-4",
                engine="mouthbank",
                train_video_url="https://example.com/v.mp4",
                status=status,
            )
        )
    return replica_id


def _row(runtime: Runtime, conversation_id: str) -> Conversation:
    with runtime.sessions() as session:
        row = session.get(Conversation, conversation_id)
        assert row is not None
        return row


def _deliver_all(runtime: Runtime) -> None:
    secret = runtime.settings.webhook_secret
    assert secret
    for job, event_id in take_queued(runtime):
        if job == webhooks.JOB:
            outcome = webhooks.deliver(
                runtime.sessions,
                event_id,
                secret=secret,
                retry_delays_s=[],
                timeout_s=2,
                allow_private=True,
            )
            assert outcome.delivered


# -- create -----------------------------------------------------------------------------------


def test_create_answers_in_the_callers_names(client: TestClient, runtime: Runtime) -> None:
    replica_id = make_replica(runtime)
    response = client.post("/v2/conversations", json={"replica_id": replica_id})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == CREATED_KEYS | {"replica_id", "persona_id"}
    assert re.fullmatch(r"c[0-9a-f]{11}", body["conversation_id"])
    assert body["conversation_url"] == f"http://127.0.0.1:8000/c/{body['conversation_id']}"
    assert body["status"] == "active"
    assert body["replica_id"] == replica_id
    assert body["persona_id"] == "pb87e71797da"  # the default persona
    assert ISO_US.match(body["created_at"])

    renamed = client.post("/v2/conversations", json={"face_id": replica_id, "pal_id": None})
    assert set(renamed.json()) == CREATED_KEYS | {"face_id", "pal_id"}
    assert renamed.json()["face_id"] == replica_id


def test_get_has_both_names_and_verbose_adds_events(client: TestClient, runtime: Runtime) -> None:
    replica_id = make_replica(runtime)
    created = client.post(
        "/v2/conversations",
        json={"face_id": replica_id, "conversation_name": "Sales", "callback_url": None},
    ).json()
    conversation_id = created["conversation_id"]
    body = client.get(f"/v2/conversations/{conversation_id}").json()
    assert set(body) == GET_KEYS
    assert body["replica_id"] == body["face_id"] == replica_id
    assert body["persona_id"] == body["pal_id"] == "pb87e71797da"
    assert body["conversation_name"] == "Sales"
    assert ISO_US.match(body["updated_at"])
    verbose = client.get(f"/v2/conversations/{conversation_id}", params={"verbose": "true"})
    assert set(verbose.json()) == GET_KEYS | {"events", "shutdown_reason", "transcript"}
    assert verbose.json()["events"] == [] and verbose.json()["shutdown_reason"] is None


def test_every_field_may_be_null(client: TestClient, runtime: Runtime) -> None:
    fields = [
        "persona_id", "pal_id", "callback_url", "conversation_name", "conversational_context",
        "custom_greeting", "audio_only", "memory_stores", "document_ids",
        "document_retrieval_strategy", "document_tags", "test_mode", "require_auth",
        "max_participants", "meeting_url", "chat", "properties",
    ]  # fmt: skip
    body: dict[str, Any] = dict.fromkeys(fields)
    body["replica_id"] = make_replica(runtime)
    body["face_id"] = None
    assert client.post("/v2/conversations", json=body).status_code == 200
    nulls = {
        "max_call_duration": None,
        "participant_left_timeout": None,
        "participant_absent_timeout": None,
        "enable_recording": None,
        "language": None,
        "livekit_ws_url": None,
        "livekit_room_token": None,
    }
    body["properties"] = nulls
    assert client.post("/v2/conversations", json=body).status_code == 200


def test_every_field_is_kept(client: TestClient, runtime: Runtime) -> None:
    replica_id = make_replica(runtime)
    properties = {
        "max_call_duration": 600,
        "participant_left_timeout": 10,
        "participant_absent_timeout": 60,
        "enable_recording": True,
        "enable_closed_captions": True,
        "apply_greenscreen": True,
        "language": "english",
        "custom_key": 1,
    }
    created = client.post(
        "/v2/conversations",
        json={
            "replica_id": replica_id,
            "conversation_name": "Coaching",
            "conversational_context": "You talk to Ann.",
            "custom_greeting": "Hello Ann!",
            "audio_only": True,
            "memory_stores": ["ann"],
            "document_ids": ["d1"],
            "document_tags": ["faq"],
            "document_retrieval_strategy": "speed",
            "max_participants": 3,
            "properties": properties,
        },
    ).json()
    row = _row(runtime, created["conversation_id"])
    assert row.conversational_context == "You talk to Ann."
    assert row.custom_greeting == "Hello Ann!"
    assert row.audio_only is True and row.chat is False
    assert row.max_participants == 3
    assert row.properties == properties
    assert row.extras == {
        "memory_stores": ["ann"],
        "document_ids": ["d1"],
        "document_tags": ["faq"],
        "document_retrieval_strategy": "speed",
    }
    props = service.properties(row)
    assert props.max_call_duration_s == 600 and props.captions
    assert props.participant_left_timeout_s == 10 and props.participant_absent_timeout_s == 60
    defaults = service.properties(Conversation(properties={}))
    assert defaults.max_call_duration_s == 3600
    assert defaults.participant_left_timeout_s == 0
    assert defaults.participant_absent_timeout_s == 300


def test_test_mode_is_created_ended(client: TestClient, runtime: Runtime) -> None:
    replica_id = make_replica(runtime)
    body = client.post("/v2/conversations", json={"replica_id": replica_id, "test_mode": True})
    assert body.json()["status"] == "ended"
    assert _row(runtime, body.json()["conversation_id"]).test_mode is True


def test_errors_in_tavus_shape(client: TestClient, runtime: Runtime) -> None:
    def refused(body: dict[str, Any]) -> str:
        response = client.post("/v2/conversations", json=body)
        assert response.status_code == 400, response.text
        payload = response.json()
        assert set(payload) == {"error", "message"} and payload["error"] == payload["message"]
        return str(payload["error"])

    ready = make_replica(runtime)
    assert refused({"replica_id": "rnope"}) == "Invalid replica_id"
    assert refused({"face_id": "rnope"}) == "Invalid face_id"
    assert "still training" in refused({"replica_id": make_replica(runtime, "started")})
    assert "failed training" in refused({"replica_id": make_replica(runtime, "error")})
    assert refused({"replica_id": ready, "persona_id": "pnope"}) == "Invalid persona_id"
    assert refused({"replica_id": ready, "pal_id": "pnope"}) == "Invalid pal_id"
    assert refused({}).startswith("replica_id is required")
    assert "max_participants" in refused({"replica_id": ready, "max_participants": 1})
    assert "properties.max_call_duration" in refused(
        {"replica_id": ready, "properties": {"max_call_duration": "long"}}
    )
    assert "document_retrieval_strategy" in refused(
        {"replica_id": ready, "document_retrieval_strategy": "fast"}
    )
    assert "meeting_url is not supported yet" in refused(
        {"replica_id": ready, "meeting_url": "https://meet.google.com/abc-defg-hij"}
    )
    for props in ({"livekit_ws_url": "wss://x.livekit.cloud"}, {"livekit_room_token": "ey"}):
        message = refused({"replica_id": ready, "properties": props})
        assert message.startswith("LiveKit transport is not supported yet")
    persona = client.post(
        "/v2/personas",
        json={"pipeline_mode": "echo", "layers": {"transport": {"transport_type": "livekit"}}},
    ).json()["persona_id"]
    message = refused({"replica_id": ready, "persona_id": persona})
    assert "layers.transport.transport_type" in message
    assert refused({"replica_id": ready, "callback_url": "ftp://x"}) == "Invalid callback_url"


def test_a_private_callback_is_refused_by_default(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = make_replica(runtime)
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(
        update={"allow_private_urls": False}
    ))  # fmt: skip
    response = client.post(
        "/v2/conversations", json={"replica_id": ready, "callback_url": "http://10.0.0.5/hook"}
    )
    assert response.status_code == 400
    assert "private" in response.json()["error"]


def test_past_capacity_answers_tavus_message(client: TestClient, runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"max_conversations": 1})
    ready = make_replica(runtime)
    first = client.post("/v2/conversations", json={"replica_id": ready}).json()
    test_mode = client.post("/v2/conversations", json={"replica_id": ready, "test_mode": True})
    assert test_mode.status_code == 200  # takes no slot
    full = client.post("/v2/conversations", json={"replica_id": ready})
    assert full.status_code == 400
    assert full.json() == {"message": "User has reached maximum concurrent conversations"}
    client.post(f"/v2/conversations/{first['conversation_id']}/end")
    assert client.post("/v2/conversations", json={"replica_id": ready}).status_code == 200


def race_creates(client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Six creates at once against a capacity of two: exactly two get a conversation. Each
    waits (up to 2 s) after counting until all six have counted: without a lock all six count
    zero and insert; with it the first waits alone, then the rest count one by one."""
    runtime.settings = runtime.settings.model_copy(update={"max_conversations": 2})
    ready = make_replica(runtime)
    creates = 6
    counted = threading.Barrier(creates, timeout=2)
    count = repository.active_count

    def count_then_wait(session: Any) -> int:
        found = count(session)
        with contextlib.suppress(threading.BrokenBarrierError):
            counted.wait()
        return found

    monkeypatch.setattr(repository, "active_count", count_then_wait)
    with ThreadPoolExecutor(creates) as pool:
        answers = list(
            pool.map(
                lambda _: client.post("/v2/conversations", json={"replica_id": ready}),
                range(creates),
            )
        )
    assert sorted(a.status_code for a in answers) == [200] * 2 + [400] * (creates - 2)
    full = {"message": "User has reached maximum concurrent conversations"}
    assert all(a.json() == full for a in answers if a.status_code == 400)
    listed = client.get("/v2/conversations", params={"status": "active"}).json()
    assert listed["total_count"] == 2


def test_capacity_holds_under_concurrent_creates(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    race_creates(client, runtime, monkeypatch)


def test_persona_default_replica_and_the_stock_pal(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    pal_id = client.post(
        "/v2/pals", json={"pal_name": "Echo", "pipeline_mode": "echo", "default_face_id": ready}
    ).json()["pal_id"]
    created = client.post("/v2/conversations", json={"pal_id": pal_id}).json()
    assert created["replica_id"] == ready and created["pal_id"] == pal_id
    # An explicit replica overrides the persona's default.
    other = make_replica(runtime)
    created = client.post("/v2/conversations", json={"pal_id": pal_id, "face_id": other}).json()
    assert created["face_id"] == other
    # livekit-plugins-tavus names Tavus's stock pal when its user named none.
    stock = client.post("/v2/conversations", json={"pal_id": "pb87e71797da", "face_id": ready})
    assert stock.status_code == 200 and stock.json()["pal_id"] == "pb87e71797da"


def test_a_chat_needs_no_replica(client: TestClient, runtime: Runtime) -> None:
    persona_id = client.post(
        "/v2/personas", json={"persona_name": "Tutor", "system_prompt": "Teach."}
    ).json()["persona_id"]
    body = {"persona_id": persona_id, "chat": True, "custom_greeting": "Hi!"}
    response = client.post("/v2/conversations", json=body)
    assert response.status_code == 200, response.text
    row = _row(runtime, response.json()["conversation_id"])
    assert row.chat and row.replica_id is None and row.custom_greeting == "Hi!"


# -- require_auth and the page ----------------------------------------------------------------


def test_require_auth_returns_a_token_the_page_requires(
    client: TestClient, runtime: Runtime
) -> None:
    ready = make_replica(runtime)
    created = client.post("/v2/conversations", json={"replica_id": ready, "require_auth": True})
    body = created.json()
    assert set(body) == CREATED_KEYS | {"replica_id", "persona_id", "meeting_token"}
    token = body["meeting_token"]
    assert len(token) >= 32
    row = _row(runtime, body["conversation_id"])
    assert row.meeting_token_hash and token not in row.meeting_token_hash
    assert "meeting_token" not in client.get(f"/v2/conversations/{row.id}").json()
    assert service.token_ok(row, token) and not service.token_ok(row, token + "x")

    page = f"/c/{row.id}"
    anonymous = TestClient(client.app)  # a browser: no x-api-key
    assert anonymous.get(page).status_code == 401
    assert 'data-state="token-required"' in anonymous.get(page, params={"t": "wrong"}).text
    opened = anonymous.get(page, params={"t": token})
    assert opened.status_code == 200 and 'data-state="active"' in opened.text


def test_the_token_page_tells_nothing(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    created = client.post(
        "/v2/conversations",
        json={"replica_id": ready, "require_auth": True, "conversation_name": "Board meeting"},
    ).json()
    refused = TestClient(client.app).get(f"/c/{created['conversation_id']}")
    assert refused.status_code == 401 and "Board meeting" not in refused.text


def test_the_page_answers_for_open_ended_and_unknown(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    conversation_id = client.post("/v2/conversations", json={"replica_id": ready}).json()[
        "conversation_id"
    ]
    anonymous = TestClient(client.app)
    opened = anonymous.get(f"/c/{conversation_id}")
    assert opened.status_code == 200 and opened.headers["content-type"].startswith("text/html")
    client.post(f"/v2/conversations/{conversation_id}/end")
    assert 'data-state="ended"' in anonymous.get(f"/c/{conversation_id}").text
    assert anonymous.get("/c/cnope").status_code == 404


def test_the_page_carries_its_own_player(client: TestClient, runtime: Runtime) -> None:
    """No CDN: the script and style come from the app, and the page can be framed.
    (tests/e2e/test_page.py drives it in a browser.)"""
    ready = make_replica(runtime)
    body = {"replica_id": ready, "properties": {"enable_closed_captions": True}}
    conversation_id = client.post("/v2/conversations", json=body).json()["conversation_id"]
    anonymous = TestClient(client.app)
    page = anonymous.get(f"/c/{conversation_id}")
    assert 'id="join"' in page.text and 'data-captions="true"' in page.text
    assert "x-frame-options" not in page.headers
    assert "http" not in page.text.split("<body>")[0]  # nothing from elsewhere
    script = anonymous.get("/c/assets/conversation.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert '"app-message"' in script.text
    assert anonymous.get("/c/assets/conversation.css").status_code == 200
    assert anonymous.get("/c/assets/nope.js").status_code == 404


# -- list, end, delete ------------------------------------------------------------------------


def test_list_pages_and_filters(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    ids = [
        client.post("/v2/conversations", json={"replica_id": ready}).json()["conversation_id"]
        for _ in range(3)
    ]
    client.post(f"/v2/conversations/{ids[0]}/end")
    listed = client.get("/v2/conversations").json()
    assert set(listed) == {"data", "total_count"} and listed["total_count"] == 3
    assert all(set(item) == GET_KEYS for item in listed["data"])
    first = client.get("/v2/conversations", params={"limit": 2, "page": 1}).json()
    second = client.get("/v2/conversations", params={"limit": 2, "page": 2}).json()
    assert len(first["data"]) == 2 and len(second["data"]) == 1
    assert client.get("/v2/conversations", params={"limit": 2, "page": 0}).json() == first
    ended = client.get("/v2/conversations", params={"status": "ended"}).json()
    assert [c["conversation_id"] for c in ended["data"]] == [ids[0]]
    assert client.get("/v2/conversations", params={"status": "active"}).json()["total_count"] == 2
    bad = client.get("/v2/conversations", params={"status": "paused"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]


def test_end_without_a_body_and_with_an_empty_one(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    conversation_id = client.post("/v2/conversations", json={"replica_id": ready}).json()[
        "conversation_id"
    ]
    assert client.post(f"/v2/conversations/{conversation_id}/end").status_code == 200
    assert client.post(f"/v2/conversations/{conversation_id}/end", json={}).status_code == 200
    body = client.get(f"/v2/conversations/{conversation_id}", params={"verbose": True}).json()
    assert body["status"] == "ended"
    assert body["shutdown_reason"] == "end_conversation_endpoint_hit"
    assert [e["event_type"] for e in body["events"]] == ["system.shutdown"]  # once
    missing = client.post("/v2/conversations/cnope/end")
    assert missing.status_code == 400 and missing.json()["error"] == "Invalid conversation_id"


def test_delete_soft_and_hard(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    soft, hard = (
        client.post("/v2/conversations", json={"replica_id": ready}).json()["conversation_id"]
        for _ in range(2)
    )
    assert client.delete(f"/v2/conversations/{soft}").status_code == 204
    assert client.get(f"/v2/conversations/{soft}").status_code == 400
    assert _row(runtime, soft).status == "ended"  # a deleted conversation is never active
    assert client.delete(f"/v2/conversations/{soft}", params={"hard": "true"}).status_code == 204
    assert client.delete(f"/v2/conversations/{hard}", params={"hard": "true"}).status_code == 204
    with runtime.sessions() as session:
        assert session.get(Conversation, soft) is None and session.get(Conversation, hard) is None
    assert client.delete(f"/v2/conversations/{hard}").status_code == 400


# -- the media side, webhooks and the sweep ---------------------------------------------------


def test_webhooks_are_signed_tavus_envelopes(
    client: TestClient, runtime: Runtime, receiver: Receiver
) -> None:
    ready = make_replica(runtime)
    conversation_id = client.post(
        "/v2/conversations", json={"replica_id": ready, "callback_url": receiver.url}
    ).json()["conversation_id"]
    take_queued(runtime)
    with transaction(runtime.sessions) as session:
        sent = service.mark_joined(session, conversation_id)
        assert service.mark_joined(session, conversation_id) == []  # once
        service.append_transcript(
            session,
            conversation_id,
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        )
        sent += service.recording_ready(
            session, conversation_id, "likeness", "recordings/c.mp4", 12.5
        )
        sent += service.end(session, conversation_id, service.PARTICIPANT_LEFT)
    assert len(sent) == 4
    # The media worker enqueues these after its commit; here they are delivered directly.
    secret = runtime.settings.webhook_secret
    assert secret
    for event_id in sent:
        assert webhooks.deliver(
            runtime.sessions,
            event_id,
            secret=secret,
            retry_delays_s=[],
            timeout_s=2,
            allow_private=True,
        ).delivered
    calls = receiver.received()
    for call in calls:
        verify(secret, call["body"], call["headers"])
    payloads = [c["json"] for c in calls]
    assert all(set(p) == ENVELOPE_KEYS for p in payloads)
    assert [(p["event_type"], p["message_type"]) for p in payloads] == [
        ("system.replica_joined", "system"),
        ("application.recording_ready", "application"),
        ("system.shutdown", "system"),
        ("application.transcription_ready", "application"),
    ]
    joined, recording, shutdown, transcript = payloads
    assert joined["properties"] == {"replica_id": ready}
    assert joined["conversation_id"] == conversation_id and joined["webhook_url"] == receiver.url
    assert ISO_US.match(joined["timestamp"])
    assert recording["properties"] == {
        "bucket_name": "likeness",
        "s3_key": "recordings/c.mp4",
        "duration": 12.5,
    }
    assert shutdown["properties"] == {
        "replica_id": ready,
        "shutdown_reason": "participant_left_timeout reached",
    }
    assert transcript["properties"]["transcript"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    verbose = client.get(f"/v2/conversations/{conversation_id}", params={"verbose": True}).json()
    assert verbose["events"] == payloads
    assert verbose["transcript"] == transcript["properties"]["transcript"]
    assert verbose["shutdown_reason"] == "participant_left_timeout reached"


def test_end_endpoint_sends_the_shutdown_webhook(
    client: TestClient, runtime: Runtime, receiver: Receiver
) -> None:
    ready = make_replica(runtime)
    conversation_id = client.post(
        "/v2/conversations", json={"replica_id": ready, "callback_url": receiver.url}
    ).json()["conversation_id"]
    take_queued(runtime)
    client.post(f"/v2/conversations/{conversation_id}/end")
    _deliver_all(runtime)  # what /end enqueued after its commit
    (call,) = receiver.received()
    assert call["json"]["event_type"] == "system.shutdown"
    assert call["json"]["properties"]["shutdown_reason"] == "end_conversation_endpoint_hit"


def test_a_transcript_entry_is_checked(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    conversation_id = client.post("/v2/conversations", json={"replica_id": ready}).json()[
        "conversation_id"
    ]
    with transaction(runtime.sessions) as session, pytest.raises(ValueError):
        service.append_transcript(session, conversation_id, [{"role": "bot", "content": "x"}])


def test_media_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LIKENESS_ICE_SERVERS",
        '[{"urls": "stun:stun.example.org"}, '
        '{"urls": ["turn:t.example.org"], "username": "u", "credential": "p"}]',
    )
    monkeypatch.setenv("LIKENESS_MAX_CONVERSATIONS", "4")
    monkeypatch.setenv("LIKENESS_CONVERSATION_MAX_HEIGHT", "720")
    settings = Settings()
    stun, turn = settings.ice_servers
    assert stun.urls == "stun:stun.example.org" and stun.username is None
    assert turn.urls == ["turn:t.example.org"] and turn.credential == "p"
    assert settings.max_conversations == 4 and settings.conversation_max_height == 720


def test_the_persona_the_media_side_sees(client: TestClient, runtime: Runtime) -> None:
    ready = make_replica(runtime)
    persona_id = client.post(
        "/v2/personas",
        json={"system_prompt": "Be brief.", "context": "Ann", "default_replica_id": ready},
    ).json()["persona_id"]
    own, default = (
        client.post("/v2/conversations", json=body).json()["conversation_id"]
        for body in ({"persona_id": persona_id}, {"replica_id": ready})
    )
    with runtime.sessions() as session:
        view = service.persona_of(session, _row(runtime, own))
        assert (view.pipeline_mode, view.system_prompt, view.context) == (
            "full",
            "Be brief.",
            "Ann",
        )
        fallback = service.persona_of(session, _row(runtime, default))
        assert fallback.persona_id == "pb87e71797da" and fallback.pipeline_mode == "echo"


def test_one_worker_claims_and_ending_stops_its_renewals(
    client: TestClient, runtime: Runtime
) -> None:
    ready = make_replica(runtime)
    conversation_id = client.post("/v2/conversations", json={"replica_id": ready}).json()[
        "conversation_id"
    ]
    claim = service.claim(runtime.sessions, conversation_id, lease_s=20)
    assert claim is not None
    assert service.claim(runtime.sessions, conversation_id, lease_s=20) is None
    assert claim.update()  # a renewal
    client.post(f"/v2/conversations/{conversation_id}/end")
    assert not claim.update()  # the worker learns the conversation ended: it hangs up

    other = client.post("/v2/conversations", json={"replica_id": ready}).json()["conversation_id"]
    claim = service.claim(runtime.sessions, other, lease_s=20)
    assert claim is not None
    with transaction(runtime.sessions) as session:
        service.end_claimed(session, claim, service.MAX_CALL_DURATION)
    assert _row(runtime, other).shutdown_reason == "max_call_duration reached"
    assert _row(runtime, other).lease_expires_at is None


def test_the_sweep_ends_a_conversation_whose_worker_died(
    client: TestClient, runtime: Runtime, receiver: Receiver
) -> None:
    ready = make_replica(runtime)
    conversation_id = client.post(
        "/v2/conversations", json={"replica_id": ready, "callback_url": receiver.url}
    ).json()["conversation_id"]
    unserved = client.post("/v2/conversations", json={"replica_id": ready}).json()[
        "conversation_id"
    ]
    take_queued(runtime)
    lease_s = runtime.settings.conversation_lease_s
    claim = service.claim(runtime.sessions, conversation_id, lease_s)
    assert claim is not None  # ... and its worker dies: nobody renews the lease
    ctx = JobContext(runtime.sessions, runtime.storage, runtime.settings, runtime.queue)

    def later(seconds: float) -> Any:
        return utcnow() + timedelta(seconds=seconds)

    assert sweep(ctx, later(lease_s)) == []  # within the grace: maybe only late
    assert sweep(ctx, later(2 * lease_s)) == [("conversation.media", conversation_id)]
    assert sweep(ctx, later(2 * lease_s)) == []  # ended once
    row = _row(runtime, conversation_id)
    assert row.status == "ended"
    assert row.shutdown_reason == "internal error occurred at step media worker"
    assert _row(runtime, unserved).status == "active"  # waiting for a worker is not dying
    assert not claim.update()
    _deliver_all(runtime)  # the sweep enqueued the shutdown webhook after its commit
    (call,) = receiver.received()
    assert call["json"]["event_type"] == "system.shutdown"
    assert call["json"]["properties"]["shutdown_reason"] == row.shutdown_reason
    with runtime.sessions() as session:
        assert session.query(WebhookEvent).filter_by(subject_id=conversation_id).count() == 1
