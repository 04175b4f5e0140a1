"""The composition of the running service: clients opened in the lifespan, use cases on top.

Building the Litestar app connects to nothing (so the OpenAPI document can be exported
without Redis); ``open_services`` is entered by the app's lifespan and closes everything
it opened, in reverse order.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import httpx
from nacl.signing import SigningKey
from redis.asyncio import Redis

from otp_service.adapters.event_poster import EventPoster
from otp_service.adapters.redis_events import EventOutbox
from otp_service.adapters.redis_optouts import OptOutStore
from otp_service.adapters.redis_queue import FallbackQueue
from otp_service.adapters.redis_tenants import TenantStore
from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.adapters.telnyx import TelnyxClient
from otp_service.clock import Clock, SystemClock
from otp_service.core.derive import derive_key
from otp_service.core.hashing import Argon2Parameters, CodeHasher
from otp_service.hashing_pool import HashingPool
from otp_service.metrics import Metrics
from otp_service.settings import Settings
from otp_service.usecases.delivery import Delivery
from otp_service.usecases.events import EventWorker, TenantEvents
from otp_service.usecases.fallback import FallbackWorker
from otp_service.usecases.idempotency import Idempotency
from otp_service.usecases.receipts import TelnyxWebhooks
from otp_service.usecases.tenants import Tenants
from otp_service.usecases.verifications import Verifications

WORKER_STOP_SECONDS: Final = 3.0
"""How long shutdown waits for the workers to finish the job in hand before cancelling."""


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the controllers use."""

    redis: Redis
    optouts: OptOutStore
    verifications: Verifications
    tenants: Tenants
    webhooks: TelnyxWebhooks
    idempotency: Idempotency
    metrics: Metrics
    admin_token: bytes
    event_signing_key: SigningKey


def event_signing_key(settings: Settings) -> SigningKey:
    """The Ed25519 key that signs tenant events: ``OTP_SIGNING_KEY``, else derived."""
    seed = settings.signing_key_seed or derive_key(settings.secret_key.reveal(), "event-signing")
    return SigningKey(seed)


def tenants_over(redis: Redis, settings: Settings, *, clock: Clock, rng: random.Random) -> Tenants:
    """The tenant use cases over a Redis client (the API's, or the CLI's own)."""
    return Tenants(
        store=TenantStore(redis),
        key_pepper=derive_key(settings.secret_key.reveal(), "api-key-digest"),
        clock=clock,
        rng=rng,
        allow_private_webhooks=settings.allow_private_webhooks,
    )


@asynccontextmanager
async def tenants_client(settings: Settings) -> AsyncIterator[Tenants]:
    """The tenant use cases on a Redis connection of their own, for the CLI and ``dev``."""
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        yield tenants_over(redis, settings, clock=SystemClock(), rng=secrets.SystemRandom())
    finally:
        await redis.aclose()


@asynccontextmanager
async def open_services(
    settings: Settings, *, clock: Clock, rng: random.Random, metrics: Metrics
) -> AsyncIterator[Services]:
    """Open Redis, the Telnyx HTTP client and the argon2 pool; close them on exit."""
    secret = settings.secret_key.reveal()
    redis = Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )
    http = httpx.AsyncClient(
        base_url=settings.telnyx_base_url,
        timeout=httpx.Timeout(settings.telnyx_timeout_seconds, connect=1.5),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
    events_http = httpx.AsyncClient(
        timeout=httpx.Timeout(5.0, connect=2.0),
        follow_redirects=False,
        trust_env=False,
    )
    hashing = HashingPool(
        CodeHasher(
            derive_key(secret, "code-pepper"),
            Argon2Parameters(
                time_cost=settings.argon2_time_cost,
                memory_kib=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            ),
        ),
        settings.hash_threads,
    )
    store = VerificationStore(redis)
    optouts = OptOutStore(redis)
    queue = FallbackQueue(redis)
    outbox = EventOutbox(redis)
    events = TenantEvents(outbox=outbox, clock=clock, rng=rng)
    signing_key = event_signing_key(settings)
    delivery = Delivery(
        store=store,
        optouts=optouts,
        telnyx=TelnyxClient(http, api_key=settings.telnyx_api_key.reveal()),
        queue=queue,
        events=events,
        clock=clock,
        metrics=metrics,
        webhook_url=f"{settings.public_url}/webhooks/telnyx" if settings.public_url else None,
    )
    workers: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    if settings.run_workers:
        fallback = FallbackWorker(
            queue=queue,
            store=store,
            tenants=TenantStore(redis),
            delivery=delivery,
            hashing=hashing,
            clock=clock,
            rng=rng,
            reclaim_idle_ms=int(settings.queue_reclaim_idle_seconds * 1000),
        )
        event_worker = EventWorker(
            outbox=outbox,
            store=store,
            tenants=TenantStore(redis),
            events=events,
            poster=EventPoster(
                events_http, key=signing_key, allow_private=settings.allow_private_webhooks
            ),
            clock=clock,
            metrics=metrics,
        )
        workers = [
            asyncio.create_task(fallback.run(stop), name="fallback-worker"),
            asyncio.create_task(event_worker.run(stop), name="event-worker"),
        ]
    try:
        yield Services(
            redis=redis,
            optouts=optouts,
            verifications=Verifications(
                store=store,
                optouts=optouts,
                delivery=delivery,
                events=events,
                hashing=hashing,
                clock=clock,
                rng=rng,
                metrics=metrics,
            ),
            tenants=tenants_over(redis, settings, clock=clock, rng=rng),
            webhooks=TelnyxWebhooks(
                store=store,
                queue=queue,
                optouts=optouts,
                tenants=TenantStore(redis),
                events=events,
                public_key=settings.telnyx_public_key,
                clock=clock,
                metrics=metrics,
            ),
            idempotency=Idempotency(store),
            metrics=metrics,
            admin_token=settings.admin_token.reveal().encode(),
            event_signing_key=signing_key,
        )
    finally:
        stop.set()
        if workers:
            _, late = await asyncio.wait(workers, timeout=WORKER_STOP_SECONDS)
            for worker in late:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        hashing.close()
        await events_http.aclose()
        await http.aclose()
        await redis.aclose()
