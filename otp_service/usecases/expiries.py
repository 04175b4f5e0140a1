"""Expiry timers: record a verification's expiry when it falls due, even if nobody asks.

``verification.expired`` must reach the tenant although no API call sees the verification
again, so the start queues a timer job with the verification (``start.lua``); the end of a
verification drops it. The job runs ``expire.lua``, which records the expiry and queues the
event in one step.
"""

from __future__ import annotations

import random
from typing import Final

from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.adapters.redis_work import ExpiryJob
from otp_service.clock import Clock
from otp_service.core.ids import new_id
from otp_service.core.model import VerificationStatus
from otp_service.metrics import Metrics

EARLY_RETRY_MS: Final = 1_000
"""A timer that fires before the verification's expiry (this worker's clock runs behind the
one that started it) is tried again this much later."""


class Expiries:
    """Handles expiry timer jobs."""

    def __init__(
        self, *, store: VerificationStore, clock: Clock, rng: random.Random, metrics: Metrics
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._rng = rng

    async def handle(self, tenant_id: str, job: ExpiryJob) -> int | None:
        """Record the expiry; return when to try again if it is not due yet, else ``None``."""
        now = self._clock.now_ms()
        event_id = new_id("evt", self._rng)
        if await self._store.expire(
            tenant_id, job.verification_id, job.phone_number, now, event_id
        ):
            self._metrics.count_ended(VerificationStatus.EXPIRED)
            return None
        status = await self._store.status(tenant_id, job.verification_id)
        return now + EARLY_RETRY_MS if status is VerificationStatus.PENDING else None
