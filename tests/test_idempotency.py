"""``Idempotency-Key`` on starts: repeats replay the first answer and send nothing."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import MovableClock, Service, TenantHandle, fresh_number, sent_codes
from tests.test_optouts import inbound


async def _start(tenant: TenantHandle, number: str, key: str, **extra: object) -> httpx.Response:
    return await tenant.client.post(
        "/v1/verifications",
        json={"phone_number": number, **extra},
        headers={"Idempotency-Key": key},
    )


async def test_a_repeat_with_the_same_key_replays_the_response_and_sends_nothing(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """The same key and body return the first 201 body again, and only one SMS is sent."""
    number = fresh_number()
    first = await _start(tenant, number, "key-1")
    again = await _start(tenant, number, "key-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert len(await sent_codes(sim, number)) == 1


async def test_the_same_key_with_another_body_is_a_conflict(tenant: TenantHandle) -> None:
    """Reusing a key for another request body is 422 idempotency_conflict."""
    assert (await _start(tenant, fresh_number(), "key-2")).status_code == 201
    conflict = await _start(tenant, fresh_number(), "key-2")
    assert conflict.status_code == 422
    assert conflict.json()["code"] == "idempotency_conflict"


async def test_keys_belong_to_their_tenant(
    tenant: TenantHandle, make_tenant: object, sim: httpx.AsyncClient
) -> None:
    """Another tenant using the same key string gets its own fresh verification."""
    assert callable(make_tenant)
    other: TenantHandle = await make_tenant()
    number = fresh_number()
    mine = await _start(tenant, number, "shared-key")
    theirs = await _start(other, number, "shared-key")
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert len(await sent_codes(sim, number)) == 2


async def test_concurrent_requests_with_one_key_send_one_sms(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Two simultaneous starts with one key send one SMS and answer the same body."""
    number = fresh_number()
    first, second = await asyncio.gather(
        _start(tenant, number, "key-3"), _start(tenant, number, "key-3")
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(await sent_codes(sim, number)) == 1


async def test_an_error_answer_is_replayed_too(tenant: TenantHandle) -> None:
    """A refused start (invalid number) is replayed as the same problem document."""
    first = await _start(tenant, "+1", "key-4")
    again = await _start(tenant, "+1", "key-4")
    assert first.status_code == again.status_code == 422
    assert again.json() == first.json()
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_a_rate_limited_answer_is_not_kept_so_a_retry_after_it_really_retries(
    tenant: TenantHandle, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """A 429 says "try again in N s": the same key and body after the cooldown get a real
    answer (the resend), which is then the one kept."""
    number = fresh_number()
    created = await _start(tenant, number, "key-5a")
    assert created.status_code == 201
    limited = await _start(tenant, number, "key-5b")
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 30
    clock.advance(int(limited.headers["Retry-After"]) + 1)
    resent = await _start(tenant, number, "key-5b")
    assert resent.status_code == 200, resent.text
    assert resent.json()["id"] == created.json()["id"]
    assert resent.json()["send_count"] == 2
    again = await _start(tenant, number, "key-5b")
    assert (again.status_code, again.json()) == (200, resent.json())
    assert len(await sent_codes(sim, number)) == 2


async def test_an_opt_out_answer_is_not_kept(
    tenant: TenantHandle, sim: httpx.AsyncClient, service: Service
) -> None:
    """409 recipient_opted_out lasts only until the recipient replies START: a retry with
    the same key after START sends the code instead of replaying the refusal."""
    number = fresh_number()
    await inbound(sim, service, number, "STOP")
    refused = await _start(tenant, number, "key-6")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "recipient_opted_out"
    await inbound(sim, service, number, "START")
    started = await _start(tenant, number, "key-6")
    assert started.status_code == 201, started.text
    assert len(await sent_codes(sim, number)) == 1


async def test_a_malformed_key_is_refused(tenant: TenantHandle) -> None:
    """A key longer than 255 characters is a 422 validation_error."""
    response = await _start(tenant, fresh_number(), "k" * 256)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
