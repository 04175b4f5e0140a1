"""Operations: health, readiness, metrics, the OpenAPI document, and Redis being down."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from otp_service.__main__ import openapi_document
from otp_service.app import create_app
from tests.conftest import Service, Simulator, TenantHandle, fresh_number, service_settings
from tests.servers import serve

OPENAPI_FILE = Path(__file__).parent.parent / "openapi" / "openapi.json"


@pytest.fixture(scope="module")
def dead_redis_service(simulator: Simulator) -> Iterator[str]:
    """The service pointed at a Redis port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = service_settings(
        f"redis://127.0.0.1:{port}/0", simulator, OTP_REDIS_TIMEOUT_SECONDS="0.5"
    )
    with serve(create_app(settings)) as url:
        yield url


async def test_liveness_and_readiness_answer_200_when_redis_is_up(
    anonymous: httpx.AsyncClient,
) -> None:
    """/health/live and /health/ready both answer 200 with Redis reachable."""
    assert (await anonymous.get("/health/live")).status_code == 200
    assert (await anonymous.get("/health/ready")).status_code == 200


async def test_without_redis_the_service_is_live_but_not_ready(dead_redis_service: str) -> None:
    """With Redis down, live is 200, ready is 503, and API calls are 503, never 500."""
    async with httpx.AsyncClient(base_url=dead_redis_service, timeout=15) as client:
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["code"] == "service_unavailable"
        start = await client.post(
            "/v1/verifications",
            json={"phone_number": fresh_number()},
            headers={"Authorization": "Bearer otpk_anything"},
        )
        assert start.status_code == 503
        assert start.headers["content-type"].startswith("application/problem+json")
        assert start.json()["code"] == "service_unavailable"


async def test_metrics_count_requests_sends_and_checks(
    tenant: TenantHandle, anonymous: httpx.AsyncClient
) -> None:
    """/metrics exposes request, send and check counters in Prometheus text format."""
    started = await tenant.client.post("/v1/verifications", json={"phone_number": fresh_number()})
    await tenant.client.post(f"/v1/verifications/{started.json()['id']}/check", json={"code": "0"})
    response = await anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_requests_total{method="POST",route="/v1/verifications",status="201"}' in text
    assert 'otp_sends_total{outcome="sent",sender_type="alphanumeric_sender_id"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert 'route="/v1/verifications/{verification_id}/check",status="422"' in text


async def test_the_committed_openapi_document_is_the_one_served(
    anonymous: httpx.AsyncClient,
) -> None:
    """openapi/openapi.json equals /schema/openapi.json (regenerate: otp-service openapi)."""
    served = (await anonymous.get("/schema/openapi.json")).json()
    assert json.loads(OPENAPI_FILE.read_text()) == served
    assert json.loads(openapi_document()) == served


async def test_the_openapi_document_documents_every_error_response(
    anonymous: httpx.AsyncClient,
) -> None:
    """Each tenant route documents its problem responses and the bearer security schemes."""
    document = (await anonymous.get("/schema/openapi.json")).json()
    start = document["paths"]["/v1/verifications"]["post"]
    for status in ("200", "201", "401", "403", "409", "422", "429", "502", "503"):
        assert status in start["responses"], status
    problem = start["responses"]["429"]["content"]
    assert "application/problem+json" in problem
    assert set(document["components"]["securitySchemes"]) == {"ApiKey", "AdminToken"}
    check = document["paths"]["/v1/verifications/{verification_id}/check"]["post"]
    assert {"404", "409", "422"} <= set(check["responses"])


async def test_unknown_routes_and_methods_are_problem_documents(service: Service) -> None:
    """An unknown path is 404 and a wrong method 405, both as problem+json."""
    async with httpx.AsyncClient(base_url=service.url) as client:
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        wrong = await client.delete("/health/live")
        assert wrong.status_code == 405
        assert wrong.json()["code"] == "method_not_allowed"
