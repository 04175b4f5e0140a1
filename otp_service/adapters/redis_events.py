"""Tenant events waiting to be delivered, and the verifications' expiry timers, in Redis.

An event is a record (the signed body is made at each attempt, the JSON body is fixed) and
an entry in a schedule scored by its next attempt. Workers lease due entries with one
script, so two workers never post the same attempt, and one that dies mid-attempt leaves
the event to be taken again when the lease ends: delivery is at least once and survives
restarts. Expiry timers use the same schedule shape. All keys share the hash tag ``{ev}``.
"""

from __future__ import annotations

from typing import Final

import msgspec
from redis.asyncio import Redis

from otp_service.adapters.redis_scripts import load_script, text, translated

RECORDS: Final = "otp:{ev}:records"
SCHEDULE: Final = "otp:{ev}:due"
EXPIRIES: Final = "otp:{ev}:expiries"


class EventRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An event for a tenant: its body (fixed) and how delivery has gone so far."""

    id: str
    tenant_id: str
    type: str
    body: str
    attempt: int
    first_at: int


class Expiry(msgspec.Struct, frozen=True):
    """A verification whose expiry is due."""

    tenant_id: str
    verification_id: str
    phone_number: str

    def member(self) -> str:
        """The timer's member in the schedule."""
        return f"{self.tenant_id} {self.verification_id} {self.phone_number}"


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(EventRecord)


class EventOutbox:
    """Queue, lease, retry and finish tenant events; schedule and lease expiries."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._lease = load_script(redis, "lease_due")

    async def add(self, record: EventRecord, due_ms: int) -> None:
        """Queue an event for its first attempt at ``due_ms``."""
        await self._put(record, due_ms)

    async def retry(self, record: EventRecord, due_ms: int) -> None:
        """Keep an event for another attempt at ``due_ms``."""
        await self._put(record, due_ms)

    async def _put(self, record: EventRecord, due_ms: int) -> None:
        async with translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(RECORDS, record.id, _encoder.encode(record))
            pipe.zadd(SCHEDULE, {record.id: due_ms})
            await pipe.execute()

    async def lease(self, now_ms: int, lease_ms: int, limit: int) -> list[EventRecord]:
        """Take the events due now, leased to this worker for ``lease_ms``."""
        async with translated():
            ids = await self._lease(keys=[SCHEDULE], args=[now_ms, lease_ms, limit])
            if not ids:
                return []
            raw = await self._redis.hmget(RECORDS, [text(i) for i in ids])
        return [_decoder.decode(value) for value in raw if value is not None]

    async def done(self, event_id: str) -> None:
        """Forget a delivered (or abandoned) event."""
        async with translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(SCHEDULE, event_id)
            pipe.hdel(RECORDS, event_id)
            await pipe.execute()

    async def schedule_expiry(self, expiry: Expiry, at_ms: int) -> None:
        """Have the worker record the verification's expiry at ``at_ms``."""
        async with translated():
            await self._redis.zadd(EXPIRIES, {expiry.member(): at_ms})

    async def lease_expiries(self, now_ms: int, lease_ms: int, limit: int) -> list[Expiry]:
        """Take the expiries due now, leased to this worker."""
        async with translated():
            members = await self._lease(keys=[EXPIRIES], args=[now_ms, lease_ms, limit])
        return [Expiry(*text(member).split(" ", 2)) for member in members]

    async def expiry_done(self, expiry: Expiry) -> None:
        """Drop a handled expiry timer."""
        async with translated():
            await self._redis.zrem(EXPIRIES, expiry.member())
