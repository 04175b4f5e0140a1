"""Operations endpoints: liveness, readiness, metrics and Telnyx's webhooks."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK
from redis import exceptions as redis_errors

from otp_service.errors import StoreUnavailable
from otp_service.problems import problem_responses
from otp_service.runtime import Services


@get("/health/live", tags=["operations"], summary="Liveness", media_type=MediaType.TEXT)
async def live() -> str:
    """200 while the process runs."""
    return "ok"


@get(
    "/health/ready",
    tags=["operations"],
    summary="Readiness",
    media_type=MediaType.TEXT,
    responses=problem_responses(503),
)
async def ready(services: NamedDependency[Services]) -> str:
    """200 when Redis answers within a second, else 503 ``service_unavailable``."""
    try:
        async with asyncio.timeout(1.0):
            await services.redis.ping()
    except (TimeoutError, redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise StoreUnavailable("Redis does not answer") from exc
    return "ok"


@get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=True)
async def metrics(services: NamedDependency[Services]) -> Response[bytes]:
    """Prometheus text exposition of this process's counters and histograms."""
    body, content_type = services.metrics.render()
    return Response(body, headers={"content-type": content_type})


@post(
    "/webhooks/telnyx",
    tags=["webhooks"],
    summary="Telnyx messaging webhooks",
    status_code=HTTP_200_OK,
    media_type=MediaType.TEXT,
    responses=problem_responses(400, 401, 413),
)
async def telnyx_webhook(
    request: Request[Any, Any, Any], services: NamedDependency[Services]
) -> str:
    """Take a signed Telnyx event; 200 for every correctly signed one, duplicates included."""
    body = await request.body()
    await services.webhooks.handle(
        timestamp=request.headers.get("telnyx-timestamp"),
        signature=request.headers.get("telnyx-signature-ed25519"),
        body=body,
    )
    return "ok"
