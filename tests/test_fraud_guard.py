"""The fraud guard over HTTP: pumping to a narrow number range is refused within 30 sends.

Every attack here targets a fresh tenant (no history: the guard must protect it from its
first minute) with numbers sharing ``+44791112`` (country code and 6 national digits), with
the default thresholds. A fast burst is caught by velocity, a slow one by conversion (nobody
types the codes); a range whose users type their codes is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from otp_service.adapters import redis_keys as keys
from otp_service.core.fraud import FraudSettings, PrefixStats, assess
from tests.abuse_helpers import (
    assert_limited,
    blocks,
    check,
    inbox,
    metric,
    range_numbers,
    refused,
    start,
)
from tests.conftest import MakeTenant, MovableClock, TenantHandle, fresh_number
from tests.servers import serve
from tests.test_events import Receiver, arrives

RANGE = "+44791112"
VELOCITY_FLOOR = 20
"""Starts to a range of 4 to 6 national digits always allowed in 10 minutes (the default)."""
MOST_SENT = 30
"""The issue's target: every attack blocked within 30 SMS."""
FIRST_BLOCK_S = 900


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    receiver.hold.set()
    with serve(receiver.app()) as url:
        yield receiver, f"{url}/events"


@pytest.fixture
def receiver(receiver_server: tuple[Receiver, str]) -> Receiver:
    """The tenant event receiver, emptied for this test."""
    found, _ = receiver_server
    found.events.clear()
    found.raw.clear()
    return found


@pytest.fixture
async def subscriber(
    make_tenant: MakeTenant, receiver_server: tuple[Receiver, str]
) -> TenantHandle:
    """A new tenant with the default fraud guard whose events go to the receiver."""
    return await make_tenant(events_webhook_url=receiver_server[1])


def seconds_between(block: dict[str, Any]) -> float:
    """How long a listed block lasts."""
    created = datetime.fromisoformat(block["created_at"])
    return (datetime.fromisoformat(block["expires_at"]) - created).total_seconds()


async def pump(
    tenant: TenantHandle,
    numbers: list[str],
    clock: MovableClock | None = None,
    every_s: float = 0,
) -> tuple[list[str], httpx.Response | None]:
    """Start to each number in turn (``every_s`` apart) until one is refused.

    Returns the numbers started and the refusal (None if every start went through).
    """
    sent: list[str] = []
    for number in numbers:
        response = await start(tenant, number)
        if response.status_code != 201:
            return sent, response
        sent.append(number)
        if clock is not None:
            clock.advance(every_s)
    return sent, None


async def sms_count(sim: httpx.AsyncClient, numbers: list[str]) -> int:
    return sum([len(await inbox(sim, number)) for number in numbers])


async def test_a_fast_burst_to_one_range_is_blocked_within_the_velocity_floor(
    subscriber: TenantHandle,
    sim: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    receiver: Receiver,
    redis: Redis,
) -> None:
    """Past the floor of 20 starts in 10 minutes the range is blocked: 429 `prefix`, listed,
    sent as `fraud.blocked`, counted in /metrics; other ranges are not held back."""
    blocks_before = await metric(anonymous, "otp_fraud_blocks_total", mode="block")
    refusals_before = await metric(anonymous, "otp_rate_limited_total", limit="prefix")
    numbers = range_numbers(RANGE, 40)
    sent, refusal = await pump(subscriber, numbers)
    assert refusal is not None, "the burst was never blocked"
    assert VELOCITY_FLOOR < len(sent) <= MOST_SENT
    retry_after = assert_limited(refusal, "prefix")
    assert FIRST_BLOCK_S - 5 <= retry_after <= FIRST_BLOCK_S
    assert await sms_count(sim, numbers) == len(sent)

    [block] = await blocks(admin, subscriber.id)
    assert block["id"].startswith("blk_")
    assert block["limit"] == "prefix"
    assert block["mode"] == "block"
    assert block["value"] == RANGE  # the range attacked, not the operator's around it
    assert block["strikes"] == 1
    assert "starts in 600 s" in block["reason"]
    assert seconds_between(block) == FIRST_BLOCK_S

    event = await arrives(receiver, "fraud.blocked", block["id"])
    assert event["data"] == block
    assert await metric(anonymous, "otp_fraud_blocks_total", mode="block") == blocks_before + 1
    assert await metric(anonymous, "otp_rate_limited_total", limit="prefix") == (
        refusals_before + 1
    )

    # Any number of the blocked range is refused; other ranges go through.
    await refused(sim, subscriber, range_numbers(RANGE, 1)[0], "prefix")
    assert (await start(subscriber, fresh_number())).status_code == 201
    assert (await start(subscriber, fresh_number("US"))).status_code == 201
    assert [b["id"] for b in await blocks(admin, subscriber.id)] == [block["id"]]
    # What lists the blocks goes from Redis with the last of them.
    assert 0 < await redis.pttl(keys.blocks(subscriber.id)) <= FIRST_BLOCK_S * 1000


async def test_lifting_a_block_lets_the_next_start_through(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """DELETE of a block is 204 and the range is open again; an unknown id, a lifted one or
    another tenant's is 404 block_not_found."""
    tenant = await make_tenant()
    other = await make_tenant()
    _, refusal = await pump(tenant, range_numbers(RANGE, 40))
    assert refusal is not None
    assert_limited(refusal, "prefix")
    [block] = await blocks(admin, tenant.id)
    assert await blocks(admin, other.id) == []

    foreign = await admin.delete(f"/admin/tenants/{other.id}/blocks/{block['id']}")
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "block_not_found"
    assert [b["id"] for b in await blocks(admin, tenant.id)] == [block["id"]]
    unknown = await admin.delete(f"/admin/tenants/{tenant.id}/blocks/blk_unknown")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "block_not_found"

    lifted = await admin.delete(f"/admin/tenants/{tenant.id}/blocks/{block['id']}")
    assert lifted.status_code == 204, lifted.text
    assert await blocks(admin, tenant.id) == []
    number = range_numbers(RANGE, 1)[0]
    assert (await start(tenant, number)).status_code == 201
    assert len(await inbox(sim, number)) == 1
    again = await admin.delete(f"/admin/tenants/{tenant.id}/blocks/{block['id']}")
    assert again.status_code == 404
    assert again.json()["code"] == "block_not_found"

    missing = await admin.get("/admin/tenants/ten_missing/blocks")
    assert missing.status_code == 404
    assert missing.json()["code"] == "tenant_not_found"


async def test_a_slow_attack_is_blocked_by_conversion(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, admin: httpx.AsyncClient, clock: MovableClock
) -> None:
    """One start a minute never trips velocity, but codes nobody types condemn the range."""
    tenant = await make_tenant()
    numbers = range_numbers(RANGE, 40)
    sent, refusal = await pump(tenant, numbers, clock, every_s=60)
    assert refusal is not None, "the slow attack was never blocked"
    assert len(sent) <= MOST_SENT
    assert_limited(refusal, "prefix")
    assert await sms_count(sim, numbers) == len(sent)
    [block] = await blocks(admin, tenant.id)
    assert block["mode"] == "block"
    assert block["value"] == RANGE
    assert "never used" in block["reason"]


async def test_an_attack_spread_over_sub_ranges_is_blocked_as_one_range(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """Numbers all over +447911 (no narrower range stands out): one block of +447911."""
    tenant = await make_tenant()
    numbers = range_numbers("+447911", 40)
    sent, refusal = await pump(tenant, numbers)
    assert refusal is not None
    assert VELOCITY_FLOOR < len(sent) <= MOST_SENT
    assert_limited(refusal, "prefix")
    assert await sms_count(sim, numbers) == len(sent)
    [block] = await blocks(admin, tenant.id)
    assert block["value"] == "+447911"


async def test_a_range_whose_users_type_their_codes_is_not_blocked(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, admin: httpx.AsyncClient, clock: MovableClock
) -> None:
    """The slow attack's pace, but 80% of the codes are typed: nothing is refused."""
    tenant = await make_tenant()
    for index, number in enumerate(range_numbers(RANGE, 40)):
        response = await start(tenant, number)
        assert response.status_code == 201, (index, response.text)
        if index % 5:
            [code] = await inbox(sim, number)
            typed = await check(tenant, response.json()["id"], code)
            assert typed.json()["status"] == "approved"
        clock.advance(60)
    assert await blocks(admin, tenant.id) == []


async def test_monitor_mode_records_the_block_and_refuses_nothing(
    make_tenant: MakeTenant,
    sim: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
) -> None:
    """`monitor`: the same burst is all sent, and the block `block` mode would have made is
    listed with mode `monitor`."""
    tenant = await make_tenant(fraud_guard="monitor")
    before = await metric(anonymous, "otp_fraud_blocks_total", mode="monitor")
    numbers = range_numbers(RANGE, 40)
    _, refusal = await pump(tenant, numbers)
    assert refusal is None, refusal.text if refusal else ""
    assert await sms_count(sim, numbers) == len(numbers)
    listed = await blocks(admin, tenant.id)
    assert len(listed) == 1, [(b["value"], b["reason"]) for b in listed]
    [block] = listed
    assert block["mode"] == "monitor"
    assert block["limit"] == "prefix"
    assert block["value"] == RANGE
    assert await metric(anonymous, "otp_fraud_blocks_total", mode="monitor") == before + 1

    blocking = await make_tenant()
    await pump(blocking, range_numbers(RANGE, 40))
    [would_be] = await blocks(admin, blocking.id)
    assert would_be["value"] == block["value"]


async def test_off_mode_watches_nothing(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """`off`: the burst is all sent and no block is recorded."""
    tenant = await make_tenant(fraud_guard="off")
    numbers = range_numbers(RANGE, 40)
    _, refusal = await pump(tenant, numbers)
    assert refusal is None
    assert await sms_count(sim, numbers) == len(numbers)
    assert await blocks(admin, tenant.id) == []


async def test_a_renewed_attack_after_a_block_ends_is_blocked_twice_as_long(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, admin: httpx.AsyncClient, clock: MovableClock
) -> None:
    """Escalation: the range's second block in a day is strike 2 and lasts 30 minutes; a
    day after the last block ends, the next is strike 1 again."""
    tenant = await make_tenant()
    _, refusal = await pump(tenant, range_numbers(RANGE, 40))
    assert refusal is not None
    wait = assert_limited(refusal, "prefix")
    [first] = await blocks(admin, tenant.id)

    clock.advance(wait)
    assert await blocks(admin, tenant.id) == []
    numbers = range_numbers(RANGE, 40)
    sent, refusal = await pump(tenant, numbers)
    assert refusal is not None, "the renewed attack was never blocked"
    assert 1 <= len(sent) <= MOST_SENT
    assert await sms_count(sim, numbers) == len(sent)
    assert_limited(refusal, "prefix")
    retry_after = int(refusal.headers["Retry-After"])
    assert 2 * FIRST_BLOCK_S - 5 <= retry_after <= 2 * FIRST_BLOCK_S
    [second] = await blocks(admin, tenant.id)
    assert second["id"] != first["id"]
    assert second["value"] == first["value"] == RANGE
    assert second["strikes"] == 2
    assert seconds_between(second) == 2 * FIRST_BLOCK_S

    # A day after the last block ended (by the service's clock), the range starts afresh.
    clock.advance(2 * FIRST_BLOCK_S + 24 * 3600 + 1)
    _, refusal = await pump(tenant, range_numbers(RANGE, 40))
    assert refusal is not None
    [third] = await blocks(admin, tenant.id)
    assert third["strikes"] == 1
    assert seconds_between(third) == FIRST_BLOCK_S


def _stats(*rows: tuple[str, int, int, int], blocked: str = "") -> list[PrefixStats]:
    """PrefixStats of (prefix, recent, aged, unconverted), no baseline."""
    return [
        PrefixStats(prefix, recent, 0.0, aged, unconverted, prefix == blocked)
        for prefix, recent, aged, unconverted in rows
    ]


@pytest.mark.parametrize(
    ("stats", "blocked_range"),
    [
        # One narrow range attacked: every prefix holds the same 22 starts.
        (_stats(*((p, 22, 0, 0) for p in ("+4479", "+44791", "+447911", "+4479111"))), "+4479111"),
        # Spread over sub-ranges: only the 4-digit range holds all of them.
        (
            _stats(
                ("+4479", 22, 0, 0),
                ("+44791", 22, 0, 0),
                ("+447911", 22, 0, 0),
                ("+4479111", 3, 0, 0),
            ),
            "+447911",
        ),
        # The wider ranges' older traffic is no evidence of the burst: the narrow range.
        (_stats(("+4479", 22, 50, 5), ("+44791", 22, 0, 0), ("+447911", 22, 0, 0)), "+447911"),
        # Conversion: the same unused codes everywhere.
        (_stats(("+4479", 0, 12, 12), ("+44791", 0, 12, 12), ("+447911", 1, 12, 12)), "+447911"),
        # Nothing condemned.
        (_stats(("+4479", 5, 20, 4), ("+44791", 5, 20, 4)), None),
        # A sub-range holds most of the case but is not condemned yet (a real user's unused
        # code tipped the wider range over): nothing is blocked until the sub-range is.
        (_stats(("+4479", 0, 10, 10), ("+44791", 0, 9, 9)), None),
        # ... and then the sub-range is blocked, not the range around it.
        (_stats(("+4479", 0, 11, 11), ("+44791", 0, 10, 10)), "+44791"),
        # Inside a range blocked already (monitor mode sees it): judged no further.
        (_stats(("+4479", 0, 0, 0), ("+44791", 40, 0, 0), blocked="+44791"), None),
    ],
)
def test_the_detector_blocks_the_narrowest_range_holding_the_evidence(
    stats: list[PrefixStats], blocked_range: str | None
) -> None:
    """core.fraud.assess: the widest condemned prefix, narrowed to where its evidence lives."""
    settings = FraudSettings(velocity_floors=[20, 20, 20, 20, 20])
    verdict = assess(stats, settings)
    assert (verdict.prefix if verdict else None) == blocked_range


async def test_a_blocked_ranges_starts_are_not_held_against_the_range_around_it(
    make_tenant: MakeTenant, admin: httpx.AsyncClient, clock: MovableClock
) -> None:
    """After a narrow range is blocked, its unused codes age, but a start elsewhere in the
    4-digit range around it is judged on that range's own traffic: it goes through and
    nothing wider is blocked."""
    tenant = await make_tenant()
    _, refusal = await pump(tenant, range_numbers(RANGE, 40))
    assert refusal is not None
    assert_limited(refusal, "prefix")
    [narrow] = await blocks(admin, tenant.id)
    assert narrow["value"] == RANGE
    clock.advance(600)  # every pumped code is now old enough to count as unused
    elsewhere = range_numbers("+4479110", 1)[0]
    response = await start(tenant, elsewhere)
    assert response.status_code == 201, response.text
    assert [b["value"] for b in await blocks(admin, tenant.id)] == [RANGE]
