"""Request metrics carry route templates, never raw paths, and stay per app."""

from __future__ import annotations

import re

from litestar import Litestar, MediaType, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.testing import AsyncTestClient

from otp_service.metrics import Metrics, MetricsPlugin


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
