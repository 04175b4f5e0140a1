"""Sandbox numbers: scripted outcomes that never reach Telnyx, over HTTP with Redis.

A tenant's sandbox numbers are answered by the service itself; everything else (limits,
attempts, opt-outs, events, stats) is the real thing. "Never reaches Telnyx" is shown
twice: against the simulator (its inbox stays empty) and against a recording stand-in for
api.telnyx.com that logs every request made to it, whatever the path.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import phonenumbers
import pytest
from nacl.signing import VerifyKey
from redis.asyncio import Redis

from otp_service.devredis import PrivateRedis
from otp_service.log import TextFormatter
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
from tests.servers import serve
from tests.test_events import Receiver, arrives
from tests.test_fallback import eventually

SANDBOX_ONLY: dict[str, Any] = {"messaging_profile_id": None, "senders": {}}
"""A tenant with no sender at all: only its sandbox numbers can be sent to."""

_serial = itertools.count(1)


def fictional() -> str:
    """A number of the fictional +1 555 01XX range (invalid for libphonenumber), unused so far."""
    number = f"+1555010{next(_serial):04d}"
    assert not phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    return number


async def start(tenant: TenantHandle, number: str, **body: Any) -> httpx.Response:
    return await tenant.client.post("/v1/verifications", json={"phone_number": number, **body})


async def read(tenant: TenantHandle, verification_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await tenant.client.get(f"/v1/verifications/{verification_id}")).json()
    return body


async def check(tenant: TenantHandle, verification_id: str, code: str) -> httpx.Response:
    return await tenant.client.post(
        f"/v1/verifications/{verification_id}/check", json={"code": code}
    )


async def message_reaches(tenant: TenantHandle, verification_id: str, status: str) -> None:
    """Wait until the verification's first message has ``status``."""

    async def reached() -> bool:
        return bool((await read(tenant, verification_id))["messages"][0]["status"] == status)

    await eventually(reached)


async def status_becomes(tenant: TenantHandle, verification_id: str, status: str) -> None:
    async def became() -> bool:
        return bool((await read(tenant, verification_id))["status"] == status)

    await eventually(became)


async def inbox(sim: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (await sim.get("/_sim/messages", params={"to": number})).json()
    return messages


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def test_a_delivered_number_plays_its_receipts_without_the_simulator(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """Listed numbers, fictional or real, get a sandbox message, sent then delivered; the
    simulator never hears of them, while an unlisted number of the same tenant reaches it."""
    listed_fictional, listed_real, unlisted = fictional(), fresh_number("US"), fresh_number("US")
    tenant = await make_tenant(
        sandbox_numbers={listed_fictional: {"outcome": "delivered"}, listed_real: {}}
    )
    for number in (listed_fictional, listed_real):
        response = await start(tenant, number)
        assert response.status_code == 201, response.text
        verification = response.json()
        assert verification["country"] == "US"
        [message] = verification["messages"]
        assert message["sender_type"] == "sandbox"
        assert message["id"].startswith("sbx_")
        assert message["from"] is None
        await message_reaches(tenant, verification["id"], "delivered")
        assert await inbox(sim, number) == []
    assert (await start(tenant, unlisted)).status_code == 201
    assert len(await inbox(sim, unlisted)) == 1


async def test_an_invalid_fictional_number_is_accepted_only_when_listed(
    make_tenant: MakeTenant,
) -> None:
    """+1 555 01XX is refused as invalid unless listed; listed, it is a US number throughout:
    started, checked by number, looked up for opt-outs."""
    listed, unlisted = fictional(), fictional()
    tenant = await make_tenant(sandbox_numbers={listed: {"fixed_code": "424242"}})
    problem(await start(tenant, unlisted), 422, "invalid_phone_number")
    problem(
        await tenant.client.post(
            "/v1/verifications/check", json={"phone_number": unlisted, "code": "424242"}
        ),
        422,
        "invalid_phone_number",
    )
    problem(await tenant.client.get(f"/v1/opt-outs/{unlisted}"), 422, "invalid_phone_number")

    started = await start(tenant, listed)
    assert started.status_code == 201, started.text
    assert started.json()["country"] == "US"
    checked = await tenant.client.post(
        "/v1/verifications/check", json={"phone_number": listed, "code": "424242"}
    )
    assert checked.json() == {
        "id": started.json()["id"],
        "status": "approved",
        "valid": True,
        "check_attempts_remaining": 4,
    }
    looked_up = await tenant.client.get(f"/v1/opt-outs/{listed}")
    assert looked_up.json()["opted_out"] is False


async def test_a_delayed_delivery_waits_for_the_service_clock(
    make_tenant: MakeTenant, clock: MovableClock
) -> None:
    """delay_seconds holds the delivered receipt; the message is sent meanwhile."""
    number = fictional()
    tenant = await make_tenant(
        sandbox_numbers={number: {"outcome": "delivered", "delay_seconds": 120}}
    )
    verification = (await start(tenant, number)).json()
    await message_reaches(tenant, verification["id"], "sent")
    await asyncio.sleep(0.5)  # a worker poll or two: nothing is due yet
    assert (await read(tenant, verification["id"]))["messages"][0]["status"] == "sent"
    clock.advance(121)
    await message_reaches(tenant, verification["id"], "delivered")


async def test_an_undeliverable_number_fails_without_falling_back_to_real_senders(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """delivery_failed with the scripted (or default 40008) code fails the verification even
    for a tenant whose chain has a second sender: a sandbox number has no other."""
    default_code, own_code = fresh_number("GB"), fictional()
    tenant = await make_tenant(
        senders={
            "GB": [
                {"type": "alphanumeric_sender_id", "from": "ACME"},
                {"type": "long_code", "from": "+447400123000"},
            ],
            "default": [{"type": "long_code", "from": "+13125550100"}],
        },
        sandbox_numbers={
            default_code: {"outcome": "undeliverable"},
            own_code: {"outcome": "undeliverable", "error_code": "40002"},
        },
    )
    for number, code in ((default_code, "40008"), (own_code, "40002")):
        verification = (await start(tenant, number)).json()
        await status_becomes(tenant, verification["id"], "failed")
        [message] = (await read(tenant, verification["id"]))["messages"]
        assert message["status"] == "delivery_failed"
        assert message["error_codes"] == [code]
        assert message["sender_type"] == "sandbox"
        assert await inbox(sim, number) == []


async def test_a_silent_number_gets_no_receipt_and_silence_changes_nothing(
    make_tenant: MakeTenant, clock: MovableClock, redis: Redis
) -> None:
    """No receipt comes; once the silence timer has run, the verification is still pending
    (no sender is left to fall back to) and its code still works."""
    number = fictional()
    tenant = await make_tenant(
        delivery_timeout_seconds=10,
        sandbox_numbers={number: {"outcome": "silent", "fixed_code": "909090"}},
    )
    verification = (await start(tenant, number)).json()
    [message] = verification["messages"]
    timer = f"fb:{verification['id']}:{message['id']}"
    jobs = f"otp:{{t:{tenant.id}}}:jobs"
    assert await redis.hexists(jobs, timer)
    clock.advance(11)

    async def timer_ran() -> bool:
        return not await redis.hexists(jobs, timer)

    await eventually(timer_ran)
    after = await read(tenant, verification["id"])
    assert after["status"] == "pending"
    assert [m["status"] for m in after["messages"]] == ["queued"]
    assert (await check(tenant, verification["id"], "909090")).json()["valid"] is True


async def test_an_opted_out_number_is_refused_like_telnyx_40300(
    make_tenant: MakeTenant,
) -> None:
    """The first start is refused 409 and records the opt-out (source carrier); the next
    start is refused before any send, as for a real number that replied STOP."""
    number = fictional()
    tenant = await make_tenant(**SANDBOX_ONLY, sandbox_numbers={number: {"outcome": "opted_out"}})
    problem(await start(tenant, number), 409, "recipient_opted_out")
    opt_out = (await tenant.client.get(f"/v1/opt-outs/{number}")).json()
    assert opt_out["opted_out"] is True
    assert opt_out["source"] == "carrier"
    problem(await start(tenant, number), 409, "recipient_opted_out")


async def test_a_fixed_code_is_the_code_and_is_stored_hashed(
    make_tenant: MakeTenant, redis: Redis
) -> None:
    """The fixed code approves (whatever code_length the start asks: the code sets it);
    another code does not; Redis holds only its argon2 hash."""
    number = fictional()
    tenant = await make_tenant(**SANDBOX_ONLY, sandbox_numbers={number: {"fixed_code": "123456"}})
    verification = (await start(tenant, number, code_length=8)).json()
    problem(await check(tenant, verification["id"], "12345678"), 422, "invalid_code_format")
    assert (await check(tenant, verification["id"], "654321")).json()["valid"] is False
    stored = str(await redis.hget(f"otp:{{t:{tenant.id}}}:ver:{verification['id']}", "hashes"))
    assert "$argon2id$" in stored
    assert "123456" not in stored
    approved = (await check(tenant, verification["id"], "123456")).json()
    assert approved["status"] == "approved"


async def test_the_admin_api_warns_that_a_fixed_code_is_a_password(
    admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Create, read and patch answer a warning per number with a fixed code, and none else;
    the change is logged as a warning, with the number masked."""
    number = fictional()
    created = await admin.post(
        "/admin/tenants",
        json={"name": "Sandbox", "settings": {"sandbox_numbers": {number: {}}}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["warnings"] == []
    tenant_id = created.json()["id"]
    patched = await admin.patch(
        f"/admin/tenants/{tenant_id}",
        json={"settings": {"sandbox_numbers": {number: {"fixed_code": "123456"}}}},
    )
    assert patched.status_code == 200, patched.text
    [warning] = patched.json()["warnings"]
    assert number in warning
    assert "password" in warning
    assert (await admin.get(f"/admin/tenants/{tenant_id}")).json()["warnings"] == [warning]
    text = TextFormatter()
    [logged] = [
        line
        for line in map(text.format, caplog.records)
        if " WARNING " in line and tenant_id in line
    ]
    assert "fixed code" in logged
    assert number[:8] in logged
    assert number not in logged


async def test_limits_and_attempts_apply_to_sandbox_numbers(make_tenant: MakeTenant) -> None:
    """The resend cooldown, max_sends and check attempts are the real ones."""
    number = fictional()
    tenant = await make_tenant(
        **SANDBOX_ONLY,
        max_sends=2,
        resend_cooldown_seconds=0,
        max_check_attempts=2,
        sandbox_numbers={number: {"fixed_code": "111111"}},
    )
    verification = (await start(tenant, number)).json()
    resent = await start(tenant, number)
    assert resent.status_code == 200, resent.text
    assert resent.json()["send_count"] == 2
    assert problem(await start(tenant, number), 429, "rate_limited")["limit"] == "max_sends"
    assert (await check(tenant, verification["id"], "222222")).json()["valid"] is False
    last = (await check(tenant, verification["id"], "333333")).json()
    assert last["status"] == "max_attempts_reached"
    problem(await check(tenant, verification["id"], "111111"), 409, "verification_not_pending")


async def test_a_sandbox_number_is_still_limited_by_country(make_tenant: MakeTenant) -> None:
    """allowed_countries applies to a fictional number by its calling code's country."""
    number = fictional()
    tenant = await make_tenant(allowed_countries=["GB"], sandbox_numbers={number: {}})
    problem(await start(tenant, number), 403, "destination_not_allowed")


async def test_stats_count_sandbox_numbers_under_their_own_sender_type(
    make_tenant: MakeTenant,
) -> None:
    """Starts, sends, receipts and approvals are counted under sender_type sandbox."""
    delivered, failing = fictional(), fictional()
    tenant = await make_tenant(
        **SANDBOX_ONLY,
        sandbox_numbers={
            delivered: {"fixed_code": "123123"},
            failing: {"outcome": "undeliverable"},
        },
    )
    approved = (await start(tenant, delivered)).json()
    await message_reaches(tenant, approved["id"], "delivered")
    assert (await check(tenant, approved["id"], "123123")).json()["valid"] is True
    failed = (await start(tenant, failing)).json()
    await message_reaches(tenant, failed["id"], "delivery_failed")
    rows = (await tenant.client.get("/v1/stats")).json()["rows"]
    assert [(r["country"], r["sender_type"]) for r in rows] == [("US", "sandbox")]
    [row] = rows
    assert {k: row[k] for k in ("started", "sent", "delivered", "approved", "failed_sends")} == {
        "started": 2,
        "sent": 2,
        "delivered": 1,
        "approved": 1,
        "failed_sends": 1,
    }


@pytest.mark.parametrize(
    ("sandbox_numbers", "field"),
    [
        ({"15550100001": {}}, "settings.sandbox_numbers"),
        ({"+1555": {}}, "settings.sandbox_numbers"),
        (
            {"+15550100001": {"outcome": "lost"}},
            "settings.sandbox_numbers.+15550100001.outcome",
        ),
        (
            {"+15550100001": {"colour": "red"}},
            "settings.sandbox_numbers.+15550100001",
        ),
        (
            {"+15550100001": {"fixed_code": "12a456"}},
            "settings.sandbox_numbers.+15550100001.fixed_code",
        ),
        (
            {"+15550100001": {"fixed_code": "1234"}},
            "settings.sandbox_numbers.+15550100001.fixed_code",
        ),
        (
            {"+15550100001": {"error_code": "40008"}},
            "settings.sandbox_numbers.+15550100001.error_code",
        ),
        (
            {"+15550100001": {"outcome": "undeliverable", "error_code": "40300"}},
            "settings.sandbox_numbers.+15550100001.error_code",
        ),
        (
            {"+15550100001": {"outcome": "silent", "delay_seconds": 5}},
            "settings.sandbox_numbers.+15550100001.delay_seconds",
        ),
        (
            {"+15550100001": {"delay_seconds": -1}},
            "settings.sandbox_numbers.+15550100001.delay_seconds",
        ),
        ({"+99912345678": {}}, "settings.sandbox_numbers.+99912345678"),
        ({f"+1555010{n:04d}": {} for n in range(101)}, "settings.sandbox_numbers"),
    ],
)
async def test_invalid_sandbox_numbers_are_refused(
    admin: httpx.AsyncClient, sandbox_numbers: dict[str, Any], field: str
) -> None:
    """Malformed numbers and scripts, and rules across fields, are 422 naming the field."""
    response = await admin.post(
        "/admin/tenants",
        json={"name": "Bad sandbox", "settings": {"sandbox_numbers": sandbox_numbers}},
    )
    body = problem(response, 422, "validation_error")
    fields = [error["field"] for error in body["errors"]]
    assert any(f.startswith(field) for f in fields), body


async def test_sandbox_is_no_sender_to_configure(admin: httpx.AsyncClient) -> None:
    """sender_type sandbox appears in messages and stats only; a chain cannot hold it."""
    response = await admin.post(
        "/admin/tenants",
        json={"name": "Bad chain", "settings": {"senders": {"default": [{"type": "sandbox"}]}}},
    )
    body = problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["settings.senders.default[0]"]


async def test_a_code_length_change_must_keep_fixed_codes_valid(
    admin: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """A PATCH of code_length that a fixed code no longer fits is refused; nothing changes."""
    number = fictional()
    tenant = await make_tenant(sandbox_numbers={number: {"fixed_code": "123456"}})
    response = await admin.patch(
        f"/admin/tenants/{tenant.id}", json={"settings": {"code_length": 8}}
    )
    body = problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == [f"settings.sandbox_numbers.{number}.fixed_code"]
    assert (await admin.get(f"/admin/tenants/{tenant.id}")).json()["settings"]["code_length"] == 6


@dataclass
class FakeTelnyx:
    """A stand-in for api.telnyx.com that records every request, whatever its path or
    method, and takes every send."""

    requests: list[tuple[str, str, bytes]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append((scope["method"], scope["path"], body))
        answer = json.dumps({"data": {"id": f"msg-{len(self.requests)}", "to": []}}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def fake_telnyx() -> Iterator[tuple[FakeTelnyx, str]]:
    telnyx = FakeTelnyx()
    with serve(telnyx) as url:
        yield telnyx, f"{url}/v2"


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver()
    found.hold.set()
    with serve(found.app()) as url:
        yield found, f"{url}/events"


async def test_no_telnyx_request_is_made_while_events_are_signed_and_delivered(
    simulator: Simulator,
    fake_telnyx: tuple[FakeTelnyx, str],
    receiver: tuple[Receiver, str],
) -> None:
    """Against a Telnyx that logs every request: a sandbox number's whole life (start,
    receipts, approval) makes none, and its events arrive signed by the published key.
    A real number of the same tenant makes exactly its one send."""
    telnyx, telnyx_url = fake_telnyx
    events, events_url = receiver
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    number = fictional()
    with (
        PrivateRedis() as redis,
        service_on(redis.url, simulator, TELNYX_BASE_URL=telnyx_url) as url,
    ):
        async with httpx.AsyncClient(base_url=url, headers=admin, timeout=15) as client:
            settings = {
                "messaging_profile_id": PROFILE_ID,
                "senders": {"default": [{"type": "long_code", "from": "+13125550100"}]},
                "events_webhook_url": events_url,
                "sandbox_numbers": {number: {"fixed_code": "246810"}},
            }
            created = await client.post(
                "/admin/tenants", json={"name": "Prod", "settings": settings}
            )
            assert created.status_code == 201, created.text
            tenant_id = created.json()["id"]
            key = (await client.post(f"/admin/tenants/{tenant_id}/api-keys")).json()["key"]
            client.headers["Authorization"] = f"Bearer {key}"
            started = await client.post("/v1/verifications", json={"phone_number": number})
            assert started.status_code == 201, started.text
            verification_id = started.json()["id"]

            async def delivered() -> bool:
                read = await client.get(f"/v1/verifications/{verification_id}")
                return bool(read.json()["messages"][0]["status"] == "delivered")

            await eventually(delivered)
            checked = await client.post(
                f"/v1/verifications/{verification_id}/check", json={"code": "246810"}
            )
            assert checked.json()["valid"] is True
            await arrives(events, "verification.approved", verification_id)
            statuses = [
                e["data"]["messages"][0]["status"]
                for e in events.of_type("message.status")
                if e["data"]["id"] == verification_id
            ]
            assert "sent" in statuses
            assert "delivered" in statuses
            public_key = (await client.get("/v1/webhook-public-key")).json()["public_key"]
            assert telnyx.requests == []

            real = await client.post("/v1/verifications", json={"phone_number": fresh_number("US")})
            assert real.status_code == 201, real.text
    assert [(method, path) for method, path, _ in telnyx.requests] == [
        ("POST", "/v2/messages/long_code")
    ]
    about = [(h, b) for h, b in events.raw if json.loads(b)["data"]["id"] == verification_id]
    assert {json.loads(b)["type"] for _, b in about} >= {
        "verification.created",
        "message.status",
        "verification.approved",
    }
    verify_key = VerifyKey(base64.b64decode(public_key))
    for headers, body in about:
        timestamp, signature = headers["otp-timestamp"], headers["otp-signature-ed25519"]
        assert abs(int(timestamp) - time.time()) < 60
        verify_key.verify(timestamp.encode() + b"|" + body, base64.b64decode(signature))
