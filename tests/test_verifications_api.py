"""The tenant API of verifications, end to end over HTTP with Redis and the simulator."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.conftest import MakeTenant, MovableClock, TenantHandle, fresh_number, sent_codes


async def start(tenant: TenantHandle, number: str, **extra: object) -> httpx.Response:
    return await tenant.client.post("/v1/verifications", json={"phone_number": number, **extra})


async def check(tenant: TenantHandle, verification_id: str, code: str) -> httpx.Response:
    return await tenant.client.post(
        f"/v1/verifications/{verification_id}/check", json={"code": code}
    )


def wrong(code: str) -> str:
    """A code of the same length that is surely not ``code``."""
    return "".join(str((int(c) + 1) % 10) for c in code)


async def started(tenant: TenantHandle, sim: httpx.AsyncClient, **extra: object) -> tuple[str, str]:
    """Start a verification for a fresh number; return its id and the code sent."""
    number = fresh_number()
    response = await start(tenant, number, **extra)
    assert response.status_code == 201, response.text
    codes = await sent_codes(sim, number)
    return response.json()["id"], codes[-1]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith(code)
    return body


async def test_a_start_sends_an_sms_whose_code_approves_the_verification(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A new verification is 201, the SMS names the brand, and its code approves it once."""
    number = fresh_number()
    response = await start(tenant, number)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert body["phone_number"] == number
    assert body["country"] == "GB"
    assert body["channel"] == "sms"
    assert body["send_count"] == 1
    assert body["max_sends"] == 5
    assert body["check_attempts_remaining"] == 5
    assert body["id"].startswith("ver_")
    assert len(body["id"]) >= 4 + 26
    [message] = body["messages"]
    assert message["sender_type"] == "alphanumeric_sender_id"
    assert message["from"] == "ACME"
    assert message["id"]
    inbox = (await sim.get("/_sim/messages", params={"to": number})).json()
    assert inbox[0]["endpoint"].endswith("/messages/alphanumeric_sender_id")
    assert "Acme" in inbox[0]["text"]
    code = inbox[0]["text"].split(" ", 1)[0]
    assert len(code) == 6
    assert code.isdigit()

    checked = await check(tenant, body["id"], code)
    assert checked.status_code == 200
    assert checked.json() == {
        "id": body["id"],
        "status": "approved",
        "valid": True,
        "check_attempts_remaining": 4,
    }
    again = await check(tenant, body["id"], code)
    problem = assert_problem(again, 409, "verification_not_pending")
    assert problem["verification_status"] == "approved"


async def test_the_sender_and_endpoint_follow_the_destination_country(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A US number goes through the default long code, with the long-code endpoint's fields."""
    number = fresh_number("US")
    response = await start(tenant, number)
    assert response.status_code == 201, response.text
    assert response.json()["country"] == "US"
    [sent] = (await sim.get("/_sim/messages", params={"to": number})).json()
    assert sent["endpoint"].endswith("/messages/long_code")
    assert sent["from"] == "+13125550100"
    assert sent["messaging_profile_id"] is None


async def test_a_wrong_code_uses_an_attempt_and_the_last_one_ends_the_verification(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Wrong codes answer valid false; the fifth ends it as max_attempts_reached."""
    verification_id, code = await started(tenant, sim)
    for remaining in (4, 3, 2, 1):
        answer = await check(tenant, verification_id, wrong(code))
        assert answer.status_code == 200
        assert answer.json() == {
            "id": verification_id,
            "status": "pending",
            "valid": False,
            "check_attempts_remaining": remaining,
        }
    last = await check(tenant, verification_id, wrong(code))
    assert last.json()["status"] == "max_attempts_reached"
    assert last.json()["check_attempts_remaining"] == 0
    after = await check(tenant, verification_id, code)
    problem = assert_problem(after, 409, "verification_not_pending")
    assert problem["verification_status"] == "max_attempts_reached"
    read = await tenant.client.get(f"/v1/verifications/{verification_id}")
    assert read.json()["status"] == "max_attempts_reached"
    assert read.json()["check_attempts"] == 5


@pytest.mark.parametrize(
    "code",
    [
        "12345",
        "1234567",
        "12 345",
        "abcdef",
        "١٢٣٤٥٦",
        "",
        "+12345",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
    ],
)
async def test_a_malformed_code_is_refused_without_using_an_attempt(
    tenant: TenantHandle, sim: httpx.AsyncClient, code: str
) -> None:
    """Anything but exactly six ASCII digits is 422 invalid_code_format and costs nothing."""
    verification_id, _ = await started(tenant, sim)
    assert_problem(await check(tenant, verification_id, code), 422, "invalid_code_format")
    read = await tenant.client.get(f"/v1/verifications/{verification_id}")
    assert read.json()["check_attempts"] == 0


async def test_a_code_that_is_not_a_string_is_an_invalid_code_format(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A number instead of a string is refused as invalid_code_format, not a 500."""
    verification_id, _ = await started(tenant, sim)
    response = await tenant.client.post(
        f"/v1/verifications/{verification_id}/check", json={"code": 123456}
    )
    assert_problem(response, 422, "invalid_code_format")


async def test_code_length_can_be_chosen_per_tenant_and_per_request(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """The tenant's code_length applies, and a request may ask for another length."""
    tenant = await make_tenant(code_length=8)
    _, code = await started(tenant, sim)
    assert len(code) == 8
    verification_id, code = await started(tenant, sim, code_length=4)
    assert len(code) == 4
    assert_problem(await check(tenant, verification_id, "123456"), 422, "invalid_code_format")
    assert (await check(tenant, verification_id, code)).json()["valid"] is True


async def test_check_by_phone_number_checks_the_pending_verification(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Checking by number approves the number's pending verification; none pending is 404."""
    number = fresh_number()
    verification_id = (await start(tenant, number)).json()["id"]
    [code] = await sent_codes(sim, number)
    answer = await tenant.client.post(
        "/v1/verifications/check", json={"phone_number": number, "code": code}
    )
    assert answer.status_code == 200
    assert answer.json()["id"] == verification_id
    assert answer.json()["status"] == "approved"
    again = await tenant.client.post(
        "/v1/verifications/check", json={"phone_number": number, "code": code}
    )
    assert_problem(again, 404, "verification_not_found")
    bad = await tenant.client.post(
        "/v1/verifications/check", json={"phone_number": "12345", "code": code}
    )
    assert_problem(bad, 422, "invalid_phone_number")


async def test_a_resend_keeps_the_verification_and_every_code_sent_stays_valid(
    tenant: TenantHandle, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """A start for a pending number re-sends (200, same id, send_count 2); the first code works."""
    number = fresh_number()
    first = await start(tenant, number)
    verification_id = first.json()["id"]
    wrong_answer = await check(tenant, verification_id, "000000")
    assert wrong_answer.status_code == 200
    clock.advance(31)
    resent = await start(tenant, number)
    assert resent.status_code == 200, resent.text
    assert resent.json()["id"] == verification_id
    assert resent.json()["send_count"] == 2
    assert len(resent.json()["messages"]) == 2
    assert resent.json()["check_attempts"] == 1
    first_code, _ = await sent_codes(sim, number)
    answer = await check(tenant, verification_id, first_code)
    assert answer.json()["status"] == "approved"
    assert answer.json()["check_attempts_remaining"] == 3


async def test_a_resend_within_the_cooldown_is_rate_limited(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A second start within resend_cooldown_seconds is 429 with Retry-After and sends nothing."""
    number = fresh_number()
    await start(tenant, number)
    limited = await start(tenant, number)
    problem = assert_problem(limited, 429, "rate_limited")
    assert problem["limit"] == "resend_cooldown"
    assert 1 <= problem["retry_after"] <= 30
    assert limited.headers["Retry-After"] == str(problem["retry_after"])
    assert len(await sent_codes(sim, number)) == 1


async def test_max_sends_limits_resends_until_the_verification_expires(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """After max_sends sends, a start is 429 max_sends with retry_after until expiry."""
    tenant = await make_tenant(max_sends=2, resend_cooldown_seconds=0)
    number = fresh_number()
    assert (await start(tenant, number)).status_code == 201
    assert (await start(tenant, number)).status_code == 200
    limited = await start(tenant, number)
    problem = assert_problem(limited, 429, "rate_limited")
    assert problem["limit"] == "max_sends"
    assert 590 <= problem["retry_after"] <= 600
    assert len(await sent_codes(sim, number)) == 2


async def test_an_expired_verification_refuses_checks_and_a_new_start_makes_a_new_one(
    tenant: TenantHandle, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """Past code_ttl_seconds the code no longer works, GET says expired, a start creates anew."""
    number = fresh_number()
    verification_id = (await start(tenant, number)).json()["id"]
    [code] = await sent_codes(sim, number)
    clock.advance(601)
    read = await tenant.client.get(f"/v1/verifications/{verification_id}")
    assert read.json()["status"] == "expired"
    problem = assert_problem(
        await check(tenant, verification_id, code), 409, "verification_not_pending"
    )
    assert problem["verification_status"] == "expired"
    again = await start(tenant, number)
    assert again.status_code == 201
    assert again.json()["id"] != verification_id


async def test_cancel_ends_a_pending_verification(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Cancel answers the canceled verification; checks and a second cancel are 409."""
    verification_id, code = await started(tenant, sim)
    canceled = await tenant.client.post(f"/v1/verifications/{verification_id}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["ended_at"] is not None
    assert_problem(await check(tenant, verification_id, code), 409, "verification_not_pending")
    twice = await tenant.client.post(f"/v1/verifications/{verification_id}/cancel")
    assert assert_problem(twice, 409, "verification_not_pending")["verification_status"] == (
        "canceled"
    )


async def test_a_tenant_never_sees_another_tenants_verification(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """Another tenant's verification is 404, exactly like one that does not exist."""
    owner, other = await make_tenant(), await make_tenant()
    verification_id, code = await started(owner, sim)
    for response in (
        await other.client.get(f"/v1/verifications/{verification_id}"),
        await check(other, verification_id, code),
        await other.client.post(f"/v1/verifications/{verification_id}/cancel"),
        await other.client.get("/v1/verifications/ver_doesnotexist"),
    ):
        assert_problem(response, 404, "verification_not_found")
    assert (await check(owner, verification_id, code)).json()["valid"] is True


async def test_a_missing_unknown_or_malformed_key_is_401(
    anonymous: httpx.AsyncClient,
) -> None:
    """No key, a made-up key or another scheme answer 401 unauthorized."""
    body = {"phone_number": fresh_number()}
    for headers in (
        {},
        {"Authorization": "Bearer otpk_made_up"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ):
        response = await anonymous.post("/v1/verifications", json=body, headers=headers)
        assert_problem(response, 401, "unauthorized")


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("447400123456", "E.164"),
        ("+44 7400 123456", "E.164"),
        ("+447700900123", "valid"),
        ("+1", "E.164"),
        ("+4474001234567890", "E.164"),
        ("", "E.164"),
        ("+44740012345a", "E.164"),
    ],
)
async def test_a_malformed_number_is_422_invalid_phone_number(
    tenant: TenantHandle, number: str, why: str
) -> None:
    """Numbers that are not valid E.164 are refused with a detail saying what is wrong."""
    problem = assert_problem(await start(tenant, number), 422, "invalid_phone_number")
    assert why in problem["detail"]


async def test_a_number_of_the_wrong_json_type_is_invalid_phone_number(
    tenant: TenantHandle,
) -> None:
    """A phone number sent as a JSON number is invalid_phone_number, not a 500."""
    response = await tenant.client.post("/v1/verifications", json={"phone_number": 447400123456})
    assert_problem(response, 422, "invalid_phone_number")


async def test_landlines_and_premium_numbers_are_refused(make_tenant: MakeTenant) -> None:
    """Fixed lines are refused unless the tenant allows them; premium rate always."""
    strict, lenient = await make_tenant(), await make_tenant(reject_landlines=False)
    assert_problem(await start(strict, "+442071838750"), 422, "unsupported_number_type")
    assert (await start(lenient, "+442071838750")).status_code == 201
    for tenant in (strict, lenient):
        assert_problem(await start(tenant, "+19005550100"), 422, "unsupported_number_type")


async def test_destinations_outside_allowed_countries_or_without_senders_are_403(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """allowed_countries and a missing sender chain refuse before anything is sent."""
    only_gb = await make_tenant(allowed_countries=["GB"])
    number = fresh_number("FR")
    assert_problem(await start(only_gb, number), 403, "destination_not_allowed")
    no_default = await make_tenant(
        senders={"GB": [{"type": "alphanumeric_sender_id", "from": "ACME"}]}
    )
    assert_problem(await start(no_default, number), 403, "destination_not_allowed")
    assert await sent_codes(sim, number) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b'{"phone_number": "+447400123456", "extra": 1}', 422, "validation_error"),
        (b"{}", 422, "validation_error"),
        (b"[]", 422, "validation_error"),
        (b'{"phone_number": "+447400123456", "code_length": 3}', 422, "validation_error"),
        (b'{"phone_number": "+447400123456", "locale": "english"}', 422, "validation_error"),
    ],
)
async def test_bad_bodies_get_a_problem_document(
    tenant: TenantHandle, body: bytes, status: int, code: str
) -> None:
    """Malformed JSON, unknown or missing fields and out-of-range values are 4xx problems."""
    response = await tenant.client.post(
        "/v1/verifications", content=body, headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(response, status, code)
    if status == 422:
        assert problem["errors"]


async def test_metadata_is_kept_and_limited_to_ten_pairs(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Up to ten metadata pairs are returned as given; eleven are refused."""
    metadata = {f"k{i}": f"v{i}" for i in range(10)}
    verification_id, _ = await started(tenant, sim, metadata=metadata)
    read = await tenant.client.get(f"/v1/verifications/{verification_id}")
    assert read.json()["metadata"] == metadata
    too_many = await start(tenant, fresh_number(), metadata={f"k{i}": "v" for i in range(11)})
    assert_problem(too_many, 422, "validation_error")


async def test_an_oversized_body_is_413(tenant: TenantHandle) -> None:
    """A body over the 16 KiB limit is refused with 413 payload_too_large."""
    response = await tenant.client.post(
        "/v1/verifications",
        content=b'{"phone_number": "' + b"1" * 20_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_the_sms_can_be_autofilled_and_localised(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """With webotp_domain the SMS ends '@domain #code'; locale fr writes it in French."""
    tenant = await make_tenant(webotp_domain="login.acme.example")
    number = fresh_number()
    await start(tenant, number, locale="fr")
    [sent] = (await sim.get("/_sim/messages", params={"to": number})).json()
    code = sent["text"].split(" ", 1)[0]
    assert sent["text"].endswith(f"@login.acme.example #{code}")
    assert "code de vérification" in sent["text"]


async def test_a_telnyx_refusal_fails_the_verification_with_502(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """When Telnyx refuses the only sender, the start is 502 and the verification failed."""
    number = fresh_number()
    await sim.post(
        "/_sim/behaviours", json={"to": number, "action": "reject", "error_code": "40305"}
    )
    problem = assert_problem(await start(tenant, number), 502, "provider_error")
    assert problem["error_codes"] == ["40305"]
    read = await tenant.client.get(f"/v1/verifications/{problem['verification_id']}")
    body = read.json()
    assert body["status"] == "failed"
    assert body["messages"] == [
        {
            "id": None,
            "sender_type": "alphanumeric_sender_id",
            "from": "ACME",
            "status": "sending_failed",
            "error_codes": ["40305"],
            "created_at": body["messages"][0]["created_at"],
            "updated_at": body["messages"][0]["updated_at"],
        }
    ]
    await sim.delete("/_sim/behaviours")
    assert (await start(tenant, number)).status_code == 201


async def test_an_opted_out_recipient_is_409_and_later_starts_send_nothing(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Telnyx's 40300 answers 409 recipient_opted_out, is recorded, and blocks later starts."""
    number = fresh_number()
    await sim.post(
        "/_sim/behaviours", json={"to": number, "action": "reject", "error_code": "40300"}
    )
    assert_problem(await start(tenant, number), 409, "recipient_opted_out")
    status = await tenant.client.get(f"/v1/opt-outs/{number}")
    assert status.status_code == 200
    assert status.json()["opted_out"] is True
    assert status.json()["source"] == "carrier"
    await sim.delete("/_sim/behaviours")
    assert_problem(await start(tenant, number), 409, "recipient_opted_out")
    inbox = (await sim.get("/_sim/messages", params={"to": number})).json()
    assert inbox == []


async def test_an_opt_out_lookup_of_a_number_that_never_opted_out(tenant: TenantHandle) -> None:
    """A number with no opt-out reads opted_out false; a malformed one is 422."""
    number = fresh_number()
    status = await tenant.client.get(f"/v1/opt-outs/{number}")
    assert status.json() == {
        "phone_number": number,
        "opted_out": False,
        "since": None,
        "source": None,
    }
    assert_problem(await tenant.client.get("/v1/opt-outs/12345"), 422, "invalid_phone_number")


async def test_telnyx_timing_out_answers_503_within_the_time_limit(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A Telnyx that does not answer gives 503 provider_unavailable, well under 10 s."""
    number = fresh_number()
    await sim.post("/_sim/behaviours", json={"to": number, "action": "timeout", "times": 1})
    began = time.monotonic()
    response = await start(tenant, number)
    assert time.monotonic() - began < 10
    assert_problem(response, 503, "provider_unavailable")


async def test_a_server_error_at_telnyx_answers_503(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Telnyx answering 500 is provider_unavailable, and the number can start again."""
    number = fresh_number()
    await sim.post(
        "/_sim/behaviours",
        json={
            "to": number,
            "action": "reject",
            "error_code": "10000",
            "http_status": 500,
            "times": 1,
        },
    )
    assert_problem(await start(tenant, number), 503, "provider_unavailable")
    assert (await start(tenant, number)).status_code == 201


async def test_delivery_receipts_update_the_message_status(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """The simulator's signed webhooks move the message from queued to delivered."""
    verification_id, _ = await started(tenant, sim)
    for _ in range(100):
        read = await tenant.client.get(f"/v1/verifications/{verification_id}")
        if read.json()["messages"][0]["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    assert read.json()["messages"][0]["status"] == "delivered"


async def test_a_failed_delivery_is_recorded_with_its_error_code(
    tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A delivery_failed receipt shows on the message with Telnyx's error code."""
    number = fresh_number()
    await sim.post("/_sim/behaviours", json={"to": number, "action": "fail", "error_code": "40008"})
    verification_id = (await start(tenant, number)).json()["id"]
    for _ in range(100):
        message = (await tenant.client.get(f"/v1/verifications/{verification_id}")).json()[
            "messages"
        ][0]
        if message["status"] == "delivery_failed":
            break
        await asyncio.sleep(0.05)
    assert message["status"] == "delivery_failed"
    assert message["error_codes"] == ["40008"]
