"""Secret rotation: API keys, pending codes and event signatures survive a change of secret."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post
from nacl.signing import SigningKey, VerifyKey

from otp_service.client import AsyncOtpClient, InvalidSignature, verify_event
from otp_service.core.derive import derive_key, secret_id
from otp_service.core.hashing import Argon2Parameters, CodeHasher
from otp_service.devredis import PrivateRedis
from otp_service.settings import SettingsError
from tests.conftest import (
    ADMIN_TOKEN,
    SECRET_KEY,
    Service,
    Simulator,
    TenantHandle,
    fresh_number,
    sent_codes,
    service_on,
    service_settings,
)
from tests.servers import serve

NEW_SECRET = "the-new-secret-key-after-rotation-0123456789"


def rotating_service(redis_url: str, simulator: Simulator) -> AbstractContextManager[str]:
    """A service (no workers) in the middle of a rotation: current B, previous A."""
    return service_on(
        redis_url,
        simulator,
        OTP_SECRET_KEY=NEW_SECRET,
        OTP_SECRET_KEY_PREVIOUS=SECRET_KEY,
        OTP_RUN_WORKERS="0",
    )


def new_secret_service(redis_url: str, simulator: Simulator) -> AbstractContextManager[str]:
    """A service (no workers) after the rotation: B alone."""
    return service_on(redis_url, simulator, OTP_SECRET_KEY=NEW_SECRET, OTP_RUN_WORKERS="0")


@asynccontextmanager
async def client_of(url: str, token: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=15) as client:
        yield client


async def status_with(url: str, key: str) -> int:
    """The status of an authenticated tenant request made with ``key`` on a service."""
    async with client_of(url, key) as client:
        return (await client.get("/v1/webhook-public-key")).status_code


async def test_a_key_issued_under_the_old_secret_moves_to_the_new_one(
    redis_url: str, simulator: Simulator, service: Service, tenant: TenantHandle
) -> None:
    """An old key fails on the new secret alone, works while rotating, then on the new alone."""
    with new_secret_service(redis_url, simulator) as new:
        assert await status_with(new, tenant.key) == 401
    with rotating_service(redis_url, simulator) as rotating:
        assert await status_with(rotating, tenant.key) == 200
    with new_secret_service(redis_url, simulator) as new:
        assert await status_with(new, tenant.key) == 200
        assert await status_with(service.url, tenant.key) == 401  # re-stored: A alone lost it
        async with client_of(service.url, ADMIN_TOKEN) as admin:
            listed = (await admin.get(f"/admin/tenants/{tenant.id}/api-keys")).json()
            revoked = await admin.delete(f"/admin/tenants/{tenant.id}/api-keys/{listed[0]['id']}")
            assert revoked.status_code == 204
        assert await status_with(new, tenant.key) == 401


async def test_a_revoked_old_key_does_not_come_back_during_rotation(
    redis_url: str, simulator: Simulator, service: Service, tenant: TenantHandle
) -> None:
    """Revoking a key before it was used under rotation leaves nothing to re-store."""
    async with client_of(service.url, ADMIN_TOKEN) as admin:
        listed = (await admin.get(f"/admin/tenants/{tenant.id}/api-keys")).json()
        await admin.delete(f"/admin/tenants/{tenant.id}/api-keys/{listed[0]['id']}")
    with rotating_service(redis_url, simulator) as rotating:
        assert await status_with(rotating, tenant.key) == 401


async def test_a_code_sent_under_the_old_secret_checks_while_rotating(
    redis_url: str, simulator: Simulator, tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A verification started under A is approved on a B+A service, not on B alone."""
    numbers = [fresh_number(), fresh_number()]
    started = [
        (await tenant.client.post("/v1/verifications", json={"phone_number": n})).json()
        for n in numbers
    ]
    codes = [(await sent_codes(sim, n))[-1] for n in numbers]
    with rotating_service(redis_url, simulator) as rotating:
        async with client_of(rotating, tenant.key) as client:
            wrong = "0" * len(codes[0]) if codes[0] != "0" * len(codes[0]) else "1" * len(codes[0])
            miss = await client.post(
                f"/v1/verifications/{started[0]['id']}/check", json={"code": wrong}
            )
            assert miss.json()["valid"] is False
            hit = await client.post(
                f"/v1/verifications/{started[0]['id']}/check", json={"code": codes[0]}
            )
            assert hit.status_code == 200, hit.text
            assert hit.json()["valid"] is True
            assert hit.json()["status"] == "approved"
    with new_secret_service(redis_url, simulator) as new:
        async with client_of(new, tenant.key) as client:  # the key was re-stored under B above
            alone = await client.post(
                f"/v1/verifications/{started[1]['id']}/check", json={"code": codes[1]}
            )
            assert alone.status_code == 200, alone.text
            assert alone.json()["valid"] is False


async def test_a_code_sent_while_rotating_checks_on_the_new_secret_alone(
    redis_url: str, simulator: Simulator, tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Codes sent by a rotating service are hashed under the new secret."""
    number = fresh_number()
    with rotating_service(redis_url, simulator) as rotating:
        async with client_of(rotating, tenant.key) as client:
            started = (await client.post("/v1/verifications", json={"phone_number": number})).json()
    code = (await sent_codes(sim, number))[-1]
    with new_secret_service(redis_url, simulator) as new:
        async with client_of(new, tenant.key) as client:
            hit = await client.post(f"/v1/verifications/{started['id']}/check", json={"code": code})
            assert hit.json()["valid"] is True


class Receiver:
    """A tenant's event endpoint that keeps each request's headers and body."""

    def __init__(self) -> None:
        self.raw: list[tuple[dict[str, str], bytes]] = []

    def app(self) -> Litestar:
        @post("/events", status_code=200)
        async def take(request: Request[Any, Any, Any]) -> str:
            self.raw.append((dict(request.headers), await request.body()))
            return "ok"

        return Litestar([take])


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver()
    with serve(found.app()) as url:
        yield found, f"{url}/events"


def seed() -> tuple[str, str]:
    """A base64 Ed25519 seed and its base64 public key."""
    raw = os.urandom(32)
    return base64.b64encode(raw).decode(), base64.b64encode(
        bytes(SigningKey(raw).verify_key)
    ).decode()


async def test_events_are_signed_by_the_new_key_and_both_keys_are_published(
    simulator: Simulator, receiver: tuple[Receiver, str]
) -> None:
    """While the signing key rotates, events verify with the new key; both keys are listed."""
    (new_seed, new_public), (old_seed, old_public) = seed(), seed()
    found, events_url = receiver
    settings = {
        "senders": {"default": [{"type": "long_code", "from": "+13125550100"}]},
        "events_webhook_url": events_url,
    }
    with (
        PrivateRedis() as redis,
        service_on(
            redis.url, simulator, OTP_SIGNING_KEY=new_seed, OTP_SIGNING_KEY_PREVIOUS=old_seed
        ) as url,
    ):
        async with client_of(url, ADMIN_TOKEN) as admin:
            made = await admin.post(
                "/admin/tenants", json={"name": "Rotating", "settings": settings}
            )
            key = (await admin.post(f"/admin/tenants/{made.json()['id']}/api-keys")).json()["key"]
        async with client_of(url, key) as client:
            published = (await client.get("/v1/webhook-public-key")).json()
            await client.post("/v1/verifications", json={"phone_number": fresh_number()})
        async with AsyncOtpClient(url, key) as otp:
            accepted = await otp.webhook_public_keys()
        deadline = time.monotonic() + 10
        while not found.raw:
            assert time.monotonic() < deadline, "no event arrived"
            await asyncio.sleep(0.05)
    assert published["public_key"] == new_public
    assert [k["public_key"] for k in published["keys"]] == [new_public, old_public]
    assert published["keys"][0]["key_id"] == published["key_id"]
    assert published["keys"][0]["key_id"] != published["keys"][1]["key_id"]
    for headers, body in found.raw:
        assert json.loads(body)["id"].startswith("evt_")
        signed = headers["otp-timestamp"].encode() + b"|" + body
        signature = base64.b64decode(headers["otp-signature-ed25519"])
        VerifyKey(base64.b64decode(new_public)).verify(signed, signature)
        assert verify_event(body, headers, accepted).id == json.loads(body)["id"]
        with pytest.raises(InvalidSignature):
            verify_event(body, headers, [old_public])
    assert accepted == [new_public, old_public]


async def test_a_derived_signing_key_rotates_with_the_secret(
    redis_url: str, simulator: Simulator, tenant: TenantHandle
) -> None:
    """Without OTP_SIGNING_KEY, the key derived from the previous secret is listed second."""
    before = (await tenant.client.get("/v1/webhook-public-key")).json()
    assert [k["public_key"] for k in before["keys"]] == [before["public_key"]]
    with rotating_service(redis_url, simulator) as rotating:
        async with client_of(rotating, tenant.key) as client:
            during = (await client.get("/v1/webhook-public-key")).json()
    assert during["public_key"] != before["public_key"]
    assert [k["public_key"] for k in during["keys"]] == [
        during["public_key"],
        before["public_key"],
    ]


CHEAP = Argon2Parameters(time_cost=1, memory_kib=1024, parallelism=1)


def hasher_of(secret: str, previous: str | None = None) -> CodeHasher:
    """A code hasher as the service builds one for these secrets (cheap argon2)."""
    return CodeHasher(
        derive_key(secret, "code-pepper"),
        CHEAP,
        key_id=secret_id(secret),
        previous=None
        if previous is None
        else (secret_id(previous), derive_key(previous, "code-pepper")),
    )


def test_code_hashes_name_their_secret_and_are_checked_with_it() -> None:
    """A hash names its secret; a rotating hasher accepts both generations, B alone only B."""
    old, new = hasher_of(SECRET_KEY), hasher_of(NEW_SECRET)
    rotating = hasher_of(NEW_SECRET, previous=SECRET_KEY)
    made_by_old = old.hash("ver_a", "123456")
    assert made_by_old.startswith(secret_id(SECRET_KEY) + ":$argon2id$")
    assert rotating.matches_any("ver_a", "123456", [made_by_old])
    assert not rotating.matches_any("ver_a", "654321", [made_by_old])
    assert not new.matches_any("ver_a", "123456", [made_by_old])
    made_while_rotating = rotating.hash("ver_a", "123456")
    assert made_while_rotating.startswith(secret_id(NEW_SECRET) + ":")
    assert new.matches_any("ver_a", "123456", [made_while_rotating])


def test_unnamed_hashes_from_before_key_ids_still_check_during_a_rotation() -> None:
    """A hash stored without a key id is tried with the current, then the previous secret."""
    unnamed = CodeHasher(derive_key(SECRET_KEY, "code-pepper"), CHEAP).hash("ver_a", "123456")
    assert unnamed.startswith("$argon2id$")
    assert hasher_of(NEW_SECRET, previous=SECRET_KEY).matches_any("ver_a", "123456", [unnamed])
    assert not hasher_of(NEW_SECRET).matches_any("ver_a", "123456", [unnamed])


def test_a_short_previous_secret_is_refused_without_echoing_it(
    redis_url: str, simulator: Simulator
) -> None:
    """OTP_SECRET_KEY_PREVIOUS must be as long as a secret; the error names, never shows it."""
    with pytest.raises(SettingsError) as raised:
        service_settings(redis_url, simulator, OTP_SECRET_KEY_PREVIOUS="short-old-secret")
    assert any("OTP_SECRET_KEY_PREVIOUS" in line for line in raised.value.problems)
    assert "short-old-secret" not in str(raised.value)
    assert "**" in repr(service_settings(redis_url, simulator, OTP_SECRET_KEY_PREVIOUS=SECRET_KEY))
