"""Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature headers)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook


def body_of(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def signed_headers(secret: str, message_id: str, moment: datetime, body: str) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, moment, body)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def verify(secret: str, body: str, headers: dict[str, str]) -> Any:
    """Raises standardwebhooks.WebhookVerificationError if the signature is wrong."""
    return Webhook(secret).verify(body, headers)
