"""The hourly conversion counters of a tenant, read for ``GET /v1/stats``.

The scripts that change verifications write the counters (``count_stat`` in
``lua/_lib.lua``); this side only reads. A report reads up to 960 hashes (40 days), all in
the tenant's slot, in one pipeline: one round trip. It need not be a transaction: each hour
is read whole by one HGETALL, and nothing relates one hour's counters to another's.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from otp_service.adapters import redis_keys as keys
from otp_service.adapters.redis_scripts import text, translated


class StatsStore:
    """Reads a tenant's hourly counter hashes (``redis_keys.stats``)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def hours(self, tenant_id: str, hour_starts: Sequence[int]) -> list[dict[str, str]]:
        """The counters of each hour (field ``<country>|<sender_type>|<metric>`` → count)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for hour in hour_starts:
                pipe.hgetall(keys.stats(tenant_id, hour))
            replies: list[dict[str, str]] = await pipe.execute()
        return [{text(name): text(count) for name, count in reply.items()} for reply in replies]
