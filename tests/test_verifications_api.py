"""The tenant API of verifications, end to end over HTTP with Redis and the simulator."""

from __future__ import annotations

import httpx

from tests.conftest import TenantHandle, fresh_number, sent_codes


async def start(tenant: TenantHandle, number: str, **extra: object) -> httpx.Response:
    return await tenant.client.post("/v1/verifications", json={"phone_number": number, **extra})


async def test_a_start_sends_an_sms_whose_code_approves_the_verification(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A new verification is 201, the SMS names the brand, and its code approves it once."""
    number = fresh_number()
    started = await start(tenant, number)
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "pending"
    assert body["phone_number"] == number
    assert body["country"] == "GB"
    assert body["send_count"] == 1
    assert body["id"].startswith("ver_")
    [code] = await sent_codes(sim, number)
    inbox = (await sim.get("/_sim/messages", params={"to": number})).json()
    assert "Acme" in inbox[0]["text"]
    assert inbox[0]["from"] == "ACME"

    checked = await tenant.client.post(f"/v1/verifications/{body['id']}/check", json={"code": code})
    assert checked.status_code == 200
    assert checked.json() == {
        "id": body["id"],
        "status": "approved",
        "valid": True,
        "check_attempts_remaining": 4,
    }
    again = await tenant.client.post(f"/v1/verifications/{body['id']}/check", json={"code": code})
    assert again.status_code == 409
    assert again.json()["code"] == "verification_not_pending"
    assert again.json()["verification_status"] == "approved"
