"""Tenant events: what changed about a verification, posted to the tenant, signed.

Emitting an event is one Redis write next to the change it reports, so it never delays the
API answer; ``EventWorker`` posts it later and retries with backoff (the first retry within
5 s, then doubling up to 10 min) for 24 h, from Redis, so delivery survives restarts and
is at least once: receivers de-duplicate by the event ``id``. The same worker records
expiries when they fall due, since ``verification.expired`` must fire even when nobody
calls the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Final

import msgspec

from otp_service.adapters.event_poster import EventPoster
from otp_service.adapters.redis_events import EventOutbox, EventRecord, Expiry
from otp_service.adapters.redis_tenants import TenantStore
from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.clock import Clock
from otp_service.core.ids import new_id
from otp_service.core.model import Tenant, Verification
from otp_service.core.views import VerificationOut, rfc3339, verification_out
from otp_service.errors import StoreUnavailable
from otp_service.metrics import Metrics

log = logging.getLogger("otp_service.usecases.events")

RETRY_FOR_MS: Final = 24 * 3600 * 1000
FIRST_RETRY_MS: Final = 5_000
LONGEST_WAIT_MS: Final = 600_000
LEASE_MS: Final = 30_000
"""Longer than one attempt can take (the HTTP timeout), so a lease never runs out mid-post."""

_BATCH: Final = 20


class Event(msgspec.Struct, kw_only=True):
    """The body of a tenant event (API.md, Tenant events)."""

    id: str
    type: str
    created_at: str
    data: VerificationOut


def retry_delay_ms(attempt: int) -> int:
    """Wait before attempt ``attempt + 1``: 5 s after the first failure, doubling to 10 min."""
    return int(min(FIRST_RETRY_MS * 2 ** (attempt - 1), LONGEST_WAIT_MS))


class TenantEvents:
    """Queues events for tenants that set ``events_webhook_url``."""

    def __init__(self, *, outbox: EventOutbox, clock: Clock, rng: random.Random) -> None:
        self._outbox = outbox
        self._clock = clock
        self._rng = rng

    async def emit(self, tenant: Tenant, event_type: str, verification: Verification) -> None:
        """Queue ``event_type`` about ``verification`` (nothing when the tenant has no URL)."""
        if tenant.settings.events_webhook_url is None:
            return
        now = self._clock.now_ms()
        event = Event(
            id=new_id("evt", self._rng),
            type=event_type,
            created_at=rfc3339(now),
            data=verification_out(verification),
        )
        record = EventRecord(
            id=event.id,
            tenant_id=tenant.id,
            type=event_type,
            body=msgspec.json.encode(event).decode(),
            attempt=0,
            first_at=now,
        )
        await self._outbox.add(record, now)

    async def schedule_expiry(self, verification: Verification) -> None:
        """Have the worker record the verification's expiry when it falls due."""
        expiry = Expiry(verification.tenant_id, verification.id, verification.phone_number)
        await self._outbox.schedule_expiry(expiry, verification.expires_at)


class EventWorker:
    """Records due expiries and delivers queued events, until cancelled."""

    def __init__(
        self,
        *,
        outbox: EventOutbox,
        store: VerificationStore,
        tenants: TenantStore,
        events: TenantEvents,
        poster: EventPoster,
        clock: Clock,
        metrics: Metrics,
        poll_seconds: float = 0.2,
    ) -> None:
        self._outbox = outbox
        self._store = store
        self._tenants = tenants
        self._events = events
        self._poster = poster
        self._clock = clock
        self._metrics = metrics
        self._poll_seconds = poll_seconds

    async def run(self, stop: asyncio.Event) -> None:
        """Work through what is due, then wait a moment; until ``stop`` is set."""
        while not stop.is_set():
            pause = self._poll_seconds
            try:
                await self.tick()
            except StoreUnavailable:
                log.warning("event worker: Redis unavailable; retrying in 1 s")
                pause = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    async def tick(self) -> None:
        """Record the expiries due now, then make the event attempts due now."""
        now = self._clock.now_ms()
        for expiry in await self._outbox.lease_expiries(now, LEASE_MS, _BATCH):
            await self._expire(expiry, now)
        records = await self._outbox.lease(now, LEASE_MS, _BATCH)
        await asyncio.gather(*(self._deliver(record) for record in records))

    async def _expire(self, expiry: Expiry, now: int) -> None:
        if await self._store.expire(
            expiry.tenant_id, expiry.verification_id, expiry.phone_number, now
        ):
            tenant = await self._tenants.get(expiry.tenant_id)
            verification = await self._store.get(expiry.tenant_id, expiry.verification_id)
            if tenant is not None and verification is not None:
                await self._events.emit(tenant, "verification.expired", verification)
        await self._outbox.expiry_done(expiry)

    async def _deliver(self, record: EventRecord) -> None:
        tenant = await self._tenants.get(record.tenant_id)
        url = tenant.settings.events_webhook_url if tenant else None
        if url is None:
            await self._outbox.done(record.id)
            return
        now = self._clock.now_ms()
        if await self._poster.post(url, record.body.encode(), now // 1000):
            await self._outbox.done(record.id)
            self._metrics.otp_events_total.labels(type=record.type, outcome="delivered").inc()
            return
        attempt = record.attempt + 1
        if now - record.first_at >= RETRY_FOR_MS:
            log.warning("event %s dropped after %d attempts over 24 h", record.id, attempt)
            await self._outbox.done(record.id)
            self._metrics.otp_events_total.labels(type=record.type, outcome="dropped").inc()
            return
        retry = msgspec.structs.replace(record, attempt=attempt)
        await self._outbox.retry(retry, now + retry_delay_ms(attempt))
        self._metrics.otp_events_total.labels(type=record.type, outcome="retried").inc()
