"""Tenant events: what changed about a verification or a blocked range, posted, signed.

An event is queued by the same Redis script as the change it reports (a transactional
outbox: ``adapters/lua/_lib.lua``), with a snapshot of the verification as the change left
it, so no crash or Redis error can keep the change and lose the event, and the API never
waits for a tenant's endpoint. ``EventDelivery`` posts it from the background worker and
retries with backoff (the first retry within 5 s, then doubling up to 10 min) for 24 h, so
delivery is at least once: receivers de-duplicate by the event ``id``. The body is rendered
from the snapshot, so every attempt sends the same bytes.
"""

from __future__ import annotations

import logging
from typing import Final

import msgspec

from otp_service.adapters.event_poster import EventPoster
from otp_service.adapters.redis_tenants import TenantStore
from otp_service.adapters.redis_verifications import verification_from_fields
from otp_service.adapters.redis_work import EventJob
from otp_service.clock import Clock
from otp_service.core.views import (
    BlockOut,
    VerificationOut,
    block_out,
    rfc3339,
    verification_out,
)
from otp_service.metrics import Metrics

log = logging.getLogger("otp_service.usecases.events")

RETRY_FOR_MS: Final = 24 * 3600 * 1000
FIRST_RETRY_MS: Final = 5_000
LONGEST_WAIT_MS: Final = 600_000


class Event(msgspec.Struct, kw_only=True):
    """The body of a tenant event (API.md, Tenant events)."""

    id: str
    type: str
    created_at: str
    data: VerificationOut | BlockOut


def retry_delay_ms(attempt: int) -> int:
    """Wait before attempt ``attempt + 1``: 5 s after the first failure, doubling to 10 min."""
    return int(min(FIRST_RETRY_MS * 2 ** (attempt - 1), LONGEST_WAIT_MS))


def event_body(job: EventJob) -> bytes:
    """The JSON body of an event, the same at every attempt."""
    data: VerificationOut | BlockOut
    if job.block is not None:
        data = block_out(job.block)
    else:
        data = verification_out(verification_from_fields(job.verification or {}))
    event = Event(id=job.id, type=job.type, created_at=rfc3339(job.first_at), data=data)
    return msgspec.json.encode(event)


class EventDelivery:
    """Makes one delivery attempt of a queued event."""

    def __init__(
        self, *, tenants: TenantStore, poster: EventPoster, clock: Clock, metrics: Metrics
    ) -> None:
        self._tenants = tenants
        self._poster = poster
        self._clock = clock
        self._metrics = metrics

    async def attempt(self, tenant_id: str, job: EventJob) -> tuple[EventJob, int] | None:
        """Post the event; return it for its next attempt and when, ``None`` when done.

        Done means delivered, given up after 24 h, or no longer wanted (the tenant removed
        its URL, or is gone).
        """
        tenant = await self._tenants.get(tenant_id)
        url = tenant.settings.events_webhook_url if tenant else None
        if url is None:
            return None
        now = self._clock.now_ms()
        if await self._poster.post(url, event_body(job), now // 1000):
            self._metrics.otp_events_total.labels(type=job.type, outcome="delivered").inc()
            return None
        attempt = job.attempt + 1
        if now - job.first_at >= RETRY_FOR_MS:
            log.warning("event dropped", extra={"fields": {"event": job.id, "attempts": attempt}})
            self._metrics.otp_events_total.labels(type=job.type, outcome="dropped").inc()
            return None
        self._metrics.otp_events_total.labels(type=job.type, outcome="retried").inc()
        return msgspec.structs.replace(job, attempt=attempt), now + retry_delay_ms(attempt)
