"""The fallback worker: re-sends a verification through its next sender, from a durable queue.

Jobs come from delivery receipts that report a failure and from silence timers (no receipt
within the tenant's ``delivery_timeout_seconds``). A job is acknowledged only once handled,
so a restart between the webhook and the re-send loses nothing: the next worker reads the
job, or claims it from the stream's pending list once it has sat idle. Each fallback
carries a new code (hashes only are stored, so the first code cannot be sent again) and
every earlier code keeps working. A job for a message that is no longer the latest, or a
verification no longer pending, does nothing, which makes duplicate jobs harmless. Only a
reported failure can end a verification as ``failed``: silence cannot, since some carriers
never send receipts and the SMS may have arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Final

from otp_service.adapters.redis_queue import FallbackJob, FallbackQueue, QueuedJob, consumer_name
from otp_service.adapters.redis_tenants import TenantStore
from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.clock import Clock
from otp_service.core.codes import generate_code
from otp_service.core.model import VerificationStatus
from otp_service.core.senders import chain_for
from otp_service.errors import OtpError, StoreUnavailable
from otp_service.hashing_pool import HashingPool
from otp_service.usecases.delivery import Delivery

log = logging.getLogger("otp_service.usecases.fallback")

MAX_DELIVERIES: Final = 5
"""A job handed out this many times without success is dropped (and logged)."""

_BATCH: Final = 10
_RECLAIM_EVERY_SECONDS: Final = 5.0


class FallbackWorker:
    """Consumes the fallback queue until cancelled."""

    def __init__(
        self,
        *,
        queue: FallbackQueue,
        store: VerificationStore,
        tenants: TenantStore,
        delivery: Delivery,
        hashing: HashingPool,
        clock: Clock,
        rng: random.Random,
        reclaim_idle_ms: int,
        poll_ms: int = 250,
    ) -> None:
        self._queue = queue
        self._store = store
        self._tenants = tenants
        self._delivery = delivery
        self._hashing = hashing
        self._clock = clock
        self._rng = rng
        self._reclaim_idle_ms = reclaim_idle_ms
        self._poll_ms = poll_ms
        self._consumer = consumer_name()

    async def run(self, stop: asyncio.Event) -> None:
        """Move due timers, take jobs (new and abandoned ones) and handle them, until ``stop``.

        Stopping is a flag, not only a cancellation: a library that swallows a
        ``CancelledError`` in the middle of a Redis call must not keep the loop alive.
        """
        loop = asyncio.get_running_loop()
        next_reclaim = 0.0
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    await self._queue.ensure_group()
                    ready = True
                await self._queue.move_due(self._clock.now_ms())
                jobs: list[QueuedJob] = []
                if loop.time() >= next_reclaim:
                    jobs += await self._queue.reclaim(
                        self._consumer, min_idle_ms=self._reclaim_idle_ms, count=_BATCH
                    )
                    next_reclaim = loop.time() + min(
                        _RECLAIM_EVERY_SECONDS, self._reclaim_idle_ms / 1000
                    )
                jobs += await self._queue.read(self._consumer, count=_BATCH, block_ms=self._poll_ms)
                for queued in jobs:
                    await self._take(queued)
            except StoreUnavailable:
                log.warning("fallback worker: Redis unavailable; retrying in 1 s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _take(self, queued: QueuedJob) -> None:
        if queued.job is None or queued.deliveries > MAX_DELIVERIES:
            log.error("fallback job %s dropped: unreadable or failed too often", queued.entry_id)
            await self._queue.ack(queued.entry_id)
            return
        try:
            await self.handle(queued.job)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("fallback job %s failed; it will be retried", queued.entry_id)
            return
        await self._queue.ack(queued.entry_id)

    async def handle(self, job: FallbackJob) -> None:
        """Re-send the job's verification through the sender after the one that failed."""
        tenant = await self._tenants.get(job.tenant_id)
        if tenant is None:
            return
        verification = await self._store.get(job.tenant_id, job.verification_id)
        if verification is None or verification.status is not VerificationStatus.PENDING:
            return
        silent = job.reason == "silent"
        chain = chain_for(tenant.settings, verification.country)
        latest = verification.messages[-1] if verification.messages else None
        if silent and (latest is None or latest.position + 1 >= len(chain)):
            return  # silence with no sender left: the SMS may well have arrived
        code = generate_code(self._rng, verification.code_length)
        code_hash = await self._hashing.hash(verification.id, code)
        position = await self._store.fallback_claim(
            verification,
            message_id=job.message_id,
            reason=job.reason,
            code_hash=code_hash,
            now_ms=self._clock.now_ms(),
        )
        if position is None:
            return
        log.info(
            "fallback verification=%s after message=%s (%s)",
            verification.id,
            job.message_id,
            job.reason,
        )
        try:
            await self._delivery.send(
                tenant,
                verification,
                code,
                first_position=position + 1,
                fail_when_exhausted=not silent,
            )
        except OtpError as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            log.info("fallback verification=%s ended: %s", verification.id, exc.code)
