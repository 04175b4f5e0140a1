"""Tenant events: every verification change reaches the tenant, signed, at least once."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post
from nacl.signing import VerifyKey

from otp_service.devredis import PrivateRedis
from otp_service.usecases.events import retry_delay_ms
from tests.conftest import (
    ADMIN_TOKEN,
    MakeTenant,
    MovableClock,
    Simulator,
    TenantHandle,
    fresh_number,
    sent_codes,
    service_on,
)
from tests.servers import serve


@dataclass
class Receiver:
    """A tenant's event endpoint: records what arrives; can be down or hold requests."""

    events: list[dict[str, Any]] = field(default_factory=list)
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    down: bool = False
    hold: threading.Event = field(default_factory=threading.Event)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def app(self) -> Litestar:
        @post("/events", status_code=200)
        async def take(request: Request[Any, Any, Any]) -> Response[str]:
            body = await request.body()
            while not self.hold.is_set():
                await asyncio.sleep(0.01)
            if self.down:
                event = json.loads(body)
                self.refused.append((event["type"], event["data"]["id"]))
                return Response("down", status_code=503)
            self.raw.append((dict(request.headers), body))
            self.events.append(json.loads(body))
            return Response("ok")

        return Litestar([take])

    def refusals(self, event_type: str, verification_id: str) -> int:
        """How many deliveries of this verification's event were refused."""
        return self.refused.count((event_type, verification_id))

    def about(self, verification_id: str) -> list[dict[str, Any]]:
        """The events received about one verification (others' may still trickle in)."""
        return [e for e in self.events if e["data"]["id"] == verification_id]

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    receiver.hold.set()
    with serve(receiver.app()) as url:
        yield receiver, f"{url}/events"


@pytest.fixture
def receiver(receiver_server: tuple[Receiver, str]) -> Iterator[Receiver]:
    """The receiver, emptied and up for this test."""
    found, _ = receiver_server
    found.events.clear()
    found.raw.clear()
    found.down = False
    found.refused.clear()
    found.hold.set()
    yield found
    found.hold.set()
    found.down = False


@pytest.fixture
async def subscriber(
    make_tenant: MakeTenant, receiver_server: tuple[Receiver, str]
) -> TenantHandle:
    """A tenant whose events go to the receiver."""
    return await make_tenant(events_webhook_url=receiver_server[1])


async def arrives(receiver: Receiver, event_type: str, verification_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for event in receiver.of_type(event_type):
            if event["data"]["id"] == verification_id:
                return event
        await asyncio.sleep(0.05)
    pytest.fail(f"no {event_type} event for {verification_id}")


async def refused(receiver: Receiver, verification_id: str, times: int) -> None:
    """Wait until the verification's created event was refused ``times`` times."""
    deadline = time.monotonic() + 10
    while receiver.refusals("verification.created", verification_id) < times:
        assert time.monotonic() < deadline, receiver.refused
        await asyncio.sleep(0.05)


async def start(tenant: TenantHandle, number: str) -> dict[str, Any]:
    response = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    body: dict[str, Any] = response.json()
    return body


async def test_every_event_is_signed_with_the_published_key(
    subscriber: TenantHandle, receiver: Receiver
) -> None:
    """A created event verifies with pynacl against GET /v1/webhook-public-key."""
    verification = await start(subscriber, fresh_number())
    event = await arrives(receiver, "verification.created", verification["id"])
    assert event["id"].startswith("evt_")
    assert event["data"]["status"] == "pending"
    assert event["created_at"].endswith("Z")
    key = (await subscriber.client.get("/v1/webhook-public-key")).json()["public_key"]
    headers, body = next((h, b) for h, b in receiver.raw if json.loads(b)["id"] == event["id"])
    timestamp, signature = headers["otp-timestamp"], headers["otp-signature-ed25519"]
    assert abs(int(timestamp) - time.time()) < 60
    VerifyKey(base64.b64decode(key)).verify(
        timestamp.encode() + b"|" + body, base64.b64decode(signature)
    )


async def test_approved_canceled_and_max_attempts_reached_are_reported(
    subscriber: TenantHandle, receiver: Receiver, sim: httpx.AsyncClient
) -> None:
    """Each way a verification ends by a call sends its event with the ended verification."""
    number = fresh_number()
    approved = await start(subscriber, number)
    [code] = await sent_codes(sim, number)
    await subscriber.client.post(f"/v1/verifications/{approved['id']}/check", json={"code": code})
    assert (await arrives(receiver, "verification.approved", approved["id"]))["data"][
        "status"
    ] == "approved"

    canceled = await start(subscriber, fresh_number())
    await subscriber.client.post(f"/v1/verifications/{canceled['id']}/cancel")
    await arrives(receiver, "verification.canceled", canceled["id"])

    number = fresh_number()
    maxed = await start(subscriber, number)
    [code] = await sent_codes(sim, number)
    wrong = "".join(str((int(c) + 1) % 10) for c in code)
    for _ in range(5):
        await subscriber.client.post(f"/v1/verifications/{maxed['id']}/check", json={"code": wrong})
    event = await arrives(receiver, "verification.max_attempts_reached", maxed["id"])
    assert event["data"]["check_attempts"] == 5


async def test_expiry_is_reported_without_any_call(
    subscriber: TenantHandle, receiver: Receiver, clock: MovableClock
) -> None:
    """Past its TTL, a verification nobody touched is reported expired."""
    verification = await start(subscriber, fresh_number())
    clock.advance(601)
    event = await arrives(receiver, "verification.expired", verification["id"])
    assert event["data"]["status"] == "expired"
    read = await subscriber.client.get(f"/v1/verifications/{verification['id']}")
    assert read.json()["status"] == "expired"


async def test_a_failed_verification_is_reported(
    subscriber: TenantHandle, receiver: Receiver, sim: httpx.AsyncClient
) -> None:
    """When every sender refuses, a failed event follows the created one."""
    number = fresh_number()
    await sim.post(
        "/_sim/behaviours", json={"to": number, "action": "reject", "error_code": "40310"}
    )
    response = await subscriber.client.post("/v1/verifications", json={"phone_number": number})
    verification_id = response.json()["verification_id"]
    event = await arrives(receiver, "verification.failed", verification_id)
    assert event["data"]["messages"][0]["error_codes"] == ["40310"]
    await arrives(receiver, "verification.created", verification_id)


async def test_tenants_without_an_events_url_get_nothing(
    tenant: TenantHandle, receiver: Receiver
) -> None:
    """A tenant that set no events_webhook_url causes no event."""
    verification = await start(tenant, fresh_number())
    await asyncio.sleep(0.5)
    assert receiver.about(verification["id"]) == []


async def test_the_api_answers_while_the_receiver_is_stuck(
    subscriber: TenantHandle, receiver: Receiver
) -> None:
    """A receiver that does not answer never holds up the API."""
    receiver.hold.clear()
    verification = await start(subscriber, fresh_number())
    assert verification["status"] == "pending"
    assert receiver.about(verification["id"]) == []
    receiver.hold.set()
    await arrives(receiver, "verification.created", verification["id"])


async def test_events_are_retried_while_the_receiver_is_down(
    subscriber: TenantHandle, receiver: Receiver, clock: MovableClock
) -> None:
    """Refused deliveries are retried with backoff and arrive once the receiver is back."""
    receiver.down = True
    verification = await start(subscriber, fresh_number())
    await refused(receiver, verification["id"], 1)
    clock.advance(6)
    await refused(receiver, verification["id"], 2)
    receiver.down = False
    clock.advance(11)
    await arrives(receiver, "verification.created", verification["id"])


async def test_events_queued_before_a_restart_are_delivered_after_it(
    simulator: Simulator, receiver_server: tuple[Receiver, str], receiver: Receiver
) -> None:
    """Events emitted by a service that stops before sending them are sent by the next one."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with PrivateRedis() as redis:
        with service_on(redis.url, simulator, OTP_RUN_WORKERS="0") as url:
            async with httpx.AsyncClient(base_url=url, headers=admin) as client:
                tenant = await client.post(
                    "/admin/tenants",
                    json={
                        "name": "Restarted",
                        "settings": {
                            "events_webhook_url": receiver_server[1],
                            "senders": {"default": [{"type": "long_code", "from": "+13125550100"}]},
                        },
                    },
                )
                key = (await client.post(f"/admin/tenants/{tenant.json()['id']}/api-keys")).json()[
                    "key"
                ]
                client.headers["Authorization"] = f"Bearer {key}"
                started = await client.post(
                    "/v1/verifications", json={"phone_number": fresh_number()}
                )
            await asyncio.sleep(0.3)
            assert receiver.about(started.json()["id"]) == []
        with service_on(redis.url, simulator):
            await arrives(receiver, "verification.created", started.json()["id"])


async def test_the_readme_snippet_verifies_a_real_event(
    subscriber: TenantHandle, receiver: Receiver
) -> None:
    """The README's handler (a verify_event call) accepts a real event, refuses a tampered one."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Tenant events", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    key = (await subscriber.client.get("/v1/webhook-public-key")).json()["public_key"]
    namespace: dict[str, Any] = {}
    exec(snippet.replace("…from GET /v1/webhook-public-key…", key), namespace)  # noqa: S102
    verification = await start(subscriber, fresh_number())
    event = await arrives(receiver, "verification.created", verification["id"])
    headers, body = next((h, b) for h, b in receiver.raw if json.loads(b)["id"] == event["id"])
    assert namespace["receive"](headers, body) == 200
    assert namespace["receive"](headers, body.replace(b"pending", b"approved")) == 400


async def test_message_status_changes_are_reported(
    subscriber: TenantHandle, receiver: Receiver
) -> None:
    """Delivery receipts that change a message send message.status with the new status."""
    verification = await start(subscriber, fresh_number())
    deadline = time.monotonic() + 15
    statuses: list[str] = []
    while "delivered" not in statuses and time.monotonic() < deadline:
        statuses = [
            e["data"]["messages"][0]["status"]
            for e in receiver.of_type("message.status")
            if e["data"]["id"] == verification["id"]
        ]
        await asyncio.sleep(0.05)
    assert "delivered" in statuses


def test_retries_start_within_five_seconds_and_double_up_to_ten_minutes() -> None:
    """The wait after each failed attempt: 5 s, 10 s, 20 s, ... capped at 10 min."""
    waits = [retry_delay_ms(attempt) for attempt in range(1, 11)]
    assert waits == [
        5_000,
        10_000,
        20_000,
        40_000,
        80_000,
        160_000,
        320_000,
        600_000,
        600_000,
        600_000,
    ]


async def test_an_event_undeliverable_for_a_day_is_dropped(
    subscriber: TenantHandle, receiver: Receiver, clock: MovableClock
) -> None:
    """After 24 h of refusals an event is given up; a receiver back later does not get it."""
    receiver.down = True
    verification = await start(subscriber, fresh_number())
    await refused(receiver, verification["id"], 1)
    clock.advance(24 * 3600 + 1)
    await refused(receiver, verification["id"], 2)
    receiver.down = False
    clock.advance(3600)
    await arrives(receiver, "verification.expired", verification["id"])
    created = receiver.of_type("verification.created")
    assert all(e["data"]["id"] != verification["id"] for e in created)


async def test_receipts_that_come_before_the_send_answer_are_reported(
    subscriber: TenantHandle, receiver: Receiver, sim: httpx.AsyncClient
) -> None:
    """Receipts Telnyx posts before answering the send are applied with the message and reported.

    They are kept until the message is recorded; applying them then used to change the
    message without any message.status event.
    """
    number = fresh_number()
    behaviour = {"to": number, "action": "deliver", "receipts": "before"}
    (await sim.post("/_sim/behaviours", json=behaviour)).raise_for_status()
    verification = await start(subscriber, number)
    assert verification["messages"][0]["status"] == "delivered"
    event = await arrives(receiver, "message.status", verification["id"])
    assert event["data"]["messages"][0]["status"] == "delivered"
