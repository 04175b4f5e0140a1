"""Conversion statistics (``GET /v1/stats``), over HTTP with Redis and the Telnyx simulator.

Real flows (approvals, wrong codes, refused sends, delivered and failed receipts, receipts
that overtake their send) are run for a tenant of its own, and the answer's counts are
compared with what the flows did, per destination country and sender type.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from otp_service.core.views import rfc3339
from tests.conftest import (
    PROFILE_ID,
    MakeTenant,
    MovableClock,
    Simulator,
    TenantHandle,
    fresh_number,
    sent_codes,
)
from tests.test_fallback import eventually, script
from tests.test_faults import receipt

HOUR = 3600 * 1000
SENDERS: dict[str, Any] = {
    "messaging_profile_id": PROFILE_ID,
    "senders": {
        "GB": [
            {"type": "alphanumeric_sender_id", "from": "ACME"},
            {"type": "long_code", "from": "+447400123000"},
        ],
        "FR": [{"type": "long_code", "from": "+33612000000"}],
        "default": [{"type": "long_code", "from": "+13125550100"}],
    },
}
ALPHA = ("GB", "alphanumeric_sender_id")
GB_LONG = ("GB", "long_code")
FR_LONG = ("FR", "long_code")
FINAL = {"delivered", "sending_failed", "delivery_failed", "expired"}
Counts = dict[tuple[str, str], dict[str, int]]


@pytest.fixture
async def tenant(make_tenant: MakeTenant) -> TenantHandle:
    """A tenant sending to GB by alphanumeric ID then long code, and to FR by long code."""
    return await make_tenant(**SENDERS)


async def stats(tenant: TenantHandle, **params: str) -> httpx.Response:
    return await tenant.client.get("/v1/stats", params=params)


async def counts(tenant: TenantHandle, **params: str) -> Counts:
    """The rows of the tenant's stats (``conversion_rate`` is checked against its terms)."""
    response = await stats(tenant, **params)
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert [(r["country"], r["sender_type"]) for r in rows] == sorted(
        (r["country"], r["sender_type"]) for r in rows
    )
    for r in rows:
        expected = round(r["approved"] / r["started"], 4) if r["started"] else None
        assert r["conversion_rate"] == expected, r
    shown = ("started", "sent", "delivered", "approved", "failed_sends", "blocked")
    return {(r["country"], r["sender_type"]): {k: r[k] for k in shown} for r in rows}


def row(
    *,
    started: int = 0,
    sent: int = 0,
    delivered: int = 0,
    approved: int = 0,
    failed_sends: int = 0,
    blocked: int = 0,
) -> dict[str, int]:
    return {
        "started": started,
        "sent": sent,
        "delivered": delivered,
        "approved": approved,
        "failed_sends": failed_sends,
        "blocked": blocked,
    }


async def settled(tenant: TenantHandle, verification_id: str, messages: int) -> dict[str, Any]:
    """Wait until the verification has ``messages`` messages, each with its final status."""
    body: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal body
        body = (await tenant.client.get(f"/v1/verifications/{verification_id}")).json()
        sent = body["messages"]
        return len(sent) == messages and all(m["status"] in FINAL for m in sent)

    await eventually(done)
    return body


async def flow(
    tenant: TenantHandle,
    sim: httpx.AsyncClient,
    region: str,
    *behaviours: dict[str, object],
    messages: int = 1,
    check: bool | None = None,
) -> dict[str, Any]:
    """Start a verification of a fresh number with the simulator scripted by ``behaviours``.

    Wait until its ``messages`` messages have their final status, then check the latest
    code sent (``check=True``) or a wrong one (``False``).
    """
    number = fresh_number(region)
    for behaviour in behaviours:
        await script(sim, number, **behaviour)
    response = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    assert response.status_code in {201, 502}, response.text
    body = response.json()
    verification_id = body.get("id") or body["verification_id"]
    settled_body = await settled(tenant, verification_id, messages)
    if check is not None:
        code = (await sent_codes(sim, number))[-1]
        typed = code if check else "".join(str((int(c) + 1) % 10) for c in code)
        checked = await tenant.client.post(
            f"/v1/verifications/{verification_id}/check", json={"code": typed}
        )
        assert checked.json()["valid"] is check, checked.text
    return settled_body


async def post_receipt(
    anonymous: httpx.AsyncClient,
    simulator: Simulator,
    clock: MovableClock,
    message_id: str,
    status: str,
) -> None:
    """Post a receipt signed by the simulator's key, stamped with the service's time."""
    body = receipt(message_id, status, str(uuid.uuid4()))
    stamp = str(clock.now_ms() // 1000)
    signature = SigningKey(simulator.seed).sign(f"{stamp}|".encode() + body).signature
    headers = {
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "content-type": "application/json",
    }
    answer = await anonymous.post("/webhooks/telnyx", content=body, headers=headers)
    assert answer.status_code == 200, answer.text


def at(milliseconds: int, offset_hours: int = 0) -> str:
    """An RFC 3339 time, in the given UTC offset."""
    zone = timezone(timedelta(hours=offset_hours))
    return datetime.fromtimestamp(milliseconds / 1000, tz=zone).isoformat()


async def test_each_flow_is_counted_by_country_and_sender_type(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Sends, receipts, refusals, fallbacks and approvals each land in their row once."""
    alpha, long_code = "alphanumeric_sender_id", "long_code"
    await asyncio.gather(
        # approved, and a wrong code: sent and delivered by the alphanumeric ID
        flow(tenant, sim, "GB", check=True),
        flow(tenant, sim, "GB", check=False),
        # refused at once by the alphanumeric ID, delivered by the long code, approved
        flow(tenant, sim, "GB", {"sender_type": alpha, "action": "reject"}, messages=2, check=True),
        # a delivery failure, then the fallback by long code delivered (not approved)
        flow(tenant, sim, "GB", {"sender_type": alpha, "action": "fail"}, messages=2),
        # receipts that reach the service before its send call has answered
        flow(tenant, sim, "GB", {"sender_type": alpha, "action": "deliver", "receipts": "before"}),
        flow(
            tenant,
            sim,
            "GB",
            {"sender_type": alpha, "action": "fail", "receipts": "before"},
            messages=2,
            check=True,
        ),
        # every sender refuses: 502, two failed sends, nothing sent
        flow(
            tenant,
            sim,
            "GB",
            {"sender_type": alpha, "action": "reject"},
            {"sender_type": long_code, "action": "reject"},
            messages=2,
        ),
        # FR: one approved, one that expired undelivered (no other sender to try)
        flow(tenant, sim, "FR", check=True),
        flow(tenant, sim, "FR", {"action": "fail", "final_status": "expired"}),
        # sending_failed reported by receipt, then the long code
        flow(
            tenant,
            sim,
            "GB",
            {"sender_type": alpha, "action": "fail", "final_status": "sending_failed"},
            messages=2,
        ),
    )
    assert await counts(tenant) == {
        # started and approved are counted under the route (the chain's first sender)
        FR_LONG: row(started=2, sent=2, delivered=1, approved=1, failed_sends=1),
        ALPHA: row(started=8, sent=6, delivered=3, approved=3, failed_sends=5),
        GB_LONG: row(sent=4, delivered=4, failed_sends=1),
    }


async def test_duplicate_and_late_receipts_are_not_counted_again(
    tenant: TenantHandle,
    sim: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    simulator: Simulator,
    clock: MovableClock,
) -> None:
    """Redelivered receipts, new ids for the same news and a failure after delivery count once."""
    delivered = await flow(tenant, sim, "FR", {"action": "deliver", "receipts": "twice"})
    failed = await flow(tenant, sim, "FR", {"action": "fail"})
    assert await counts(tenant) == {FR_LONG: row(started=2, sent=2, delivered=1, failed_sends=1)}
    [first] = delivered["messages"]
    [second] = failed["messages"]
    for _ in range(3):
        await post_receipt(anonymous, simulator, clock, first["id"], "delivered")
        await post_receipt(anonymous, simulator, clock, first["id"], "delivery_failed")
        await post_receipt(anonymous, simulator, clock, second["id"], "delivery_failed")
        await post_receipt(anonymous, simulator, clock, second["id"], "delivered")
    assert await counts(tenant) == {FR_LONG: row(started=2, sent=2, delivered=1, failed_sends=1)}


async def test_from_and_to_select_the_hours_that_start_in_the_window(
    tenant: TenantHandle,
    sim: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    simulator: Simulator,
    clock: MovableClock,
) -> None:
    """Counts land in the hour they happen; a window sums the hours starting inside it."""
    hour = clock.now_ms() // HOUR * HOUR
    await flow(tenant, sim, "GB", check=True)
    same_hour = clock.now_ms() // HOUR * HOUR == hour
    clock.advance(5 * 3600)
    # The simulator stamps its receipts with the real time, now far from the service's: this
    # SMS gets none, and its receipt is posted here with the service's time.
    number = fresh_number("FR")
    await script(sim, number, action="silent")
    started = (await tenant.client.post("/v1/verifications", json={"phone_number": number})).json()
    [code] = await sent_codes(sim, number)
    checked = await tenant.client.post(
        f"/v1/verifications/{started['id']}/check", json={"code": code}
    )
    assert checked.json()["valid"] is True
    await post_receipt(anonymous, simulator, clock, started["messages"][0]["id"], "delivered")

    first = {ALPHA: row(started=1, sent=1, delivered=1, approved=1)}
    second = {FR_LONG: row(started=1, sent=1, delivered=1, approved=1)}
    # A flow may run across the end of an hour: each window spans the hour after its flow's.
    assert await counts(tenant, **{"from": at(hour), "to": at(hour + 2 * HOUR)}) == first
    assert await counts(tenant, **{"from": at(hour + 3 * HOUR), "to": at(hour + 9 * HOUR)}) == (
        second
    )
    assert await counts(tenant, **{"from": at(hour), "to": at(hour + 9 * HOUR)}) == first | second
    if same_hour:  # an hour that starts before `from` is left out, even partly in the window
        assert await counts(tenant, **{"from": at(hour + 1), "to": at(hour + 2 * HOUR)}) == {}
    # `to` is excluded; another offset than Z names the same instant, answered in UTC
    response = await stats(tenant, **{"from": at(hour - HOUR, 2), "to": at(hour, -3)})
    assert response.json() == {"from": rfc3339(hour - HOUR), "to": rfc3339(hour), "rows": []}


async def test_without_from_and_to_the_last_24_hours_are_shown(
    tenant: TenantHandle, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """The default window ends now and starts 24 h earlier; older counts drop out of it."""
    await flow(tenant, sim, "GB", check=True)
    before = clock.now_ms()
    response = await stats(tenant)
    after = clock.now_ms()
    body = response.json()
    start = datetime.fromisoformat(body["from"])
    end = datetime.fromisoformat(body["to"])
    assert end - start == timedelta(hours=24)
    assert before - 1 <= end.timestamp() * 1000 <= after + 1
    assert await counts(tenant) == {ALPHA: row(started=1, sent=1, delivered=1, approved=1)}
    clock.advance(23 * 3600)
    assert await counts(tenant) == {ALPHA: row(started=1, sent=1, delivered=1, approved=1)}
    clock.advance(2 * 3600)
    assert await counts(tenant) == {}


@pytest.mark.parametrize(
    ("params", "field"),  # field: the names of the bad ones
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-28"}, "from"),
        ({"to": "2026-11-28T10:00:00"}, "to"),  # no offset: which 10:00?
        ({"to": "2026-11-28T25:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"}, "from to"),
        ({"from": "2026-11-28T10:00:00Z", "to": "2026-11-28T10:00:00Z"}, "from"),
        ({"from": "2026-11-28T11:00:00Z", "to": "2026-11-28T10:00:00Z"}, "from"),
        ({"from": "2026-10-01T00:00:00Z", "to": "2026-11-28T00:00:00Z"}, "from"),
        ({"from": "2026-11-28T10:00:00Z" + "0" * 60}, "from"),
    ],
)
async def test_a_bad_window_is_a_validation_error(
    tenant: TenantHandle, params: dict[str, str], field: str
) -> None:
    """Times that are not RFC 3339, an empty or reversed window, or over 40 days: 422."""
    response = await stats(tenant, **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "validation_error"
    assert [e["field"] for e in body["errors"]] == field.split()


async def test_40_days_is_the_widest_window(tenant: TenantHandle) -> None:
    """Exactly 40 days is answered (counters are kept that long)."""
    response = await stats(tenant, **{"from": "2026-10-19T00:00:00Z", "to": "2026-11-28T00:00:00Z"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "from": "2026-10-19T00:00:00.000Z",
        "to": "2026-11-28T00:00:00.000Z",
        "rows": [],
    }


async def test_a_tenant_sees_only_its_own_counts(
    tenant: TenantHandle,
    make_tenant: MakeTenant,
    sim: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
) -> None:
    """Another tenant's flows are in no row of this one's; no API key is 401."""
    other = await make_tenant(**SENDERS)
    await flow(other, sim, "GB", check=True)
    assert await counts(tenant) == {}
    assert await counts(other) == {ALPHA: row(started=1, sent=1, delivered=1, approved=1)}
    response = await anonymous.get("/v1/stats")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_starts_refused_by_abuse_protection_are_counted_as_blocked(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """A start a limit refuses sends nothing and is counted as blocked, not started."""
    tenant = await make_tenant(limits={"tenant": {"max": 1, "interval_seconds": 3600}})
    await flow(tenant, sim, "GB", check=True)
    refused = await tenant.client.post("/v1/verifications", json={"phone_number": fresh_number()})
    assert refused.status_code == 429, refused.text
    assert refused.json()["limit"] == "tenant"
    assert await counts(tenant) == {
        ALPHA: row(started=1, sent=1, delivered=1, approved=1, blocked=1)
    }
