"""What the service leaves in Redis: lifetimes, Cluster hash tags, and the event key."""

from __future__ import annotations

import base64

import httpx
from nacl.signing import SigningKey
from redis.asyncio import Redis

from otp_service.core.derive import derive_key
from tests.conftest import SECRET_KEY, TenantHandle, fresh_number, sent_codes

DAY_MS = 24 * 3600 * 1000


def _key(tenant: TenantHandle, verification_id: str) -> str:
    return f"otp:{{t:{tenant.id}}}:ver:{verification_id}"


async def test_a_pending_verification_lives_until_expiry_plus_a_day(
    tenant: TenantHandle, redis: Redis
) -> None:
    """A pending verification is kept 10 min + 24 h; its number index only until expiry."""
    number = fresh_number()
    started = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    ttl = await redis.pttl(_key(tenant, started.json()["id"]))
    assert DAY_MS + 590_000 < ttl <= DAY_MS + 600_000
    index_ttl = await redis.pttl(f"otp:{{t:{tenant.id}}}:pending:{number}")
    assert 590_000 < index_ttl <= 600_000


async def test_an_ended_verification_stays_readable_for_a_day(
    tenant: TenantHandle, sim: httpx.AsyncClient, redis: Redis
) -> None:
    """Once approved, a verification is kept 24 h (and GET still answers it)."""
    number = fresh_number()
    started = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    verification_id = started.json()["id"]
    [code] = await sent_codes(sim, number)
    await tenant.client.post(f"/v1/verifications/{verification_id}/check", json={"code": code})
    ttl = await redis.pttl(_key(tenant, verification_id))
    assert DAY_MS - 10_000 < ttl <= DAY_MS
    assert await redis.exists(f"otp:{{t:{tenant.id}}}:pending:{number}") == 0
    read = await tenant.client.get(f"/v1/verifications/{verification_id}")
    assert read.json()["status"] == "approved"


async def test_every_key_carries_a_cluster_hash_tag(
    tenant: TenantHandle, sim: httpx.AsyncClient, redis: Redis
) -> None:
    """Every key the service writes has a {hash tag}, so each script stays in one slot."""
    number = fresh_number()
    await tenant.client.post(
        "/v1/verifications", json={"phone_number": number}, headers={"Idempotency-Key": "tag"}
    )
    await sent_codes(sim, number)
    keys = [key async for key in redis.scan_iter(match="otp:*")]
    assert keys
    untagged = [key for key in keys if not ("{" in key and "}" in key)]
    assert untagged == []


async def test_the_event_key_is_published_and_derived_from_the_secret(
    tenant: TenantHandle,
) -> None:
    """GET /v1/webhook-public-key answers the Ed25519 key derived from OTP_SECRET_KEY."""
    response = await tenant.client.get("/v1/webhook-public-key")
    assert response.status_code == 200
    expected = SigningKey(derive_key(SECRET_KEY, "event-signing")).verify_key
    published = base64.b64encode(bytes(expected)).decode()
    assert response.json()["public_key"] == published
    assert [key["public_key"] for key in response.json()["keys"]] == [published]
