"""Sender routing by country and automatic fallback, end to end with signed webhooks.

The simulator is scripted per number and sender type; the service walks the tenant's chain
on refusals, and its worker re-sends through the next sender when a receipt reports a
failure or when no receipt comes in time. Every earlier code keeps working.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NamedTuple

import httpx
import pytest
from nacl.signing import SigningKey
from redis.asyncio import Redis

from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.adapters.redis_work import FallbackJob, WorkQueue
from otp_service.devredis import PrivateRedis
from otp_service.log import TextFormatter
from otp_service.simulator.state import POOL_NUMBER
from tests.conftest import (
    ADMIN_TOKEN,
    PROFILE_ID,
    MakeTenant,
    MovableClock,
    Simulator,
    TenantHandle,
    fresh_number,
    service_on,
)

CHAINS: dict[str, Any] = {
    "messaging_profile_id": PROFILE_ID,
    "senders": {
        "GB": [
            {"type": "alphanumeric_sender_id", "from": "ACME"},
            {"type": "long_code", "from": "+447400123000"},
        ],
        "US": [{"type": "short_code", "from": "12345"}, {"type": "number_pool"}],
        "FR": [
            {"type": "long_code", "from": "+33612000000"},
            {"type": "alphanumeric_sender_id", "from": "ACME FR"},
        ],
        "default": [{"type": "number_pool"}, {"type": "long_code", "from": "+13125550100"}],
    },
}


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("the condition did not come true in time")
        await asyncio.sleep(0.05)


async def script(sim: httpx.AsyncClient, number: str, **behaviour: object) -> None:
    (await sim.post("/_sim/behaviours", json={"to": number, **behaviour})).raise_for_status()


async def inbox(sim: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    response = await sim.get("/_sim/messages", params={"to": number})
    messages: list[dict[str, Any]] = response.json()
    return messages


async def start(tenant: TenantHandle, number: str) -> httpx.Response:
    return await tenant.client.post("/v1/verifications", json={"phone_number": number})


async def read(tenant: TenantHandle, verification_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await tenant.client.get(f"/v1/verifications/{verification_id}")).json()
    return body


async def approves(tenant: TenantHandle, verification_id: str, code: str) -> bool:
    response = await tenant.client.post(
        f"/v1/verifications/{verification_id}/check", json={"code": code}
    )
    return bool(response.json().get("valid"))


@pytest.fixture
async def tenant(make_tenant: MakeTenant) -> TenantHandle:
    """A tenant with a two-sender chain for GB, US, FR and the rest."""
    return await make_tenant(**CHAINS)


@pytest.mark.parametrize(
    ("region", "endpoint", "sender", "profile"),
    [
        ("GB", "/messages/alphanumeric_sender_id", "ACME", PROFILE_ID),
        ("US", "/messages/short_code", "12345", None),
        ("FR", "/messages/long_code", "+33612000000", None),
        ("DE", "/messages/number_pool", POOL_NUMBER, PROFILE_ID),
    ],
)
async def test_each_destination_goes_to_its_senders_endpoint_with_its_fields(
    tenant: TenantHandle,
    sim: httpx.AsyncClient,
    region: str,
    endpoint: str,
    sender: str,
    profile: str | None,
) -> None:
    """GB, US, FR and a default country reach Telnyx through their first sender's endpoint."""
    number = fresh_number(region)
    response = await start(tenant, number)
    assert response.status_code == 201, response.text
    [sent] = await inbox(sim, number)
    assert sent["endpoint"] == endpoint
    assert sent["from"] == sender
    assert sent["messaging_profile_id"] == profile
    assert response.json()["country"] == region


async def test_a_refusal_another_sender_avoids_falls_back_in_the_same_request(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Telnyx refusing the alphanumeric ID (40305) sends through the long code at once."""
    number = fresh_number()
    await script(sim, number, sender_type="alphanumeric_sender_id", action="reject")
    response = await start(tenant, number)
    assert response.status_code == 201, response.text
    messages = response.json()["messages"]
    refused, taken = messages
    assert (refused["sender_type"], refused["status"], refused["error_codes"]) == (
        "alphanumeric_sender_id",
        "sending_failed",
        ["40305"],
    )
    assert refused["id"] is None
    # the simulator's receipts may already have moved the second message on
    assert taken["sender_type"] == "long_code"
    assert taken["status"] in {"queued", "sent", "delivered"}
    assert taken["error_codes"] == []
    [sent] = await inbox(sim, number)
    assert sent["from"] == "+447400123000"
    assert await approves(tenant, response.json()["id"], sent["text"].split(" ")[0])


async def test_the_send_log_names_telnyx_error_codes_as_such(
    tenant: TenantHandle, sim: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused send logs Telnyx's codes as ``telnyx_errors=``, never as ``codes=``.

    A reader skimming the log for leaks must not mistake Telnyx's error numbers for OTP codes.
    """
    caplog.set_level(logging.INFO, logger="otp_service.usecases.delivery")
    number = fresh_number()
    await script(sim, number, sender_type="alphanumeric_sender_id", action="reject")
    response = await start(tenant, number)
    assert response.status_code == 201, response.text
    text = TextFormatter()
    ours = [line for line in map(text.format, caplog.records) if response.json()["id"] in line]
    assert any("outcome=rejected telnyx_errors=40305" in line for line in ours), ours
    assert all(" codes=" not in line for line in ours), ours


async def test_a_telnyx_server_error_falls_back_too(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A 500 from Telnyx for the first sender (nothing sent) moves on to the second."""
    number = fresh_number("US")
    await script(
        sim, number, sender_type="short_code", action="reject", http_status=500, error_code="10000"
    )
    response = await start(tenant, number)
    assert response.status_code == 201, response.text
    [sent] = await inbox(sim, number)
    assert sent["endpoint"] == "/messages/number_pool"


async def test_an_opted_out_recipient_is_never_tried_through_another_sender(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """40300 on the first sender is 409 and the second sender is not tried."""
    number = fresh_number()
    await script(
        sim, number, sender_type="alphanumeric_sender_id", action="reject", error_code="40300"
    )
    response = await start(tenant, number)
    assert response.status_code == 409
    assert response.json()["code"] == "recipient_opted_out"
    assert await inbox(sim, number) == []


async def test_an_error_no_sender_can_avoid_stops_the_chain(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """An invalid destination (40310) is 502 at once, the verification failed, one attempt."""
    number = fresh_number()
    await script(
        sim, number, sender_type="alphanumeric_sender_id", action="reject", error_code="40310"
    )
    response = await start(tenant, number)
    assert response.status_code == 502
    body = await read(tenant, response.json()["verification_id"])
    assert body["status"] == "failed"
    assert [m["error_codes"] for m in body["messages"]] == [["40310"]]
    assert await inbox(sim, number) == []


async def test_when_every_sender_refuses_the_verification_fails_and_says_why(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Both senders refusing is 502; GET lists each sender tried with Telnyx's codes."""
    number = fresh_number()
    await script(
        sim, number, sender_type="alphanumeric_sender_id", action="reject", error_code="40325"
    )
    await script(sim, number, sender_type="long_code", action="reject", error_code="40305")
    response = await start(tenant, number)
    assert response.status_code == 502
    assert response.json()["error_codes"] == ["40305"]
    body = await read(tenant, response.json()["verification_id"])
    assert body["status"] == "failed"
    assert [(m["sender_type"], m["error_codes"]) for m in body["messages"]] == [
        ("alphanumeric_sender_id", ["40325"]),
        ("long_code", ["40305"]),
    ]


async def test_a_timeout_is_not_retried_through_another_sender(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """After a timeout the first SMS may still arrive: 503, no second sender, still pending."""
    number = fresh_number()
    await script(sim, number, sender_type="alphanumeric_sender_id", action="timeout", times=1)
    response = await start(tenant, number)
    assert response.status_code == 503
    assert response.json()["code"] == "provider_unavailable"
    assert await inbox(sim, number) == []
    body = await read(tenant, response.json()["verification_id"])
    assert body["status"] == "pending"
    assert [m["sender_type"] for m in body["messages"]] == ["alphanumeric_sender_id"]


async def test_a_delivery_failure_resends_through_the_next_sender(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """delivery_failed for the alphanumeric SMS re-sends by long code; the first code works."""
    number = fresh_number()
    await script(
        sim, number, sender_type="alphanumeric_sender_id", action="fail", error_code="40008"
    )
    started = await start(tenant, number)
    assert started.status_code == 201
    verification_id = started.json()["id"]

    async def two_sent() -> bool:
        return len(await inbox(sim, number)) == 2

    await eventually(two_sent)
    first, second = await inbox(sim, number)
    assert (first["from"], second["from"]) == ("ACME", "+447400123000")

    async def delivered() -> bool:
        messages = (await read(tenant, verification_id))["messages"]
        return len(messages) == 2 and messages[1]["status"] == "delivered"

    await eventually(delivered)
    body = await read(tenant, verification_id)
    assert body["messages"][0]["status"] == "delivery_failed"
    assert body["messages"][0]["error_codes"] == ["40008"]
    assert body["send_count"] == 1
    assert await approves(tenant, verification_id, first["text"].split(" ")[0])


async def test_when_every_sender_fails_to_deliver_the_verification_fails(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Delivery failures on both senders end the verification as failed, with both codes."""
    number = fresh_number()
    await script(
        sim, number, sender_type="alphanumeric_sender_id", action="fail", error_code="40008"
    )
    await script(sim, number, sender_type="long_code", action="fail", error_code="40006")
    verification_id = (await start(tenant, number)).json()["id"]

    async def failed() -> bool:
        return bool((await read(tenant, verification_id))["status"] == "failed")

    await eventually(failed)
    body = await read(tenant, verification_id)
    assert [(m["sender_type"], m["status"], m["error_codes"]) for m in body["messages"]] == [
        ("alphanumeric_sender_id", "delivery_failed", ["40008"]),
        ("long_code", "delivery_failed", ["40006"]),
    ]


def failure_event(message_id: str, event_id: str) -> bytes:
    return json.dumps(
        {
            "data": {
                "event_type": "message.finalized",
                "id": event_id,
                "occurred_at": "2026-11-26T12:00:00.000+00:00",
                "payload": {
                    "id": message_id,
                    "to": [{"phone_number": "+447400000000", "status": "delivery_failed"}],
                    "errors": [{"code": "40008", "title": "Undeliverable"}],
                },
                "record_type": "event",
            },
            "meta": {"attempt": 1, "delivered_to": "http://service"},
        }
    ).encode()


def signed(seed: bytes, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = SigningKey(seed).sign(f"{stamp}|".encode() + body).signature
    return {
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "content-type": "application/json",
    }


async def test_duplicate_failure_webhooks_resend_once(
    tenant: TenantHandle,
    sim: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    simulator: Simulator,
) -> None:
    """The same failure reported four times at once (two event ids) causes one fallback."""
    number = fresh_number()
    await script(sim, number, sender_type="alphanumeric_sender_id", action="silent")
    started = (await start(tenant, number)).json()
    message_id = started["messages"][0]["id"]
    bodies = [failure_event(message_id, event) for event in (str(uuid.uuid4()),) * 2]
    bodies += [failure_event(message_id, str(uuid.uuid4())) for _ in range(2)]
    answers = await asyncio.gather(
        *(
            anonymous.post("/webhooks/telnyx", content=body, headers=signed(simulator.seed, body))
            for body in bodies
        )
    )
    assert [a.status_code for a in answers] == [200] * 4

    async def resent() -> bool:
        return len(await inbox(sim, number)) == 2

    await eventually(resent)
    await asyncio.sleep(0.5)
    assert len(await inbox(sim, number)) == 2
    assert len((await read(tenant, started["id"]))["messages"]) == 2


async def test_silence_past_the_delivery_timeout_moves_to_the_next_sender(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """No receipt within delivery_timeout_seconds re-sends by the next sender."""
    tenant = await make_tenant(**CHAINS, delivery_timeout_seconds=30)
    number = fresh_number()
    await script(sim, number, sender_type="alphanumeric_sender_id", action="silent")
    verification_id = (await start(tenant, number)).json()["id"]
    await asyncio.sleep(0.5)
    assert len(await inbox(sim, number)) == 1
    clock.advance(31)

    async def resent() -> bool:
        return len(await inbox(sim, number)) == 2

    await eventually(resent)
    first, second = await inbox(sim, number)
    assert second["endpoint"] == "/messages/long_code"
    assert await approves(tenant, verification_id, first["text"].split(" ")[0])


async def test_a_delivered_message_is_not_resent_when_its_timer_fires(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """A message delivered in time is left alone when the silence timer comes due."""
    tenant = await make_tenant(**CHAINS, delivery_timeout_seconds=30)
    number = fresh_number()
    verification_id = (await start(tenant, number)).json()["id"]

    async def delivered() -> bool:
        status = (await read(tenant, verification_id))["messages"][0]["status"]
        return bool(status == "delivered")

    await eventually(delivered)
    clock.advance(31)
    await asyncio.sleep(1)
    assert len(await inbox(sim, number)) == 1


@pytest.fixture
def own_redis() -> Iterator[str]:
    """A Redis of this test's own, so that no other service's worker takes its jobs."""
    with PrivateRedis() as server:
        yield server.url


class Queued(NamedTuple):
    """A fallback job left in a tenant's outbox by a service without workers."""

    tenant_id: str
    verification_id: str
    key: str


def _leases(tenant_id: str) -> str:
    return f"otp:{{t:{tenant_id}}}:leases"


async def _fallback_jobs(redis: Redis, tenant_id: str) -> list[str]:
    """The fallback jobs in the tenant's outbox (due, scheduled or leased)."""
    members: list[Any] = await redis.hkeys(f"otp:{{t:{tenant_id}}}:jobs")
    return [str(m) for m in members if str(m).startswith("fb:")]


async def _queued_without_workers(
    redis_url: str, simulator: Simulator, sim: httpx.AsyncClient, number: str
) -> Queued:
    """Have a service without workers take a failure receipt, then stop it.

    The fallback job is left in the tenant's outbox, untouched.
    """
    await script(
        sim, number, sender_type="alphanumeric_sender_id", action="fail", error_code="40008"
    )
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    redis = Redis.from_url(redis_url, decode_responses=True)
    with service_on(redis_url, simulator, OTP_RUN_WORKERS="0") as url:
        async with httpx.AsyncClient(base_url=url, headers=admin) as client:
            tenant = await client.post("/admin/tenants", json={"name": "R", "settings": CHAINS})
            tenant_id = tenant.json()["id"]
            key = (await client.post(f"/admin/tenants/{tenant_id}/api-keys")).json()["key"]
            client.headers["Authorization"] = f"Bearer {key}"
            started = await client.post("/v1/verifications", json={"phone_number": number})

        async def queued() -> bool:
            return bool(await _fallback_jobs(redis, tenant_id))

        await eventually(queued)
    await redis.aclose()
    assert len(await inbox(sim, number)) == 1
    return Queued(tenant_id, started.json()["id"], key)


async def _resent(sim: httpx.AsyncClient, number: str, seconds: float = 10) -> None:
    async def resent() -> bool:
        return len(await inbox(sim, number)) == 2

    await eventually(resent, seconds)


async def test_a_fallback_survives_a_restart_between_the_webhook_and_the_resend(
    own_redis: str, simulator: Simulator, sim: httpx.AsyncClient
) -> None:
    """A failure receipt taken by a service without workers is re-sent by the next one.

    At once: the restarted worker looks at every tenant when it starts (this took the
    reclaim time, 30 s, when jobs were stream entries of a consumer named by its PID).
    """
    number = fresh_number()
    queued = await _queued_without_workers(own_redis, simulator, sim, number)
    with service_on(own_redis, simulator) as url:
        await _resent(sim, number, seconds=3)
        first, _ = await inbox(sim, number)
        headers = {"Authorization": f"Bearer {queued.key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            check = await client.post(
                f"/v1/verifications/{queued.verification_id}/check",
                json={"code": first["text"].split(" ")[0]},
            )
        assert check.json()["status"] == "approved"


async def test_a_job_taken_by_a_worker_that_died_is_taken_over(
    own_redis: str, simulator: Simulator, sim: httpx.AsyncClient
) -> None:
    """A job leased by a worker that died is re-sent by another once the lease runs out."""
    number = fresh_number()
    queued = await _queued_without_workers(own_redis, simulator, sim, number)
    redis = Redis.from_url(own_redis, decode_responses=True)
    _, taken = await WorkQueue(redis).lease(queued.tenant_id, int(time.time() * 1000), 1000, 10)
    assert [job.member for job in taken if job.member.startswith("fb:")]
    with service_on(own_redis, simulator):
        await _resent(sim, number)

        async def drained() -> bool:
            return not await _fallback_jobs(redis, queued.tenant_id)

        await eventually(drained)
    assert await redis.zcard(_leases(queued.tenant_id)) == 0
    await redis.aclose()


async def test_a_fallback_whose_worker_died_mid_send_is_sent_by_the_next(
    own_redis: str, simulator: Simulator, sim: httpx.AsyncClient
) -> None:
    """Killed after claiming the fallback, before its send was recorded: the next one sends.

    The claim (the new code's hash) was stored; the job, taken again when the dead
    worker's lease ran out, used to find its own claim and finish without sending.
    """
    number = fresh_number()
    queued = await _queued_without_workers(own_redis, simulator, sim, number)
    redis = Redis.from_url(own_redis, decode_responses=True)
    now = int(time.time() * 1000)
    _, taken = await WorkQueue(redis).lease(queued.tenant_id, now, 1000, 10)
    [job] = [leased.job for leased in taken if isinstance(leased.job, FallbackJob)]
    store = VerificationStore(redis, WorkQueue(redis))
    verification = await store.get(queued.tenant_id, queued.verification_id)
    assert verification is not None
    claimed = await store.fallback_claim(
        verification, message_id=job.message_id, reason="failed", code_hash="x", now_ms=now
    )
    assert claimed == 0
    with service_on(own_redis, simulator) as url:
        await _resent(sim, number)
        headers = {"Authorization": f"Bearer {queued.key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            body = (await client.get(f"/v1/verifications/{queued.verification_id}")).json()
        assert [m["sender_type"] for m in body["messages"]] == [
            "alphanumeric_sender_id",
            "long_code",
        ]
        _, second = await inbox(sim, number)
        assert second["from"] == "+447400123000"
    await redis.aclose()


async def test_silence_with_no_sender_left_keeps_the_verification_pending(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """A silent last sender neither re-sends nor fails the verification: the code may work."""
    tenant = await make_tenant(
        **(CHAINS | {"senders": {"GB": [{"type": "alphanumeric_sender_id", "from": "ACME"}]}}),
        delivery_timeout_seconds=30,
    )
    number = fresh_number()
    await script(sim, number, action="silent")
    verification_id = (await start(tenant, number)).json()["id"]
    clock.advance(31)
    await asyncio.sleep(1)
    body = await read(tenant, verification_id)
    assert body["status"] == "pending"
    assert len(body["messages"]) == 1
    [sent] = await inbox(sim, number)
    assert await approves(tenant, verification_id, sent["text"].split(" ")[0])
