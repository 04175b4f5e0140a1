"""Nothing lost, nothing 5xx: the defects of issue 7 that the outbox redesign fixes.

Each test here failed on the design before it: events written in a second step after their
change, a fallback stream with a consumer group, redis-py's default (failing) pool, receipts
dropped when their message was not recorded yet, and refused checks guessing a status.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from otp_service.adapters.redis_keys import tenant as tenant_key
from otp_service.adapters.redis_verifications import Created, Guard, VerificationStore
from otp_service.adapters.redis_work import WorkQueue
from otp_service.clock import SystemClock
from otp_service.core.model import Message, SenderType, Verification, VerificationStatus
from otp_service.devredis import PrivateRedis
from otp_service.metrics import Metrics
from otp_service.usecases import worker as worker_module
from otp_service.usecases.worker import Worker
from tests.conftest import (
    ADMIN_TOKEN,
    DEFAULT_SETTINGS,
    MakeTenant,
    MovableClock,
    Simulator,
    TenantHandle,
    fresh_number,
    sent_codes,
    service_on,
)
from tests.servers import serve
from tests.test_events import Receiver, arrives
from tests.test_fallback import CHAINS, eventually, inbox, script


@pytest.fixture
def events_url() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    receiver.hold.set()
    with serve(receiver.app()) as url:
        yield receiver, f"{url}/events"


async def _tenant(url: str, settings: dict[str, Any]) -> TenantHandle:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=admin, timeout=15) as client:
        created = await client.post("/admin/tenants", json={"name": "R", "settings": settings})
        assert created.status_code == 201, created.text
        tenant_id = created.json()["id"]
        key = (await client.post(f"/admin/tenants/{tenant_id}/api-keys")).json()["key"]
    client = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=15)
    return TenantHandle(id=tenant_id, key=key, client=client)


async def _start(tenant: TenantHandle, number: str) -> str:
    started = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    assert started.status_code == 201, started.text
    verification_id: str = started.json()["id"]
    return verification_id


@pytest.fixture
async def restarted_empty(simulator: Simulator) -> AsyncIterator[str]:
    """A service whose Redis was restarted empty (same port) while the service ran."""
    first = PrivateRedis().start()
    port = first.port
    try:
        with service_on(first.url, simulator) as url:
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                assert (await client.get("/health/ready")).status_code == 200
                first.stop()
                with PrivateRedis(port=port):
                    await eventually(lambda: _ready(client), seconds=10)
                    yield url
    finally:
        first.stop()


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/health/ready")).status_code == 200


async def test_every_event_arrives_after_redis_restarted_empty(
    restarted_empty: str, events_url: tuple[Receiver, str], sim: httpx.AsyncClient
) -> None:
    """Created after an empty restart, a tenant still gets approved, canceled and
    max_attempts_reached (the first design lost them: stale pooled connections failed
    the second write of each change, and a failed batch hid its events for 30 s)."""
    receiver, url = events_url
    tenant = await _tenant(
        restarted_empty, DEFAULT_SETTINGS | {"events_webhook_url": url, "max_check_attempts": 2}
    )
    approved, canceled, exhausted = fresh_number(), fresh_number(), fresh_number()
    first = await _start(tenant, approved)
    [code] = await sent_codes(sim, approved)
    check = await tenant.client.post(f"/v1/verifications/{first}/check", json={"code": code})
    assert check.json()["status"] == "approved"
    second = await _start(tenant, canceled)
    assert (await tenant.client.post(f"/v1/verifications/{second}/cancel")).status_code == 200
    third = await _start(tenant, exhausted)
    [right] = await sent_codes(sim, exhausted)
    wrong = "1" * len(right) if right != "1" * len(right) else "2" * len(right)
    for _ in range(2):
        await tenant.client.post(f"/v1/verifications/{third}/check", json={"code": wrong})
    await arrives(receiver, "verification.approved", first)
    await arrives(receiver, "verification.canceled", second)
    await arrives(receiver, "verification.max_attempts_reached", third)
    for verification_id in (first, second, third):
        await arrives(receiver, "verification.created", verification_id)
    await tenant.client.aclose()


async def test_fallbacks_go_on_after_redis_restarted_empty(
    restarted_empty: str, sim: httpx.AsyncClient
) -> None:
    """The fallback worker survives an empty restart (it died on NOGROUP with a stream)."""
    tenant = await _tenant(restarted_empty, CHAINS)
    number = fresh_number()
    await script(
        sim, number, sender_type="alphanumeric_sender_id", action="fail", error_code="40008"
    )
    await _start(tenant, number)

    async def resent() -> bool:
        return len(await inbox(sim, number)) == 2

    await eventually(resent)
    await tenant.client.aclose()


async def test_a_broken_event_url_of_one_tenant_stops_nobody_else(
    make_tenant: MakeTenant,
    events_url: tuple[Receiver, str],
    redis: Redis,
) -> None:
    """A stored URL the poster chokes on (control characters, an IDN host) fails its own
    jobs only: the worker logs them and goes on delivering every other tenant's events
    (the event loop used to die on the first, for every tenant, with nothing logged)."""
    receiver, url = events_url
    broken = [await make_tenant(events_webhook_url=url) for _ in range(2)]
    for handle, bad in zip(
        broken, ["https://example.com/x\r\n", "https://bücher.example/"], strict=True
    ):
        raw = await redis.get(tenant_key(handle.id))
        assert raw is not None
        record = json.loads(raw)
        record["settings"]["events_webhook_url"] = bad
        await redis.set(tenant_key(handle.id), json.dumps(record))
        await _start(handle, fresh_number())
    healthy = await make_tenant(events_webhook_url=url)
    verification_id = await _start(healthy, fresh_number())
    await arrives(receiver, "verification.created", verification_id)
    assert all(event["data"]["id"] == verification_id for event in receiver.events)


async def test_250_concurrent_requests_wait_for_a_connection(tenant: TenantHandle) -> None:
    """A burst beyond the pool's size waits for free connections instead of answering 503
    (redis-py's default pool failed at once: 150 of 250 concurrent reads were 503)."""
    verification_id = await _start(tenant, fresh_number())
    responses = await asyncio.gather(
        *(tenant.client.get(f"/v1/verifications/{verification_id}") for _ in range(250))
    )
    assert Counter(r.status_code for r in responses) == {200: 250}


def _message(message_id: str, position: int) -> Message:
    now = int(time.time() * 1000)
    return Message(
        id=message_id,
        position=position,
        sender_type=SenderType.ALPHANUMERIC_SENDER_ID,
        from_="ACME",
        status="queued",
        error_codes=[],
        created_at=now,
        updated_at=now,
    )


async def _silent_start(
    tenant: TenantHandle, sim: httpx.AsyncClient, redis: Redis
) -> tuple[VerificationStore, Verification]:
    """A verification whose first SMS gets no receipt, and a store to play Telnyx's part."""
    number = fresh_number()
    await script(sim, number, action="silent")
    verification_id = await _start(tenant, number)
    store = VerificationStore(redis, WorkQueue(redis))
    verification = await store.get(tenant.id, verification_id)
    assert verification is not None
    return store, verification


async def test_a_receipt_before_its_message_is_recorded_is_applied_when_it_is(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, redis: Redis
) -> None:
    """Telnyx may report a failure before its send call answers: the receipt is kept (with
    the pointer, or in the verification when the pointer came first) and applied as the
    message is recorded, and its fallback follows (such receipts used to be dropped)."""
    tenant = await make_tenant(**CHAINS)
    store, verification = await _silent_start(tenant, sim, redis)
    verification_id, now = verification.id, int(time.time() * 1000)
    early = "early-" + verification_id
    assert await store.apply_receipt(early, "delivery_failed", ("40008",), now, "evt_a") == "parked"
    await store.record_send(
        verification, _message(early, 0), fail=False, now_ms=now, event_id="evt_b", silence_ms=None
    )
    stored = await store.get(tenant.id, verification_id)
    assert stored is not None
    assert (stored.messages[-1].status, stored.messages[-1].error_codes) == (
        "delivery_failed",
        ["40008"],
    )

    async def fallen_back() -> bool:
        body = (await tenant.client.get(f"/v1/verifications/{verification_id}")).json()
        return bool(body["messages"][-1]["sender_type"] == "long_code")

    await eventually(fallen_back)


async def test_a_receipt_between_pointer_and_record_is_kept_in_the_verification(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, redis: Redis
) -> None:
    """A receipt that finds the pointer but not yet the message waits in the verification."""
    tenant = await make_tenant()
    store, verification = await _silent_start(tenant, sim, redis)
    verification_id, now = verification.id, int(time.time() * 1000)
    late = "late-" + verification_id
    await redis.set(f"otp:{{m:{late}}}", f"{tenant.id} {verification_id}", px=60_000)
    assert await store.apply_receipt(late, "delivered", (), now, "evt_c") == "parked"
    await store.record_send(
        verification, _message(late, 0), fail=False, now_ms=now, event_id="evt_d", silence_ms=None
    )
    stored = await store.get(tenant.id, verification_id)
    assert stored is not None
    assert stored.messages[-1].status == "delivered"
    assert await redis.hget(f"otp:{{t:{tenant.id}}}:ver:{verification_id}", "early") == "{}"


async def test_a_stalled_worker_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that cannot look for work (Redis gone) reports itself stalled, and says so
    in the gauge only while it makes progress."""
    monkeypatch.setattr(worker_module, "STALL_SECONDS", 0.3)
    server = PrivateRedis().start()
    redis = Redis.from_url(server.url, decode_responses=True)
    metrics = Metrics()
    work = WorkQueue(redis)
    unused: Any = None
    worker = Worker(
        work=work,
        events=unused,
        expiries=unused,
        fallbacks=unused,
        sandbox=unused,
        clock=SystemClock(),
        metrics=metrics,
        lease_ms=1000,
        poll_seconds=0.05,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.5)
    assert not worker.stalled()
    assert metrics.otp_worker_last_progress._value.get() > 0
    server.stop()
    await asyncio.sleep(1.5)
    assert worker.stalled()
    assert not running.done()
    stop.set()
    await asyncio.wait_for(running, 5)
    await redis.aclose()


async def test_a_start_that_never_sent_is_resent_despite_the_cooldown(
    tenant: TenantHandle, sim: httpx.AsyncClient, redis: Redis, clock: MovableClock
) -> None:
    """A start that stored its verification but never recorded a send (its process died,
    or Redis stalled, before the SMS) does not lock the number for the cooldown: the
    tenant's retry sends the code (it used to answer 429 with nothing ever sent)."""
    number = fresh_number()
    store = VerificationStore(redis, WorkQueue(redis))
    started_at = clock.now_ms() - 60_000
    draft = Verification(
        id="ver_halfwaystartxxxxxxxxxxxxxx",
        tenant_id=tenant.id,
        status=VerificationStatus.PENDING,
        phone_number=number,
        country="GB",
        locale=None,
        code_length=6,
        created_at=started_at,
        expires_at=started_at + 600_000,
        ended_at=None,
        send_count=1,
        max_sends=5,
        next_send_at=started_at + 30_000,
        check_attempts=0,
        max_check_attempts=5,
        messages=[],
        metadata={},
    )
    created = await store.start(
        tenant_id=tenant.id,
        e164=number,
        seen=None,
        new=draft,
        code_hash="unused",
        resend_cooldown_ms=120_000,
        first_send_ms=30_000,
        event_id="evt_halfway",
        guard=Guard(
            rules=[],
            token="tok_halfway",
            asker="",
            mode="off",
            prefixes=[],
            windows_ms=(600_000, 3_600_000, 300_000, 86_400_000),
            country="GB",
            sender_type="long_code",
            breaker_id="blk_unused",
        ),
    )
    assert created == Created(draft.id)
    retried = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == draft.id
    assert len(await sent_codes(sim, number)) == 1


async def test_a_check_that_died_holding_the_last_attempt_ends_the_verification(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, redis: Redis, clock: MovableClock
) -> None:
    """Killed between taking the last attempt and comparing, a check used to leave its
    verification pending (every later check refused) until it expired; the next check
    after the longest compare ends it as max_attempts_reached, with its event."""
    tenant = await make_tenant(max_check_attempts=1)
    number = fresh_number()
    verification_id = await _start(tenant, number)
    [code] = await sent_codes(sim, number)
    store = VerificationStore(redis, WorkQueue(redis))
    begun = await store.check_begin(
        tenant.id,
        verification_id,
        code_length=len(code),
        now_ms=clock.now_ms(),
        rules=[],
        token="tok_dead_check",
    )
    assert begun is not None
    clock.advance(31)
    late = await tenant.client.post(
        f"/v1/verifications/{verification_id}/check", json={"code": code}
    )
    assert late.status_code == 409
    assert late.json()["verification_status"] == "max_attempts_reached"
    read = await tenant.client.get(f"/v1/verifications/{verification_id}")
    assert read.json()["status"] == "max_attempts_reached"
