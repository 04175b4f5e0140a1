"""Layered send and check limits, each driven to its edge and one past it, over HTTP.

Every refusal is a 429 ``rate_limited`` naming the limit, with ``retry_after`` equal to the
``Retry-After`` header, and sends nothing; where time matters, moving the service's clock
past ``retry_after`` lets the next request through. The fraud guard is off where many
starts go to one range, so that only the limit under test can refuse.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.abuse_helpers import (
    assert_limited,
    check,
    check_by_phone,
    inbox,
    metric,
    refused,
    start,
    wrong,
)
from tests.abuse_helpers import blocks as list_blocks
from tests.conftest import MakeTenant, MovableClock, fresh_number

DAY_S = 86_400
OFF = "off"


def limits(**values: Any) -> dict[str, Any]:
    """Tenant settings with these ``limits`` and the fraud guard off."""
    return {"fraud_guard": OFF, "limits": values}


async def test_a_number_gets_at_most_its_hourly_and_daily_sms_whoever_asks(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """phone_number: 2 an hour, 3 a day, counted across askers and verifications."""
    tenant = await make_tenant(**limits(phone_number_per_hour=2, phone_number_per_day=3))
    number = fresh_number()
    assert (await start(tenant, number, {"ip": "10.0.0.1"})).status_code == 201
    resent = await start(tenant, number, {"ip": "10.0.0.2"})  # another asker: no cooldown
    assert resent.status_code == 200, resent.text
    assert resent.json()["send_count"] == 2
    hour_wait = await refused(sim, tenant, number, "phone_number", {"ip": "10.0.0.3"})
    assert 3590 <= hour_wait <= 3600
    assert (await start(tenant, fresh_number(), {"ip": "10.0.0.3"})).status_code == 201

    clock.advance(hour_wait)
    assert (await start(tenant, number, {"ip": "10.0.0.4"})).status_code == 201
    assert len(await inbox(sim, number)) == 3
    day_wait = await refused(sim, tenant, number, "phone_number", {"ip": "10.0.0.5"})
    assert DAY_S - hour_wait - 10 <= day_wait <= DAY_S - hour_wait

    clock.advance(day_wait)
    assert (await start(tenant, number, {"ip": "10.0.0.5"})).status_code == 201
    assert len(await inbox(sim, number)) == 4


async def test_the_tenant_bucket_allows_its_burst_then_its_steady_rate(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """tenant: 3 at once, then one every 20 s (3 a minute)."""
    tenant = await make_tenant(**limits(tenant={"max": 3, "interval_seconds": 60}))
    for _ in range(3):
        assert (await start(tenant, fresh_number())).status_code == 201
    wait = await refused(sim, tenant, fresh_number(), "tenant")
    assert 15 <= wait <= 20  # one every 20 s, less the time the burst took
    clock.advance(wait)
    assert (await start(tenant, fresh_number())).status_code == 201
    assert 15 <= await refused(sim, tenant, fresh_number(), "tenant") <= 20


async def test_an_askers_sends_are_bounded_per_key_value(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """key:ip sends: 3 an hour for each ip; another ip, or no key, is not held back."""
    tenant = await make_tenant(
        **limits(rate_limit_keys={"ip": {"sends": {"max": 3, "interval_seconds": 3600}}})
    )
    attacker = {"ip": "203.0.113.9"}
    for _ in range(3):
        assert (await start(tenant, fresh_number(), attacker)).status_code == 201
    target = fresh_number()
    wait = await refused(sim, tenant, target, "key:ip", attacker)
    assert 1190 <= wait <= 1200  # one every 1200 s
    assert (await start(tenant, target, {"ip": "203.0.113.10"})).status_code == 201
    assert (await start(tenant, fresh_number())).status_code == 201
    clock.advance(wait)
    assert (await start(tenant, fresh_number(), attacker)).status_code == 201
    await refused(sim, tenant, fresh_number(), "key:ip", attacker)


async def test_a_named_keys_buckets_override_the_tenants_default(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """`ip` has its own bucket (2); `device` falls back to the tenant's `default` (1)."""
    one_an_hour = {"sends": {"max": 1, "interval_seconds": 3600}}
    two_an_hour = {"sends": {"max": 2, "interval_seconds": 3600}}
    tenant = await make_tenant(
        **limits(rate_limit_keys={"default": one_an_hour, "ip": two_an_hour})
    )
    device = {"device": "d-1"}
    assert (await start(tenant, fresh_number(), device)).status_code == 201
    await refused(sim, tenant, fresh_number(), "key:device", device)
    ip = {"ip": "192.0.2.1"}
    for _ in range(2):
        assert (await start(tenant, fresh_number(), ip)).status_code == 201
    await refused(sim, tenant, fresh_number(), "key:ip", ip)
    # Both keys named: each is counted, and the one spent is the one reported.
    await refused(sim, tenant, fresh_number(), "key:ip", {"ip": "192.0.2.1", "user": "u"})
    assert (await start(tenant, fresh_number(), {"ip": "192.0.2.2", "user": "u"})).status_code == (
        201
    )


async def test_an_asker_gets_three_sms_to_one_number_by_default(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """key:ip sends_per_number (3 an hour by default): a start and two resends, then 429."""
    tenant = await make_tenant(resend_cooldown_seconds=0, **limits())
    number = fresh_number()
    asker = {"ip": "198.51.100.20"}
    assert (await start(tenant, number, asker)).status_code == 201
    for _ in range(2):
        assert (await start(tenant, number, asker)).status_code == 200
    wait = await refused(sim, tenant, number, "key:ip", asker)
    assert 3590 <= wait <= 3600
    assert len(await inbox(sim, number)) == 3
    assert (await start(tenant, fresh_number(), asker)).status_code == 201
    resent = await start(tenant, number, {"ip": "198.51.100.21"})
    assert resent.status_code == 200
    assert resent.json()["send_count"] == 4


async def test_an_askers_checks_are_bounded_without_using_attempts(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """key:ip checks: 3 a minute across verifications; a refused check takes no attempt."""
    tenant = await make_tenant(
        **limits(rate_limit_keys={"ip": {"checks": {"max": 3, "interval_seconds": 60}}})
    )
    started = []
    for _ in range(4):
        number = fresh_number()
        response = await start(tenant, number)
        assert response.status_code == 201
        started.append((response.json()["id"], (await inbox(sim, number))[0]))
    asker = {"ip": "203.0.113.50"}
    for verification_id, code in started[:3]:
        answer = await check(tenant, verification_id, wrong([code]), asker)
        assert answer.status_code == 200
        assert answer.json()["valid"] is False
    last_id, last_code = started[3]
    wait = assert_limited(await check(tenant, last_id, last_code, asker), "key:ip")
    assert 15 <= wait <= 20
    read = (await tenant.client.get(f"/v1/verifications/{last_id}")).json()
    assert read["check_attempts"] == 0
    assert read["status"] == "pending"
    other = await check(tenant, last_id, wrong([last_code]), {"ip": "203.0.113.51"})
    assert other.status_code == 200
    clock.advance(wait)
    approved = await check(tenant, last_id, last_code, asker)
    assert approved.json()["status"] == "approved"


async def test_an_asker_gets_three_checks_of_one_number_by_default(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """key:ip checks_per_number (3 by default, below max_check_attempts 5)."""
    tenant = await make_tenant(**limits())
    number = fresh_number()
    verification_id = (await start(tenant, number)).json()["id"]
    codes = await inbox(sim, number)
    asker = {"ip": "198.51.100.30"}
    for _ in range(3):
        answer = await check(tenant, verification_id, wrong(codes), asker)
        assert answer.json()["valid"] is False
    wait = assert_limited(await check(tenant, verification_id, codes[0], asker), "key:ip")
    assert 3590 <= wait <= 3600
    by_phone = await check_by_phone(tenant, number, codes[0], asker)
    assert_limited(by_phone, "key:ip")
    read = (await tenant.client.get(f"/v1/verifications/{verification_id}")).json()
    assert read["check_attempts"] == 3
    owner = await check(tenant, verification_id, codes[0], {"ip": "198.51.100.31"})
    assert owner.json()["status"] == "approved"


def _day_end_s(now_ms: int) -> float:
    return (now_ms - now_ms % (DAY_S * 1000) + DAY_S * 1000) / 1000


async def test_a_spent_country_budget_opens_its_breaker_until_an_operator_lifts_it(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, admin: httpx.AsyncClient, clock: MovableClock
) -> None:
    """country: 2 GB sends a day; the breaker is a block, and lifting it refills the budget."""
    tenant = await make_tenant(**limits(country_daily_sends={"GB": 2}))
    for _ in range(2):
        assert (await start(tenant, fresh_number())).status_code == 201
    wait = await refused(sim, tenant, fresh_number(), "country")
    now_s = clock.now_ms() / 1000
    assert abs(wait - math.ceil(_day_end_s(clock.now_ms()) - now_s)) <= 2
    assert (await start(tenant, fresh_number("US"))).status_code == 201
    await refused(sim, tenant, fresh_number(), "country")

    [breaker] = await list_blocks(admin, tenant.id)
    assert breaker["limit"] == "country"
    assert breaker["value"] == "GB"
    assert breaker["mode"] == "block"
    assert breaker["reason"]
    assert breaker["id"].startswith("blk_")
    day_end = datetime.fromtimestamp(_day_end_s(clock.now_ms()), UTC)
    assert datetime.fromisoformat(breaker["expires_at"]) == day_end

    lifted = await admin.delete(f"/admin/tenants/{tenant.id}/blocks/{breaker['id']}")
    assert lifted.status_code == 204, lifted.text
    assert await list_blocks(admin, tenant.id) == []
    for _ in range(2):
        assert (await start(tenant, fresh_number())).status_code == 201
    await refused(sim, tenant, fresh_number(), "country")
    [again] = await list_blocks(admin, tenant.id)
    assert again["id"] != breaker["id"]
    assert again["value"] == "GB"


async def test_a_country_budget_is_whole_again_the_next_day(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, admin: httpx.AsyncClient, clock: MovableClock
) -> None:
    """country: the breaker closes by itself when the UTC day ends, and opens again when
    the new day's budget is spent."""
    tenant = await make_tenant(**limits(country_daily_sends={"default": 1}))
    assert (await start(tenant, fresh_number("FR"))).status_code == 201
    wait = await refused(sim, tenant, fresh_number("FR"), "country")
    [yesterday] = await list_blocks(admin, tenant.id)
    clock.advance(wait)
    assert await list_blocks(admin, tenant.id) == []
    assert (await start(tenant, fresh_number("FR"))).status_code == 201
    await refused(sim, tenant, fresh_number("FR"), "country")
    [today] = await list_blocks(admin, tenant.id)
    assert today["id"] != yesterday["id"]
    assert today["value"] == "FR"


async def test_consecutive_wrong_codes_for_a_number_are_bounded_across_verifications(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """phone_number on checks: 3 wrong codes in a row, whatever the verification; a right
    code ends the streak; past the limit even a right code is refused, using no attempt."""
    tenant = await make_tenant(**limits(failed_checks_per_number=3))
    number = fresh_number()
    first = (await start(tenant, number)).json()["id"]
    codes = await inbox(sim, number)
    for _ in range(2):
        assert (await check(tenant, first, wrong(codes))).json()["valid"] is False
    assert (await check(tenant, first, codes[-1])).json()["status"] == "approved"

    second = (await start(tenant, number)).json()["id"]
    codes = await inbox(sim, number)
    for _ in range(2):  # the streak began again at the right code
        assert (await check(tenant, second, wrong(codes))).json()["valid"] is False
    canceled = await tenant.client.post(f"/v1/verifications/{second}/cancel")
    assert canceled.status_code == 200

    third = (await start(tenant, number)).json()["id"]
    codes = await inbox(sim, number)
    assert (await check(tenant, third, wrong(codes))).json()["valid"] is False
    wait = assert_limited(await check(tenant, third, codes[-1]), "phone_number")
    assert DAY_S - 10 <= wait <= DAY_S
    assert_limited(await check_by_phone(tenant, number, codes[-1]), "phone_number")
    read = (await tenant.client.get(f"/v1/verifications/{third}")).json()
    assert read["check_attempts"] == 1

    clock.advance(wait)
    fourth = (await start(tenant, number)).json()["id"]
    codes = await inbox(sim, number)
    assert (await check(tenant, fourth, codes[-1])).json()["status"] == "approved"


async def test_the_resend_cooldown_and_max_sends_are_unchanged(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """The same asker still waits the cooldown, and a verification sends max_sends at most."""
    tenant = await make_tenant(max_sends=2, resend_cooldown_seconds=30)
    number = fresh_number()
    asker = {"ip": "192.0.2.40"}
    assert (await start(tenant, number, asker)).status_code == 201
    assert await refused(sim, tenant, number, "resend_cooldown", asker) == 30
    assert await refused(sim, tenant, number, "resend_cooldown") == 30
    clock.advance(30)
    resent = await start(tenant, number, asker)
    assert resent.status_code == 200
    assert resent.json()["send_count"] == 2
    clock.advance(30)
    await refused(sim, tenant, number, "max_sends", {"ip": "192.0.2.41"})
    assert len(await inbox(sim, number)) == 2


CONCURRENT = 50
EDGE = 10


@pytest.mark.parametrize(
    ("limit", "settings", "keys"),
    [
        ("tenant", {"tenant": {"max": EDGE, "interval_seconds": 3600}}, None),
        (
            "key:ip",
            {"rate_limit_keys": {"ip": {"sends": {"max": EDGE, "interval_seconds": 3600}}}},
            {"ip": "203.0.113.77"},
        ),
        ("country", {"country_daily_sends": {"GB": EDGE}}, None),
    ],
)
async def test_fifty_concurrent_starts_at_a_limits_edge_never_exceed_it(
    make_tenant: MakeTenant,
    sim: httpx.AsyncClient,
    limit: str,
    settings: dict[str, Any],
    keys: dict[str, str] | None,
) -> None:
    """50 simultaneous starts to distinct numbers against a limit of 10: 10 SMS, 40 x 429."""
    tenant = await make_tenant(**limits(**settings))
    numbers = [fresh_number() for _ in range(CONCURRENT)]
    responses = await asyncio.gather(*(start(tenant, number, keys) for number in numbers))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: EDGE, 429: CONCURRENT - EDGE}, statuses
    for response in responses:
        if response.status_code == 429:
            assert_limited(response, limit)
    sent = [len(await inbox(sim, number)) for number in numbers]
    assert sum(sent) == EDGE
    assert all(
        count == (response.status_code == 201)
        for count, response in zip(sent, responses, strict=True)
    )


async def test_fifty_concurrent_askers_of_one_number_get_its_hourly_limit(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """50 askers rotating keys, all at once, to one number limited to 3 an hour: 3 SMS."""
    tenant = await make_tenant(max_sends=10, **limits(phone_number_per_hour=3))
    number = fresh_number()
    responses = await asyncio.gather(
        *(start(tenant, number, {"ip": f"10.1.0.{i}"}) for i in range(CONCURRENT))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses[201] == 1, statuses
    assert statuses[200] <= 2, statuses
    assert len(await inbox(sim, number)) == statuses[201] + statuses[200]
    assert len(await inbox(sim, number)) <= 3
    for response in responses:
        if response.status_code == 429:
            assert_limited(response, "phone_number")


async def test_an_attacker_cannot_lock_the_victim_out(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, clock: MovableClock
) -> None:
    """With the defaults, an attacker who knows the victim's number starts, resends and
    guesses codes by phone number until its own limits refuse it; the victim then gets a
    code at once and logs in with it."""
    tenant = await make_tenant()
    victim_number = fresh_number()
    attacker = {"ip": "203.0.113.66"}
    assert (await start(tenant, victim_number, attacker)).status_code == 201
    await refused(sim, tenant, victim_number, "resend_cooldown", attacker)
    for _ in range(2):
        clock.advance(30)
        assert (await start(tenant, victim_number, attacker)).status_code == 200
    clock.advance(30)
    await refused(sim, tenant, victim_number, "key:ip", attacker)

    codes = await inbox(sim, victim_number)
    assert len(codes) == 3
    for _ in range(3):
        guess = await check_by_phone(tenant, victim_number, wrong(codes), attacker)
        assert guess.status_code == 200
        assert guess.json()["valid"] is False
    assert_limited(await check_by_phone(tenant, victim_number, wrong(codes), attacker), "key:ip")

    victim = {"ip": "198.51.100.7"}
    resent = await start(tenant, victim_number, victim)  # no cooldown: another asker
    assert resent.status_code == 200, resent.text
    assert resent.json()["send_count"] == 4
    codes = await inbox(sim, victim_number)
    assert len(codes) == 4
    logged_in = await check_by_phone(tenant, victim_number, codes[-1], victim)
    assert logged_in.status_code == 200
    assert logged_in.json()["status"] == "approved"
    assert logged_in.json()["valid"] is True


async def test_an_attacker_rotating_keys_is_stopped_by_the_numbers_own_limit(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """A new ip per request escapes the asker limits, not the number's (phone_number)."""
    tenant = await make_tenant(limits={"phone_number_per_hour": 4})
    number = fresh_number()
    for i in range(4):
        assert (await start(tenant, number, {"ip": f"10.2.0.{i}"})).status_code in (200, 201)
    await refused(sim, tenant, number, "phone_number", {"ip": "10.2.0.99"})
    assert len(await inbox(sim, number)) == 4


async def test_refusals_are_counted_by_limit(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """/metrics: otp_rate_limited_total by limit, every asker key under `key`."""
    tenant = await make_tenant(
        **limits(
            tenant={"max": 1, "interval_seconds": 3600},
            rate_limit_keys={"default": {"sends": {"max": 1, "interval_seconds": 3600}}},
        )
    )
    before_tenant = await metric(anonymous, "otp_rate_limited_total", limit="tenant")
    before_key = await metric(anonymous, "otp_rate_limited_total", limit="key")
    assert (await start(tenant, fresh_number(), {"user_id": "u1"})).status_code == 201
    await refused(sim, tenant, fresh_number(), "key:user_id", {"user_id": "u1"})
    await refused(sim, tenant, fresh_number(), "tenant", {"user_id": "u2"})
    assert await metric(anonymous, "otp_rate_limited_total", limit="tenant") == before_tenant + 1
    assert await metric(anonymous, "otp_rate_limited_total", limit="key") == before_key + 1


@pytest.mark.parametrize(
    "keys",
    [
        {f"k{i}": "v" for i in range(6)},
        {"IP": "1"},
        {"1ip": "1"},
        {"ip-v4": "1"},
        {"a" * 33: "1"},
        {"ip": "x" * 129},
        {"ip": 5},
        ["ip"],
    ],
)
async def test_bad_rate_limit_keys_are_refused_on_every_route(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, keys: object
) -> None:
    """More than 5 keys, a bad name or a value over 128 characters: 422, nothing sent."""
    tenant = await make_tenant()
    number = fresh_number()
    response = await tenant.client.post(
        "/v1/verifications", json={"phone_number": number, "rate_limit_keys": keys}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert await inbox(sim, number) == []
    verification_id = (await start(tenant, number)).json()["id"]
    by_id = await tenant.client.post(
        f"/v1/verifications/{verification_id}/check",
        json={"code": "000000", "rate_limit_keys": keys},
    )
    assert by_id.status_code == 422, by_id.text
    by_phone = await tenant.client.post(
        "/v1/verifications/check",
        json={"phone_number": number, "code": "000000", "rate_limit_keys": keys},
    )
    assert by_phone.status_code == 422, by_phone.text
    read = (await tenant.client.get(f"/v1/verifications/{verification_id}")).json()
    assert read["check_attempts"] == 0


async def test_rate_limit_keys_at_their_bounds_are_accepted(
    make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """5 keys, a 32-character name and a 128-character value are within the contract."""
    tenant = await make_tenant()
    keys = {f"k{i}": "v" for i in range(4)} | {"a" * 32: "x" * 128}
    number = fresh_number()
    assert (await start(tenant, number, keys)).status_code == 201
    codes = await inbox(sim, number)
    approved = await check_by_phone(tenant, number, codes[0], keys)
    assert approved.json()["status"] == "approved"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"fraud_guard": "maybe"}, "settings.fraud_guard"),
        ({"limits": {"phone_number_per_hour": 0}}, "settings.limits.phone_number_per_hour"),
        ({"limits": {"phone_number_per_day": 10_001}}, "settings.limits.phone_number_per_day"),
        ({"limits": {"failed_checks_per_number": 101}}, "settings.limits.failed_checks_per_number"),
        ({"limits": {"tenant": {"max": 0, "interval_seconds": 60}}}, "settings.limits.tenant"),
        ({"limits": {"tenant": {"max": 5}}}, "settings.limits.tenant"),
        ({"limits": {"country_daily_sends": {"gb": 5}}}, "settings.limits.country_daily_sends"),
        ({"limits": {"country_daily_sends": {"GB": -1}}}, "settings.limits.country_daily_sends"),
        ({"limits": {"rate_limit_keys": {"IP": {}}}}, "settings.limits.rate_limit_keys"),
        (
            {"limits": {"rate_limit_keys": {"ip": {"sends": {"max": 1, "interval_seconds": 0}}}}},
            "settings.limits.rate_limit_keys",
        ),
        ({"limits": {"rate_limit_keys": {"ip": {"logins": {}}}}}, "settings.limits"),
        ({"limits": {"per_hour": 3}}, "settings.limits"),
        ({"fraud": {"velocity_floors": [20, 20, 20, 20]}}, "settings.fraud.velocity_floors"),
        ({"fraud": {"failure_ratio": 0.3}}, "settings.fraud.failure_ratio"),
        ({"fraud": {"grace_seconds": 10}}, "settings.fraud.grace_seconds"),
        ({"fraud": {"block_seconds": 0}}, "settings.fraud.block_seconds"),
        ({"fraud": {"velocity_factor": "ten"}}, "settings.fraud.velocity_factor"),
        ({"fraud": {"threshold": 3}}, "settings.fraud"),
    ],
)
async def test_bad_limit_and_fraud_settings_are_refused_naming_the_field(
    admin: httpx.AsyncClient, settings: dict[str, Any], field: str
) -> None:
    """Creating or patching a tenant with a bad threshold is 422 validation_error."""
    created = await admin.post("/admin/tenants", json={"name": "Bad limits", "settings": settings})
    assert created.status_code == 422, created.text
    problem = created.json()
    assert problem["code"] == "validation_error"
    assert any(entry["field"].startswith(field) for entry in problem["errors"]), problem

    tenant = await admin.post("/admin/tenants", json={"name": "Good limits"})
    path = f"/admin/tenants/{tenant.json()['id']}"
    patched = await admin.patch(path, json={"settings": settings})
    assert patched.status_code == 422, patched.text
    assert patched.json()["code"] == "validation_error"
    assert (await admin.get(path)).json() == tenant.json()


async def test_limit_settings_have_documented_defaults_and_can_be_changed(
    admin: httpx.AsyncClient,
) -> None:
    """A new tenant shows every threshold with its default; a PATCH changes them."""
    created = (await admin.post("/admin/tenants", json={"name": "Defaults"})).json()
    settings = created["settings"]
    assert settings["fraud_guard"] == "block"
    assert settings["limits"]["phone_number_per_hour"] == 10
    assert settings["limits"]["phone_number_per_day"] == 30
    assert settings["limits"]["failed_checks_per_number"] == 100
    assert settings["limits"]["rate_limit_keys"]["default"]["sends_per_number"]["max"] == 3
    assert settings["fraud"]["velocity_floors"] == [120, 60, 20, 20, 20]
    patched = await admin.patch(
        f"/admin/tenants/{created['id']}",
        json={"settings": {"limits": {"phone_number_per_hour": 5}, "fraud_guard": "monitor"}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["fraud_guard"] == "monitor"
    assert patched.json()["settings"]["limits"]["phone_number_per_hour"] == 5
