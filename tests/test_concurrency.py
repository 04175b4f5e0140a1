"""Checks and starts under concurrency: single use and the attempt limit hold atomically."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.conftest import PROFILE_ID, MakeTenant, TenantHandle, fresh_number, sent_codes

CONCURRENT = 50


async def _start(tenant: TenantHandle, sim: httpx.AsyncClient) -> tuple[str, str, str]:
    number = fresh_number()
    response = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    assert response.status_code == 201, response.text
    [code] = await sent_codes(sim, number)
    return response.json()["id"], code, number


async def _checks(tenant: TenantHandle, verification_id: str, code: str) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(
                tenant.client.post(
                    f"/v1/verifications/{verification_id}/check", json={"code": code}
                )
                for _ in range(CONCURRENT)
            )
        )
    )


async def test_fifty_concurrent_right_codes_approve_exactly_once(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """Of 50 simultaneous checks with the right code, one approves and 49 are 409."""
    tenant = await make_tenant(max_check_attempts=5)
    verification_id, code, _ = await _start(tenant, sim)
    responses = await _checks(tenant, verification_id, code)
    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] == 1, statuses
    assert statuses[409] == CONCURRENT - 1, statuses
    [approved] = [r.json() for r in responses if r.status_code == 200]
    assert approved["valid"] is True
    assert approved["status"] == "approved"
    # Each refused check reports the status the verification ended in, even those refused
    # while other checks still held every attempt (they used to guess max_attempts_reached).
    assert all(
        r.json()["verification_status"] == "approved" for r in responses if r.status_code == 409
    )
    final = await tenant.client.get(f"/v1/verifications/{verification_id}")
    assert final.json()["status"] == "approved"


async def test_fifty_concurrent_wrong_codes_never_exceed_the_attempt_limit(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Of 50 simultaneous wrong codes, exactly max_check_attempts are judged; the rest are 409."""
    verification_id, code, _ = await _start(tenant, sim)
    wrong = "".join(str((int(c) + 1) % 10) for c in code)
    responses = await _checks(tenant, verification_id, wrong)
    judged = [r.json() for r in responses if r.status_code == 200]
    assert len(judged) == 5
    assert all(answer["valid"] is False for answer in judged)
    assert sum(r.status_code == 409 for r in responses) == CONCURRENT - 5
    final = (await tenant.client.get(f"/v1/verifications/{verification_id}")).json()
    assert final["check_attempts"] == 5
    assert final["status"] == "max_attempts_reached"
    late = await tenant.client.post(
        f"/v1/verifications/{verification_id}/check", json={"code": code}
    )
    assert late.status_code == 409


async def test_concurrent_starts_for_one_number_make_one_verification_and_one_sms(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Twenty simultaneous starts for a number create one verification and send one SMS."""
    number = fresh_number()
    responses = await asyncio.gather(
        *(tenant.client.post("/v1/verifications", json={"phone_number": number}) for _ in range(20))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses[201] == 1, statuses
    assert statuses[429] == 19, statuses
    assert len(await sent_codes(sim, number)) == 1


async def test_concurrent_patches_never_store_settings_that_are_invalid_together(
    admin: httpx.AsyncClient,
) -> None:
    """Each PATCH is valid alone, the two together are not (a number pool needs a messaging
    profile): whatever the interleaving, one is applied, the other is 422, and what is stored
    is valid and is what the applied PATCH answered."""
    drop_profile = {"settings": {"messaging_profile_id": None}}
    use_pool = {"settings": {"senders": {"default": [{"type": "number_pool"}]}}}
    for _ in range(30):
        created = await admin.post(
            "/admin/tenants",
            json={
                "name": "Racing patches",
                "settings": {
                    "messaging_profile_id": PROFILE_ID,
                    "senders": {"default": [{"type": "long_code", "from": "+13125550100"}]},
                },
            },
        )
        assert created.status_code == 201, created.text
        path = f"/admin/tenants/{created.json()['id']}"
        dropped, pooled = await asyncio.gather(
            admin.patch(path, json=drop_profile), admin.patch(path, json=use_pool)
        )
        stored = (await admin.get(path)).json()["settings"]
        assert sorted([dropped.status_code, pooled.status_code]) == [200, 422], (
            dropped.text,
            pooled.text,
        )
        applied, refused = (dropped, pooled) if dropped.status_code == 200 else (pooled, dropped)
        assert applied.json()["settings"] == stored
        assert refused.json()["code"] == "validation_error"
        if applied is dropped:
            assert stored["messaging_profile_id"] is None
            assert stored["senders"]["default"][0]["type"] == "long_code"
        else:
            assert stored["messaging_profile_id"] == PROFILE_ID
            assert stored["senders"]["default"][0]["type"] == "number_pool"
