"""Tenants' outboxes of follow-up work, and the hints that lead workers to them.

Every change that needs work later (a tenant event to post, an expiry to record, a fallback
to send, a sandbox number's receipt to report) writes the job in the same Lua script as the
change, into the tenant's outbox (``redis_keys.outbox``): the change and its follow-up are
stored together or not at all. A job is leased to one worker at a time; a worker that dies
leaves its lease to run out, and the job is taken again (``work_lease.lua``), so work
survives crashes and restarts.

Workers find outboxes with due work through hints: ``HINT_SHARDS`` sorted sets of tenant
ids scored by when to look. A writer lowers its tenant's hint after its script; a worker
leases a due hint (moving it a little into the future, so other workers skip the tenant
meanwhile), works through the outbox, then points the hint at the outbox's next due job,
or at the idle re-visit (``IDLE_REVISIT_MS``) when nothing is due. The idle re-visit and
the wake-up of every hint when a worker starts are what recover a job whose hint was lost
with a crash between the script and the hint. No key is shared by all tenants, and each
script touches one slot, so this runs on Redis Cluster as it does on one server.
"""

from __future__ import annotations

from typing import Any, Final, Literal, cast

import msgspec
from redis.asyncio import Redis

from otp_service.adapters import redis_keys as keys
from otp_service.adapters.redis_scripts import load_script, text, translated
from otp_service.core.fraud import Block
from otp_service.core.sandbox import ScriptedReceipt

IDLE_REVISIT_MS: Final = 60_000
"""A tenant with nothing due is looked at again after this long (see the module docstring)."""


class EventJob(msgspec.Struct, frozen=True, kw_only=True, tag="event", tag_field="kind"):
    """Post a tenant event about a verification, as it was when it happened, or a block."""

    id: str
    type: str
    attempt: int
    first_at: int
    verification: dict[str, str] | None = None
    block: Block | None = None


class ExpiryJob(msgspec.Struct, frozen=True, kw_only=True, tag="expiry", tag_field="kind"):
    """Record a verification's expiry when it falls due."""

    verification_id: str
    phone_number: str


class FallbackJob(msgspec.Struct, frozen=True, kw_only=True, tag="fallback", tag_field="kind"):
    """Re-send a verification because its latest message failed or stayed silent."""

    verification_id: str
    message_id: str
    reason: Literal["failed", "silent"]


class SandboxReceiptJob(
    msgspec.Struct, frozen=True, kw_only=True, tag="sandbox_receipt", tag_field="kind"
):
    """Report a sandbox message's scripted receipts as each falls due (``core/sandbox.py``)."""

    message_id: str
    receipts: list[ScriptedReceipt]


Job = EventJob | ExpiryJob | FallbackJob | SandboxReceiptJob


class LeasedJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job as taken from an outbox; ``job`` is ``None`` when its JSON cannot be read."""

    tenant_id: str
    member: str
    raw: str
    job: Job | None


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Job)


def _decode(raw: str) -> Job | None:
    try:
        job: Job = _decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    return job


BACKLOG_SCAN: Final = 10_000
"""Most members of one outbox set the backlog gauges read (``work_backlog.lua``)."""

_QUEUE_OF_PREFIX: Final = {
    "ev": "event",
    "exp": "expiry",
    "fb": "fallback",
    "sbx": "sandbox_receipt",
}
"""Job kind of each outbox member prefix (the names ``otp_jobs_total`` uses)."""


class Backlog(msgspec.Struct, kw_only=True):
    """One background queue across tenants: jobs due or in hand, and the oldest due time."""

    depth: int = 0
    oldest_due_ms: int | None = None


class WorkQueue:
    """Lease, finish and renew tenants' jobs; lease, settle and wake their hints."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._lease = load_script(redis, "work_lease")
        self._finish = load_script(redis, "work_finish")
        self._lease_hints = load_script(redis, "lease_due")
        self._settle = load_script(redis, "hint_settle")
        self._wake = load_script(redis, "hint_wake")
        self._backlog = load_script(redis, "work_backlog")

    async def backlog(self, now_ms: int) -> dict[str, Backlog]:
        """Each queue's backlog over every tenant's outbox, for the metrics scrape.

        Jobs live in per-tenant outboxes (no key is shared by all tenants), so this reads the
        tenant index once and runs one read-only script per tenant, pipelined: one round
        trip for the lot, off the hot path.
        """
        found = {queue: Backlog() for queue in _QUEUE_OF_PREFIX.values()}
        async with translated():
            members = cast("list[bytes]", await self._redis.zrange(keys.tenant_index(), 0, -1))
            pipe = self._redis.pipeline(transaction=False)
            for member in members:
                work, leases, _ = keys.outbox(text(member).split(":", 1)[1])
                await self._backlog(keys=[work, leases], args=[now_ms, BACKLOG_SCAN], client=pipe)
            replies = await pipe.execute() if members else []
        for reply in replies:
            for at in range(0, len(reply), 3):
                queue = _QUEUE_OF_PREFIX.get(text(reply[at]))
                if queue is None:
                    continue
                entry = found[queue]
                entry.depth += int(reply[at + 1])
                oldest = int(reply[at + 2])
                if oldest >= 0 and (entry.oldest_due_ms is None or oldest < entry.oldest_due_ms):
                    entry.oldest_due_ms = oldest
        return found

    async def hint(self, tenant_id: str, due_ms: int, now_ms: int) -> None:
        """Tell the workers that the tenant has work due at ``due_ms``.

        The hint is lowered to ``now`` at the latest, below the future score of a visit in
        progress, so that visit's settle sees it moved and leaves it for another look.
        """
        async with translated():
            await self._redis.zadd(
                keys.hints(keys.hint_shard(tenant_id)), {tenant_id: min(due_ms, now_ms)}, lt=True
            )

    async def due_tenants(self, shard: int, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        """Take the tenants of a shard whose hint is due; each is leased until now + lease."""
        async with translated():
            taken = await self._lease_hints(
                keys=[keys.hints(shard)], args=[now_ms, lease_ms, limit]
            )
        return [text(tenant_id) for tenant_id in taken]

    async def settle(self, tenant_id: str, leased_at: int, next_ms: int) -> None:
        """After a visit leased at ``leased_at``, look at the tenant again at ``next_ms``."""
        async with translated():
            await self._settle(
                keys=[keys.hints(keys.hint_shard(tenant_id))], args=[tenant_id, leased_at, next_ms]
            )

    async def wake_all(self, now_ms: int) -> int:
        """Make every hinted tenant due now; return how many tenants are hinted."""
        total = 0
        async with translated():
            for shard in range(keys.HINT_SHARDS):
                total += int(await self._wake(keys=[keys.hints(shard)], args=[now_ms]))
        return total

    async def lease(
        self, tenant_id: str, now_ms: int, lease_ms: int, limit: int
    ) -> tuple[int, list[LeasedJob]]:
        """Take the tenant's due jobs; return the outbox's next due time (-1: empty) and them."""
        async with translated():
            reply: list[Any] = await self._lease(
                keys=keys.outbox(tenant_id), args=[now_ms, lease_ms, limit]
            )
        pairs = reply[1:]
        jobs = [
            LeasedJob(
                tenant_id=tenant_id, member=text(member), raw=text(raw), job=_decode(text(raw))
            )
            for member, raw in zip(pairs[::2], pairs[1::2], strict=True)
        ]
        return int(reply[0]), jobs

    async def done(self, leased: LeasedJob, now_ms: int) -> None:
        """Forget a finished job (or run it again at once if it was rewritten meanwhile)."""
        async with translated():
            await self._finish(
                keys=keys.outbox(leased.tenant_id), args=[leased.member, leased.raw, "done", now_ms]
            )

    async def retry(self, leased: LeasedJob, job: Job, due_ms: int, now_ms: int) -> None:
        """Keep a job for another attempt at ``due_ms``."""
        async with translated():
            await self._finish(
                keys=keys.outbox(leased.tenant_id),
                args=[leased.member, leased.raw, "retry", now_ms, _encoder.encode(job), due_ms],
            )

    async def renew(self, tenant_id: str, members: list[str], until_ms: int) -> None:
        """Extend the leases of jobs still in hand (only those still leased)."""
        if not members:
            return
        _, leases, _ = keys.outbox(tenant_id)
        async with translated():
            await self._redis.zadd(leases, dict.fromkeys(members, until_ms), xx=True)
