"""The background worker: takes due jobs from tenants' outboxes and runs them.

It finds tenants with due work through the hint shards (``adapters/redis_work.py``), visits
each in a task of its own (so one tenant's slow endpoint delays nobody else), leases the
tenant's due jobs and runs each: posting an event, recording an expiry, sending a fallback,
reporting a sandbox number's receipt.
A job that raises is logged with its traceback and tried again later; a job that cannot be
read is logged and dropped; Redis errors make the loop back off and go on. Nothing a job or
Redis does ends the loop, and ``stalled`` (behind ``/health/ready``) and the
``otp_worker_last_progress_timestamp_seconds`` gauge tell when it stops making progress.
While a job runs its lease is renewed, so a live worker keeps it and a dead one's is taken
over once the lease runs out; a worker that starts looks at every hinted tenant once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

from otp_service.adapters.redis_keys import HINT_SHARDS
from otp_service.adapters.redis_work import (
    IDLE_REVISIT_MS,
    EventJob,
    ExpiryJob,
    FallbackJob,
    Job,
    LeasedJob,
    SandboxReceiptJob,
    WorkQueue,
)
from otp_service.clock import Clock
from otp_service.errors import StoreUnavailable
from otp_service.metrics import Metrics
from otp_service.usecases.events import EventDelivery
from otp_service.usecases.expiries import Expiries
from otp_service.usecases.fallback import Fallbacks
from otp_service.usecases.sandbox import SandboxCarrier

log = logging.getLogger("otp_service.usecases.worker")

BATCH: Final = 20
"""Jobs taken from one outbox at a time (a visit takes batches until none is due)."""
TENANTS_PER_SHARD: Final = 50
"""Tenants taken from one hint shard per poll."""
FAILED_RETRY_MS: Final = 30_000
"""A job that raised is tried again this much later."""
STALL_SECONDS: Final = 30.0
"""No successful poll for this long: the worker is reported as stalled."""


def _kind(job: Job | None) -> str:
    match job:
        case EventJob():
            return "event"
        case ExpiryJob():
            return "expiry"
        case FallbackJob():
            return "fallback"
        case SandboxReceiptJob():
            return "sandbox_receipt"
        case _:
            return "unreadable"


class Worker:
    """Runs tenants' due jobs until stopped."""

    def __init__(
        self,
        *,
        work: WorkQueue,
        events: EventDelivery,
        expiries: Expiries,
        fallbacks: Fallbacks,
        sandbox: SandboxCarrier,
        clock: Clock,
        metrics: Metrics,
        lease_ms: int,
        poll_seconds: float = 0.2,
    ) -> None:
        self._work = work
        self._events = events
        self._expiries = expiries
        self._fallbacks = fallbacks
        self._sandbox = sandbox
        self._clock = clock
        self._metrics = metrics
        self._lease_ms = lease_ms
        self._poll_seconds = poll_seconds
        self._visits: dict[str, int] = {}
        """Tenants being visited, and the score their hint was last leased at."""
        self._held: dict[str, set[str]] = {}
        """Jobs in hand by tenant, whose leases the heartbeat renews."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._progress_at = time.monotonic()

    def stalled(self) -> bool:
        """Whether the worker has not looked for work successfully for ``STALL_SECONDS``."""
        return time.monotonic() - self._progress_at > STALL_SECONDS

    async def run(self, stop: asyncio.Event) -> None:
        """Poll for due tenants and visit them, until ``stop`` is set, then finish the visits.

        Stopping is a flag, not only a cancellation: a library that swallows a
        ``CancelledError`` in the middle of a Redis call must not keep the loop alive. Jobs
        cut short by a cancellation keep their leases and are taken again when they run out.
        """
        heartbeat = asyncio.create_task(self._heartbeat(stop), name="worker-heartbeat")
        awake = False
        try:
            while not stop.is_set():
                pause = self._poll_seconds
                try:
                    if not awake:
                        await self._work.wake_all(self._clock.now_ms())
                        awake = True
                    await self._poll()
                    self._progress_at = time.monotonic()
                    self._metrics.otp_worker_last_progress.set_to_current_time()
                except StoreUnavailable as exc:
                    self._metrics.count_redis_error("worker", exc)
                    log.warning("worker: Redis unavailable; retrying in 1 s")
                    pause = 1.0
                except Exception as exc:
                    self._count_if_redis(exc)
                    log.exception("worker: looking for work failed; retrying in 1 s")
                    pause = 1.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
            if self._tasks:
                # Let the jobs in hand finish (a fallback cut mid-send may be sent twice);
                # whoever stops the worker bounds this wait by cancelling it.
                await asyncio.wait(set(self._tasks))
        finally:
            heartbeat.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(heartbeat, *self._tasks, return_exceptions=True)

    async def _poll(self) -> None:
        now = self._clock.now_ms()
        shards = await asyncio.gather(
            *(
                self._work.due_tenants(shard, now, self._lease_ms, TENANTS_PER_SHARD)
                for shard in range(HINT_SHARDS)
            )
        )
        leased_at = now + self._lease_ms
        for tenant_id in (tenant for shard in shards for tenant in shard):
            visiting = tenant_id in self._visits
            self._visits[tenant_id] = leased_at
            if not visiting:
                task = asyncio.create_task(self._visit(tenant_id), name=f"visit-{tenant_id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _visit(self, tenant_id: str) -> None:
        """Run the tenant's due jobs, then point its hint at what is due next.

        A poll that leases the hint again meanwhile (a writer hinted new work) makes the
        visit go round once more, with that lease.
        """
        try:
            while True:
                leased_at = self._visits[tenant_id]
                next_due = await self._run_due(tenant_id)
                now = self._clock.now_ms()
                look_at = now + IDLE_REVISIT_MS
                if 0 <= next_due < look_at:
                    look_at = next_due
                await self._work.settle(tenant_id, leased_at, look_at)
                if self._visits[tenant_id] == leased_at:
                    return
        except StoreUnavailable as exc:
            self._metrics.count_redis_error("worker", exc)
            log.warning("worker: Redis unavailable while visiting a tenant; it is looked at again")
        except Exception as exc:
            self._count_if_redis(exc)
            log.exception(
                "worker: visiting a tenant failed", extra={"fields": {"tenant": tenant_id}}
            )
        finally:
            del self._visits[tenant_id]

    async def _run_due(self, tenant_id: str) -> int:
        """Run batches of due jobs until none is left; return the outbox's next due time."""
        while True:
            next_due, jobs = await self._work.lease(
                tenant_id, self._clock.now_ms(), self._lease_ms, BATCH
            )
            if not jobs:
                return next_due
            held = self._held.setdefault(tenant_id, set())
            held.update(job.member for job in jobs)
            try:
                await asyncio.gather(*(self._run(job) for job in jobs))
            finally:
                held.difference_update(job.member for job in jobs)
                if not held:
                    del self._held[tenant_id]

    async def _run(self, leased: LeasedJob) -> None:
        """Run one job and finish it (done, or kept for its next attempt)."""
        kind = _kind(leased.job)
        try:
            again = await self._handle(leased)
            now = self._clock.now_ms()
            if again is None:
                await self._work.done(leased, now)
            else:
                await self._work.retry(leased, again[0], again[1], now)
        except StoreUnavailable as exc:
            log.warning("worker: Redis unavailable during a job", extra={"fields": {"kind": kind}})
            self._metrics.count_redis_error("worker", exc)
            self._metrics.otp_jobs_total.labels(kind=kind, outcome="failed").inc()
            return
        except Exception as exc:
            self._count_if_redis(exc)
            fields = {
                "kind": kind,
                "job": leased.member,
                "tenant": leased.tenant_id,
                "retry_in_s": FAILED_RETRY_MS // 1000,
            }
            log.exception("worker: job failed", extra={"fields": fields})
            self._metrics.otp_jobs_total.labels(kind=kind, outcome="failed").inc()
            await self._put_back(leased)
            return
        outcome = "done" if again is None else "retried"
        self._metrics.otp_jobs_total.labels(kind=kind, outcome=outcome).inc()

    def _count_if_redis(self, exc: Exception) -> None:
        """Count an unexpected error in ``otp_redis_errors_total`` when Redis raised it."""
        self._metrics.count_if_redis_error("worker", exc)

    async def _handle(self, leased: LeasedJob) -> tuple[Job, int] | None:
        """Do the job; return it and when to do it again, or ``None`` when it is done."""
        tenant_id, job = leased.tenant_id, leased.job
        match job:
            case EventJob():
                return await self._events.attempt(tenant_id, job)
            case ExpiryJob():
                due = await self._expiries.handle(tenant_id, job)
                return None if due is None else (job, due)
            case FallbackJob():
                await self._fallbacks.handle(tenant_id, job)
                return None
            case SandboxReceiptJob():
                return await self._sandbox.report(job)
            case _:
                unreadable = {"job": leased.member, "tenant": tenant_id}
                log.error("worker: unreadable job dropped", extra={"fields": unreadable})
                return None

    async def _put_back(self, leased: LeasedJob) -> None:
        """Keep a job that raised for a later attempt (its lease would hand it out sooner)."""
        if leased.job is None:
            return
        now = self._clock.now_ms()
        with contextlib.suppress(StoreUnavailable):
            await self._work.retry(leased, leased.job, now + FAILED_RETRY_MS, now)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Renew the leases of jobs in hand, three times per lease."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._lease_ms / 3000)
            until = self._clock.now_ms() + self._lease_ms
            for tenant_id, members in list(self._held.items()):
                try:
                    await self._work.renew(tenant_id, list(members), until)
                except StoreUnavailable:
                    log.warning("worker: Redis unavailable; leases not renewed")
