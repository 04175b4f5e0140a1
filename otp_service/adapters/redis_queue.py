"""The durable fallback queue: a Redis stream read by a consumer group, and silence timers.

A fallback must survive a restart between the webhook that asks for it and the re-send,
so it is never an in-memory task: jobs are stream entries, read by a consumer group and
acknowledged only once handled; entries a dead worker had read are claimed again after
they sit idle. Silence timers are a sorted set scored by due time, moved onto the stream by
one script. Both keys share the hash tag ``{q}``, so the script touches one Cluster slot.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Final, Literal

import msgspec
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from otp_service.adapters.redis_scripts import load_script, text, translated

STREAM: Final = "otp:{q}:fallback"
TIMERS: Final = "otp:{q}:silence"
GROUP: Final = "fallback"


class FallbackJob(msgspec.Struct, frozen=True, kw_only=True):
    """Re-send a verification because its latest message failed or stayed silent."""

    tenant_id: str
    verification_id: str
    message_id: str
    reason: Literal["failed", "silent"]


class QueuedJob(msgspec.Struct, frozen=True):
    """A job as read from the stream: its entry id, the job and how often it was handed out."""

    entry_id: str
    job: FallbackJob | None
    deliveries: int


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(FallbackJob)


def consumer_name() -> str:
    """The name of this process in the consumer group."""
    return f"{socket.gethostname()}-{os.getpid()}"


class FallbackQueue:
    """Enqueue, schedule, read and acknowledge fallback jobs."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._move_due = load_script(redis, "move_due")

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if they do not exist yet."""
        async with translated():
            try:
                await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
            except redis_errors.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def enqueue(self, job: FallbackJob) -> None:
        """Queue a job now."""
        async with translated():
            await self._redis.xadd(STREAM, {"job": _encoder.encode(job)})

    async def schedule(self, job: FallbackJob, due_ms: int) -> None:
        """Queue a job at ``due_ms`` (a silence timer)."""
        async with translated():
            await self._redis.zadd(TIMERS, {_encoder.encode(job).decode(): due_ms})

    async def move_due(self, now_ms: int, limit: int = 100) -> int:
        """Queue the timers that are due; return how many."""
        async with translated():
            moved = await self._move_due(keys=[TIMERS, STREAM], args=[now_ms, limit])
        return int(moved)

    async def read(self, consumer: str, *, count: int, block_ms: int) -> list[QueuedJob]:
        """Take new jobs for this consumer, waiting up to ``block_ms`` for one."""
        async with translated():
            reply: Any = await self._redis.xreadgroup(
                GROUP, consumer, {STREAM: ">"}, count=count, block=block_ms
            )
        entries = reply[0][1] if reply else []
        return [self._delivery(entry_id, fields, 1) for entry_id, fields in entries]

    async def reclaim(self, consumer: str, *, min_idle_ms: int, count: int) -> list[QueuedJob]:
        """Take over jobs another consumer read but never acknowledged (it died)."""
        async with translated():
            claimed: Any = await self._redis.xautoclaim(
                STREAM, GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
            )
            entries = claimed[1]
            if not entries:
                return []
            pending: Any = await self._redis.xpending_range(
                STREAM, GROUP, min=entries[0][0], max=entries[-1][0], count=count
            )
        times = {text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        return [
            self._delivery(entry_id, fields, times.get(text(entry_id), 1))
            for entry_id, fields in entries
            if fields is not None
        ]

    async def ack(self, entry_id: str) -> None:
        """Mark a job done and drop it from the stream."""
        async with translated():
            await self._redis.xack(STREAM, GROUP, entry_id)
            await self._redis.xdel(STREAM, entry_id)

    @staticmethod
    def _delivery(entry_id: bytes | str, fields: dict[str, Any], deliveries: int) -> QueuedJob:
        """Decode a stream entry; ``job`` is ``None`` for an entry that is not a job."""
        try:
            job: FallbackJob | None = _decoder.decode(fields["job"])
        except (KeyError, msgspec.DecodeError):
            job = None
        return QueuedJob(text(entry_id), job, deliveries)
