"""``POST /webhooks/telnyx``: signatures, timestamps, duplicates and unknown messages."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from tests.conftest import Simulator, TenantHandle, fresh_number


def finalized(message_id: str, status: str, *, event_id: str | None = None) -> bytes:
    event: dict[str, Any] = {
        "data": {
            "event_type": "message.finalized",
            "id": event_id or str(uuid.uuid4()),
            "occurred_at": "2026-11-26T12:00:00.000+00:00",
            "payload": {
                "id": message_id,
                "to": [{"phone_number": "+447400123456", "status": status}],
                "errors": [],
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": "http://example.test"},
    }
    return json.dumps(event).encode()


def signed(seed: bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SigningKey(seed).sign(f"{stamp}|".encode() + body).signature
    return {
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "content-type": "application/json",
    }


async def _message_id(tenant: TenantHandle, sim: httpx.AsyncClient) -> tuple[str, str]:
    number = fresh_number()
    await sim.post("/_sim/behaviours", json={"to": number, "action": "silent"})
    started = (await tenant.client.post("/v1/verifications", json={"phone_number": number})).json()
    return started["id"], started["messages"][0]["id"]


async def _status(tenant: TenantHandle, verification_id: str) -> str:
    read = await tenant.client.get(f"/v1/verifications/{verification_id}")
    status: str = read.json()["messages"][0]["status"]
    return status


async def test_a_signed_receipt_updates_the_message(
    tenant: TenantHandle, sim: httpx.AsyncClient, anonymous: httpx.AsyncClient, simulator: Simulator
) -> None:
    """A correctly signed message.finalized sets the message's status."""
    verification_id, message_id = await _message_id(tenant, sim)
    assert await _status(tenant, verification_id) == "queued"
    body = finalized(message_id, "delivered")
    response = await anonymous.post(
        "/webhooks/telnyx", content=body, headers=signed(simulator.seed, body)
    )
    assert response.status_code == 200
    assert await _status(tenant, verification_id) == "delivered"


async def test_a_late_earlier_status_never_replaces_a_final_one(
    tenant: TenantHandle, sim: httpx.AsyncClient, anonymous: httpx.AsyncClient, simulator: Simulator
) -> None:
    """A 'sent' arriving after 'delivered' (out of order) leaves 'delivered'."""
    verification_id, message_id = await _message_id(tenant, sim)
    for status in ("delivered", "sent"):
        body = finalized(message_id, status)
        await anonymous.post("/webhooks/telnyx", content=body, headers=signed(simulator.seed, body))
    assert await _status(tenant, verification_id) == "delivered"


async def test_a_duplicate_event_is_accepted_and_applied_once(
    tenant: TenantHandle, sim: httpx.AsyncClient, anonymous: httpx.AsyncClient, simulator: Simulator
) -> None:
    """The same event twice answers 200 both times and changes nothing the second time."""
    verification_id, message_id = await _message_id(tenant, sim)
    event_id = str(uuid.uuid4())
    body = finalized(message_id, "delivery_failed", event_id=event_id)
    for _ in range(2):
        response = await anonymous.post(
            "/webhooks/telnyx", content=body, headers=signed(simulator.seed, body)
        )
        assert response.status_code == 200
    assert await _status(tenant, verification_id) == "delivery_failed"


async def test_an_event_for_an_unknown_message_is_accepted(
    anonymous: httpx.AsyncClient, simulator: Simulator
) -> None:
    """Telnyx gets 200 for a signed event about a message we never sent."""
    body = finalized(str(uuid.uuid4()), "delivered")
    response = await anonymous.post(
        "/webhooks/telnyx", content=body, headers=signed(simulator.seed, body)
    )
    assert response.status_code == 200


async def test_a_signed_but_malformed_payload_is_accepted_without_effect(
    anonymous: httpx.AsyncClient, simulator: Simulator
) -> None:
    """A signed JSON body that is not an event we know answers 200 (Telnyx must not retry it)."""
    for body in (b"{}", b"[]", b'{"data": {"event_type": "message.finalized"}}'):
        response = await anonymous.post(
            "/webhooks/telnyx", content=body, headers=signed(simulator.seed, body)
        )
        assert response.status_code == 200


@pytest.mark.parametrize("case", ["missing", "other_key", "tampered", "stale", "future", "garbage"])
async def test_a_bad_signature_or_timestamp_is_401(
    anonymous: httpx.AsyncClient, simulator: Simulator, case: str
) -> None:
    """Unsigned, wrongly signed, tampered, stale (>300 s) or future events get 401."""
    body = finalized(str(uuid.uuid4()), "delivered")
    headers = signed(simulator.seed, body)
    sent = body
    if case == "missing":
        headers = {"content-type": "application/json"}
    elif case == "other_key":
        headers = signed(bytes(32), body)
    elif case == "tampered":
        sent = body.replace(b"delivered", b"delivery_failed")
    elif case == "stale":
        headers = signed(simulator.seed, body, int(time.time()) - 301)
    elif case == "future":
        headers = signed(simulator.seed, body, int(time.time()) + 301)
    else:
        headers["telnyx-signature-ed25519"] = "not base64!"
    response = await anonymous.post("/webhooks/telnyx", content=sent, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
