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
from otp_service.adapters.redis_blocks import BlockStore
from otp_service.adapters.redis_client import open_redis
from otp_service.adapters.redis_optouts import OptOutStore
from otp_service.adapters.redis_stats import StatsStore
from otp_service.adapters.redis_tenants import TenantStore
from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.adapters.redis_work import WorkQueue
from otp_service.adapters.telnyx import TelnyxClient
from otp_service.clock import Clock, SystemClock
from otp_service.core.derive import derive_key, secret_id
from otp_service.core.hashing import Argon2Parameters, CodeHasher
from otp_service.hashing_pool import HashingPool
from otp_service.metrics import Metrics
from otp_service.settings import Settings
from otp_service.usecases.delivery import Delivery
from otp_service.usecases.events import EventDelivery
from otp_service.usecases.expiries import Expiries
from otp_service.usecases.fallback import Fallbacks
from otp_service.usecases.fraud import FraudGuard
from otp_service.usecases.idempotency import Idempotency
from otp_service.usecases.receipts import TelnyxWebhooks
from otp_service.usecases.redis_safety import check_eviction_policy
from otp_service.usecases.sandbox import SandboxCarrier
from otp_service.usecases.stats import Stats
from otp_service.usecases.tenants import Tenants
from otp_service.usecases.verifications import Verifications
from otp_service.usecases.worker import Worker

WORKER_STOP_SECONDS: Final = 3.0
"""How long shutdown waits for the workers to finish the job in hand before cancelling."""

TELNYX_LIMITS: Final = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=2.0
)
"""Connections to Telnyx; an idle one is dropped after 2 s.

A send written to a connection that the server is closing for idleness fails with no
answer, and as it may have been taken the service cannot retry it: the start answers 503.
httpx's default expiry (5 s) equals uvicorn's keep-alive, the simulator's, so under load
some sends met that race; 2 s stays clear of it and of the longer timeouts of other servers.
"""


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the controllers use."""

    redis: Redis
    optouts: OptOutStore
    verifications: Verifications
    tenants: Tenants
    webhooks: TelnyxWebhooks
    idempotency: Idempotency
    fraud: FraudGuard
    stats: Stats
    metrics: Metrics
    admin_token: bytes
    event_signing_key: SigningKey
    previous_event_public_key: bytes | None
    """The public key of the event signing key being rotated out, if any."""
    worker: Worker | None
    """The background worker of this process (``None`` with ``OTP_RUN_WORKERS=0``)."""
    work: WorkQueue
    """The tenants' outboxes, read by ``GET /metrics`` for the queue gauges."""
    clock: Clock


def event_signing_key(settings: Settings) -> SigningKey:
    """The Ed25519 key that signs tenant events: ``OTP_SIGNING_KEY``, else derived."""
    seed = settings.signing_key_seed or derive_key(settings.secret_key.reveal(), "event-signing")
    return SigningKey(seed)


def previous_event_public_key(settings: Settings) -> bytes | None:
    """The public key of the former event signing key, while a rotation is under way.

    ``OTP_SIGNING_KEY_PREVIOUS`` if set; otherwise, when the signing key is derived from the
    secret and the secret is being rotated, the key derived from the previous secret.
    ``None`` when there is no rotation or the former key is the current one.
    """
    seed = settings.signing_key_seed_previous
    if seed is None and settings.signing_key_seed is None and settings.secret_key_previous:
        seed = derive_key(settings.secret_key_previous.reveal(), "event-signing")
    if seed is None:
        return None
    public = bytes(SigningKey(seed).verify_key)
    return None if public == bytes(event_signing_key(settings).verify_key) else public


def code_hasher(settings: Settings) -> CodeHasher:
    """The argon2 code hasher: hashes named by the current secret, the previous one accepted."""
    secret = settings.secret_key.reveal()
    previous = settings.secret_key_previous
    return CodeHasher(
        derive_key(secret, "code-pepper"),
        Argon2Parameters(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        ),
        key_id=secret_id(secret),
        previous=None
        if previous is None
        else (secret_id(previous.reveal()), derive_key(previous.reveal(), "code-pepper")),
    )


def tenants_over(redis: Redis, settings: Settings, *, clock: Clock, rng: random.Random) -> Tenants:
    """The tenant use cases over a Redis client (the API's, or the CLI's own)."""
    return Tenants(
        store=TenantStore(redis, WorkQueue(redis)),
        key_pepper=derive_key(settings.secret_key.reveal(), "api-key-digest"),
        previous_key_pepper=None
        if settings.secret_key_previous is None
        else derive_key(settings.secret_key_previous.reveal(), "api-key-digest"),
        clock=clock,
        rng=rng,
        allow_private_webhooks=settings.allow_private_webhooks,
    )


@asynccontextmanager
async def tenants_client(settings: Settings) -> AsyncIterator[Tenants]:
    """The tenant use cases on a Redis connection of their own, for the CLI and ``dev``."""
    redis = open_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    try:
        yield tenants_over(redis, settings, clock=SystemClock(), rng=secrets.SystemRandom())
    finally:
        await redis.aclose()


@dataclass(frozen=True, slots=True)
class UseCases:
    """The use cases over one Redis client, Telnyx client and argon2 pool."""

    work: WorkQueue
    tenant_store: TenantStore
    optouts: OptOutStore
    verifications: Verifications
    webhooks: TelnyxWebhooks
    idempotency: Idempotency
    expiries: Expiries
    fallbacks: Fallbacks
    sandbox: SandboxCarrier
    fraud: FraudGuard
    stats: Stats


def use_cases_over(
    redis: Redis,
    telnyx: TelnyxClient,
    hashing: HashingPool,
    settings: Settings,
    *,
    clock: Clock,
    rng: random.Random,
    metrics: Metrics,
    webhook_url: str | None,
) -> UseCases:
    """Wire the use cases (the service's, or a test's that runs the jobs itself)."""
    work = WorkQueue(redis)
    store = VerificationStore(redis, work)
    tenant_store = TenantStore(redis, work)
    optouts = OptOutStore(redis)
    webhooks = TelnyxWebhooks(
        store=store,
        optouts=optouts,
        public_key=settings.telnyx_public_key,
        clock=clock,
        rng=rng,
        metrics=metrics,
    )
    sandbox = SandboxCarrier(receipts=webhooks, clock=clock, rng=rng)
    delivery = Delivery(
        store=store,
        optouts=optouts,
        telnyx=telnyx,
        sandbox=sandbox,
        clock=clock,
        rng=rng,
        metrics=metrics,
        webhook_url=webhook_url,
    )
    guard = FraudGuard(blocks=BlockStore(redis, work), clock=clock, rng=rng, metrics=metrics)
    return UseCases(
        work=work,
        tenant_store=tenant_store,
        optouts=optouts,
        verifications=Verifications(
            store=store,
            optouts=optouts,
            delivery=delivery,
            hashing=hashing,
            clock=clock,
            rng=rng,
            metrics=metrics,
            guard=guard,
            # A first send is one Telnyx request per sender, each retried once at most.
            first_send_ms=int(4 * settings.telnyx_timeout_seconds * 1000) + 1000,
        ),
        webhooks=webhooks,
        sandbox=sandbox,
        idempotency=Idempotency(store),
        expiries=Expiries(store=store, clock=clock, rng=rng, metrics=metrics),
        fallbacks=Fallbacks(
            store=store,
            tenants=tenant_store,
            delivery=delivery,
            hashing=hashing,
            clock=clock,
            rng=rng,
        ),
        fraud=guard,
        stats=Stats(store=StatsStore(redis), clock=clock),
    )


@asynccontextmanager
async def open_services(
    settings: Settings, *, clock: Clock, rng: random.Random, metrics: Metrics
) -> AsyncIterator[Services]:
    """Open Redis, the Telnyx HTTP client and the argon2 pool; close them on exit.

    Raises:
        UnsafeRedis: Redis may evict tenant keys (checked before anything else starts).
    """
    redis = open_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    try:
        await check_eviction_policy(redis, settings.redis_url)
    except BaseException:
        await redis.aclose()
        raise
    http = httpx.AsyncClient(
        base_url=settings.telnyx_base_url,
        timeout=httpx.Timeout(settings.telnyx_timeout_seconds, connect=1.5),
        limits=TELNYX_LIMITS,
    )
    events_http = httpx.AsyncClient(
        timeout=httpx.Timeout(5.0, connect=2.0),
        follow_redirects=False,
        trust_env=False,
    )
    hashing = HashingPool(code_hasher(settings), settings.hash_threads)
    cases = use_cases_over(
        redis,
        TelnyxClient(http, api_key=settings.telnyx_api_key.reveal()),
        hashing,
        settings,
        clock=clock,
        rng=rng,
        metrics=metrics,
        webhook_url=f"{settings.public_url}/webhooks/telnyx" if settings.public_url else None,
    )
    signing_key = event_signing_key(settings)
    worker: Worker | None = None
    stop = asyncio.Event()
    if settings.run_workers:
        worker = Worker(
            work=cases.work,
            events=EventDelivery(
                tenants=cases.tenant_store,
                poster=EventPoster(
                    events_http, key=signing_key, allow_private=settings.allow_private_webhooks
                ),
                clock=clock,
                metrics=metrics,
            ),
            expiries=cases.expiries,
            fallbacks=cases.fallbacks,
            sandbox=cases.sandbox,
            clock=clock,
            metrics=metrics,
            lease_ms=int(settings.job_lease_seconds * 1000),
        )
    running = asyncio.create_task(worker.run(stop), name="worker") if worker else None
    try:
        yield Services(
            redis=redis,
            optouts=cases.optouts,
            verifications=cases.verifications,
            tenants=tenants_over(redis, settings, clock=clock, rng=rng),
            webhooks=cases.webhooks,
            idempotency=cases.idempotency,
            fraud=cases.fraud,
            stats=cases.stats,
            metrics=metrics,
            admin_token=settings.admin_token.reveal().encode(),
            event_signing_key=signing_key,
            previous_event_public_key=previous_event_public_key(settings),
            worker=worker,
            work=cases.work,
            clock=clock,
        )
    finally:
        stop.set()
        if running:
            _, late = await asyncio.wait([running], timeout=WORKER_STOP_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(running, return_exceptions=True)
        hashing.close()
        await events_http.aclose()
        await http.aclose()
        await redis.aclose()
