"""Request metrics carry route templates, never raw paths, and stay per app."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar, MediaType, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from otp_service.adapters import redis_keys as keys
from otp_service.errors import StoreUnavailable
from otp_service.metrics import Metrics, MetricsPlugin
from otp_service.problems import EXCEPTION_HANDLERS
from tests.conftest import TenantHandle, fresh_number, sent_codes


def _app(metrics: Metrics) -> Litestar:
    @get("/v1/verifications/{verification_id:str}")
    async def read(verification_id: FromPath[str]) -> dict[str, str]:
        if verification_id == "missing":
            raise NotFoundException
        return {"id": verification_id}

    @post("/v1/verifications/{verification_id:str}/check", status_code=200)
    async def check(verification_id: FromPath[str]) -> dict[str, bool]:
        return {"valid": False}

    @get("/boom")
    async def boom() -> None:
        raise RuntimeError

    @get("/metrics", media_type=MediaType.TEXT)
    async def scrape() -> Response[bytes]:
        body, content_type = metrics.render()
        return Response(body, headers={"content-type": content_type})

    return Litestar(route_handlers=[read, check, boom, scrape], plugins=[MetricsPlugin(metrics)])


def _sample(exposition: str, name: str, **labels: str) -> float | None:
    """Return the value of the sample with exactly these labels, or None if absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in exposition.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return None


async def _scrape(client: AsyncTestClient[Litestar]) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text


async def test_requests_are_labelled_with_route_templates() -> None:
    metrics = Metrics()
    async with AsyncTestClient(app=_app(metrics)) as client:
        for verification_id in ("ver_a", "ver_b", "ver_c"):
            assert (await client.get(f"/v1/verifications/{verification_id}")).status_code == 200
        assert (await client.get("/v1/verifications/missing")).status_code == 404
        assert (await client.post("/v1/verifications/ver_a/check")).status_code == 200
        exposition = await _scrape(client)

    template = "/v1/verifications/{verification_id}"
    assert (
        _sample(exposition, "http_requests_total", method="GET", route=template, status="200") == 3
    )
    assert (
        _sample(exposition, "http_requests_total", method="GET", route=template, status="404") == 1
    )
    assert (
        _sample(
            exposition,
            "http_requests_total",
            method="POST",
            route=f"{template}/check",
            status="200",
        )
        == 1
    )
    assert (
        _sample(exposition, "http_request_duration_seconds_count", method="GET", route=template)
        == 4
    )
    assert "ver_a" not in exposition
    assert "ver_b" not in exposition


async def test_handler_errors_are_recorded_with_the_status_sent() -> None:
    metrics = Metrics()
    async with AsyncTestClient(app=_app(metrics), raise_server_exceptions=False) as client:
        assert (await client.get("/boom")).status_code == 500
        exposition = await _scrape(client)
    assert _sample(exposition, "http_requests_total", method="GET", route="/boom", status="500")


async def test_unknown_paths_and_methods_are_bounded_under_unmatched() -> None:
    metrics = Metrics()
    async with AsyncTestClient(app=_app(metrics)) as client:
        for number in range(20):
            assert (await client.get(f"/scan/{number}/wp-login.php")).status_code == 404
        assert (await client.delete("/v1/verifications/ver_a")).status_code == 405
        assert (await client.request("BREW", "/nowhere")).status_code == 404
        exposition = await _scrape(client)

    assert (
        _sample(exposition, "http_requests_total", method="GET", route="unmatched", status="404")
        == 20
    )
    assert _sample(
        exposition, "http_requests_total", method="DELETE", route="unmatched", status="405"
    )
    assert _sample(
        exposition, "http_requests_total", method="OTHER", route="unmatched", status="404"
    )
    assert "wp-login" not in exposition
    assert "/scan" not in exposition
    assert "/nowhere" not in exposition


async def test_otp_counters_are_exposed() -> None:
    metrics = Metrics()
    metrics.otp_sends_total.labels("long_code", "sent").inc()
    metrics.otp_checks_total.labels("approved").inc()
    metrics.otp_webhooks_total.labels("message.finalized", "accepted").inc()
    body, content_type = metrics.render()
    exposition = body.decode()
    assert content_type.startswith("text/plain")
    assert _sample(exposition, "otp_sends_total", sender_type="long_code", outcome="sent") == 1
    assert _sample(exposition, "otp_checks_total", outcome="approved") == 1
    assert (
        _sample(
            exposition, "otp_webhooks_total", event_type="message.finalized", outcome="accepted"
        )
        == 1
    )


async def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    async with AsyncTestClient(app=_app(first)) as client:
        await client.get("/v1/verifications/ver_a")
    async with AsyncTestClient(app=_app(second)) as client:
        exposition = await _scrape(client)
    assert "/v1/verifications" not in exposition


async def test_labels_of_sends_and_receipts_stay_bounded() -> None:
    """A country or error code outside the known sets is ``other``, never itself."""
    metrics = Metrics()
    metrics.count_send("GB", "long_code", "sent")
    metrics.count_send("Narnia", "long_code", "sent")
    metrics.count_send(None, "long_code", "sent")
    metrics.count_receipt("delivery_failed", ("40008",))
    metrics.count_receipt("delivery_failed", ("99999999",))
    metrics.count_receipt("delivered", ())
    metrics.count_receipt("made_up_status", ())
    exposition = metrics.render()[0].decode()

    def sends(country: str) -> float | None:
        return _sample(
            exposition,
            "otp_sends_by_country_total",
            country=country,
            sender_type="long_code",
            outcome="sent",
        )

    assert sends("GB") == 1
    assert sends("other") == 2
    assert "Narnia" not in exposition
    assert _sample(exposition, "otp_sends_total", sender_type="long_code", outcome="sent") == 3

    def receipts(status: str, code: str) -> float | None:
        return _sample(exposition, "otp_receipts_total", status=status, error_code=code)

    assert receipts("delivery_failed", "40008") == 1
    assert receipts("delivery_failed", "other") == 1
    assert receipts("delivered", "none") == 1
    assert receipts("other", "none") == 1
    assert "99999999" not in exposition
    assert "made_up_status" not in exposition


async def test_each_redis_error_reaching_the_handlers_is_counted_once() -> None:
    """A 503 from Redis and a raw redis-py error count once each, under their class."""
    metrics = Metrics()

    @get("/down")
    async def down() -> None:
        cause = redis_errors.TimeoutError("Timeout reading from socket")
        raise StoreUnavailable("the data store is unavailable") from cause

    @get("/broken")
    async def broken() -> None:
        raise redis_errors.ResponseError("WRONGTYPE")

    @get("/other")
    async def other() -> None:
        raise StoreUnavailable("no Redis behind this one")

    app = Litestar(
        route_handlers=[down, broken, other],
        plugins=[MetricsPlugin(metrics)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        assert (await client.get("/down")).status_code == 503
        assert (await client.get("/broken")).status_code == 500
        assert (await client.get("/other")).status_code == 503
    exposition = metrics.render()[0].decode()

    def errors(error: str) -> float | None:
        return _sample(exposition, "otp_redis_errors_total", source="api", error=error)

    assert errors("TimeoutError") == 1
    assert errors("ResponseError") == 1
    assert errors("other") == 1


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("the condition did not come true in time")
        await asyncio.sleep(0.05)


async def _status(tenant: TenantHandle, verification_id: str) -> dict[str, Any]:
    response = await tenant.client.get(f"/v1/verifications/{verification_id}")
    body: dict[str, Any] = response.json()
    return body


class _Scrape:
    """One scrape of the shared service, read sample by sample (missing samples are 0)."""

    def __init__(self, exposition: str) -> None:
        self.exposition = exposition

    def __call__(self, name: str, **labels: str) -> float:
        if not labels:
            found = re.search(rf"^{name} (\S+)$", self.exposition, re.MULTILINE)
            return float(found.group(1)) if found else 0.0
        return _sample(self.exposition, name, **labels) or 0.0


async def _scrape_service(client: httpx.AsyncClient) -> _Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return _Scrape(response.text)


async def test_a_real_flow_moves_the_operator_metrics(
    tenant: TenantHandle, anonymous: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    """Sends, Telnyx latency, receipts, ends, checks and a forged webhook all show up."""
    before = await _scrape_service(anonymous)

    # A verification delivered, checked wrong once, then right.
    number = fresh_number("GB")
    started = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    assert started.status_code == 201, started.text
    good_id = started.json()["id"]

    async def delivered() -> bool:
        return bool((await _status(tenant, good_id))["messages"][0]["status"] == "delivered")

    await _eventually(delivered)
    [code] = await sent_codes(sim, number)
    wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
    checked = await tenant.client.post(f"/v1/verifications/{good_id}/check", json={"code": wrong})
    assert checked.json()["valid"] is False
    checked = await tenant.client.post(f"/v1/verifications/{good_id}/check", json={"code": code})
    assert checked.json()["valid"] is True
    again = await tenant.client.post(f"/v1/verifications/{good_id}/check", json={"code": code})
    assert again.status_code == 409  # ended already: its end is not counted twice

    # A verification whose only sender's SMS is reported undelivered (40008): it fails.
    lost = fresh_number("GB")
    behaviour = {"to": lost, "action": "fail", "error_code": "40008"}
    (await sim.post("/_sim/behaviours", json=behaviour)).raise_for_status()
    started = await tenant.client.post("/v1/verifications", json={"phone_number": lost})
    assert started.status_code == 201, started.text
    lost_id = started.json()["id"]

    async def failed() -> bool:
        return bool((await _status(tenant, lost_id))["status"] == "failed")

    await _eventually(failed)

    # A send Telnyx refuses outright (40305, the last sender): the verification fails at once.
    refused = fresh_number("GB")
    behaviour = {"to": refused, "action": "reject", "error_code": "40305"}
    (await sim.post("/_sim/behaviours", json=behaviour)).raise_for_status()
    started = await tenant.client.post("/v1/verifications", json={"phone_number": refused})
    assert started.status_code == 502, started.text

    # A webhook with a forged signature.
    forged = await anonymous.post(
        "/webhooks/telnyx",
        content=b'{"data": {}}',
        headers={
            "telnyx-timestamp": str(int(time.time())),
            "telnyx-signature-ed25519": "AAAA",
        },
    )
    assert forged.status_code == 401

    after = await _scrape_service(anonymous)

    def delta(name: str, **labels: str) -> float:
        return after(name, **labels) - before(name, **labels)

    alpha = {"sender_type": "alphanumeric_sender_id"}
    gb_sent = {"country": "GB", **alpha, "outcome": "sent"}
    assert delta("otp_sends_by_country_total", **gb_sent) >= 2
    gb_refused = {"country": "GB", **alpha, "outcome": "rejected"}
    assert delta("otp_sends_by_country_total", **gb_refused) >= 1
    assert delta("otp_telnyx_send_duration_seconds_count", **alpha, outcome="sent") >= 2
    assert delta("otp_telnyx_send_duration_seconds_count", **alpha, outcome="rejected") >= 1
    assert delta("otp_receipts_total", status="delivered", error_code="none") >= 1
    assert delta("otp_receipts_total", status="delivery_failed", error_code="40008") >= 1
    assert delta("otp_verifications_ended_total", status="approved") == 1
    assert delta("otp_verifications_ended_total", status="failed") >= 2
    assert delta("otp_checks_total", outcome="wrong_code") == 1
    assert delta("otp_webhook_signature_failures_total") == 1
    for queue in ("event", "expiry", "fallback", "sandbox_receipt"):
        assert f'otp_queue_depth{{queue="{queue}"}}' in after.exposition
        assert f'otp_queue_lag_seconds{{queue="{queue}"}}' in after.exposition


async def test_queue_gauges_show_a_job_left_waiting(
    tenant: TenantHandle, anonymous: httpx.AsyncClient, redis: Redis
) -> None:
    """A due job no worker has taken shows in its queue's depth, its wait in the lag.

    The job is written straight into the tenant's outbox, without the hint that would send
    a worker to it at once, as a job looks when the workers are down or behind.
    """
    work, _, jobs = keys.outbox(tenant.id)
    member = "exp:ver_waiting"
    job = {"kind": "expiry", "verification_id": "ver_waiting", "phone_number": fresh_number()}
    due = time.time_ns() // 1_000_000 - 30_000
    await redis.hset(jobs, member, json.dumps(job))
    await redis.zadd(work, {member: due})
    try:
        waiting = await _scrape_service(anonymous)
    finally:
        await redis.zrem(work, member)
        await redis.hdel(jobs, member)
    assert waiting("otp_queue_depth", queue="expiry") >= 1
    assert waiting("otp_queue_lag_seconds", queue="expiry") >= 30
    cleared = await _scrape_service(anonymous)
    assert cleared("otp_queue_lag_seconds", queue="expiry") < 30


async def test_redis_errors_are_counted_by_class(dead_redis_service: str) -> None:
    """A start that meets a Redis that is down answers 503 and counts a ConnectionError."""
    async with httpx.AsyncClient(base_url=dead_redis_service, timeout=15) as client:
        before = await _scrape_service(client)
        labels = {"source": "api", "error": "ConnectionError"}
        start = await client.post(
            "/v1/verifications",
            json={"phone_number": fresh_number()},
            headers={"Authorization": "Bearer otpk_anything"},
        )
        assert start.status_code == 503
        after = await _scrape_service(client)
    # Each scrape's queue read also meets the dead Redis, and is counted as well.
    assert (
        after("otp_redis_errors_total", **labels) - before("otp_redis_errors_total", **labels) >= 2
    )
