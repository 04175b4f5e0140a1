"""Operations endpoints: liveness, readiness, metrics and Telnyx's webhooks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.params import HeaderParameter
from litestar.status_codes import HTTP_200_OK
from redis import exceptions as redis_errors

from otp_service.adapters.telnyx_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
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
    """200 when Redis answers and the worker (if any) makes progress; else 503.

    Redis must answer within a second; a background worker of this process that has not
    looked for work for 30 s counts as down too (``service_unavailable`` either way).
    """
    try:
        async with asyncio.timeout(1.0):
            await services.redis.ping()
    except (TimeoutError, redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise StoreUnavailable("Redis does not answer") from exc
    if services.worker is not None and services.worker.stalled():
        raise StoreUnavailable("the background worker is not making progress")
    return "ok"


@get("/metrics", tags=["operations"], summary="Prometheus metrics", media_type=MediaType.TEXT)
async def metrics(services: NamedDependency[Services]) -> Response[bytes]:
    """Prometheus text exposition (format 0.0.4) of this process's counters and histograms.

    The queue gauges are read from Redis now; if Redis does not answer they keep their
    last values, so the scrape still succeeds (the Redis error is counted).
    """
    now_ms = services.clock.now_ms()
    try:
        backlog = await services.work.backlog(now_ms)
    except StoreUnavailable as exc:
        services.metrics.count_redis_error("api", exc)
    else:
        for queue, entry in backlog.items():
            oldest = entry.oldest_due_ms
            lag = 0.0 if oldest is None else (now_ms - oldest) / 1000
            services.metrics.set_queue(queue, entry.depth, lag)
    body, content_type = services.metrics.render()
    return Response(body, headers={"content-type": content_type})


@dataclass
class _TelnyxWebhookOperation(Operation):
    """Documents the body the handler reads raw (the signature covers its exact bytes)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description='A Telnyx messaging webhook: `{"data": {"id", "event_type", '
            '"payload"}, ...}`. Any correctly signed JSON is acknowledged; what is not an '
            "event the service handles is ignored. A signed body that is not JSON is 400.",
            content={"application/json": OpenAPIMediaType(schema=Schema())},
        )


@post(
    "/webhooks/telnyx",
    tags=["webhooks"],
    summary="Telnyx messaging webhooks",
    status_code=HTTP_200_OK,
    media_type=MediaType.TEXT,
    responses=problem_responses(400, 401, 413),
    operation_class=_TelnyxWebhookOperation,
)
async def telnyx_webhook(
    request: Request[Any, Any, Any],
    services: NamedDependency[Services],
    timestamp: Annotated[
        str | None,
        HeaderParameter(
            name=TIMESTAMP_HEADER,
            required=False,
            description="Unix seconds; more than 300 s from now is 401 `invalid_signature`",
        ),
    ] = None,
    signature: Annotated[
        str | None,
        HeaderParameter(
            name=SIGNATURE_HEADER,
            required=False,
            description="Base64 Ed25519 signature of `<telnyx-timestamp>|<raw body>` by "
            "TELNYX_PUBLIC_KEY's key; missing or wrong is 401 `invalid_signature`",
        ),
    ] = None,
) -> str:
    """Take a signed Telnyx event; 200 for every correctly signed one, duplicates included.

    The body is read as JSON whatever its ``Content-Type``: the signature, not the header,
    vouches for it, and refusing a signed event over a header would lose a receipt.
    """
    body = await request.body()
    await services.webhooks.handle(timestamp=timestamp, signature=signature, body=body)
    return "ok"
