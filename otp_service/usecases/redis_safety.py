"""Refuse to run on a Redis that may evict tenant data (``core.eviction`` says why).

Checked when the service starts (``serve`` before it listens, and the app's lifespan for any
other way of running it). A policy that cannot be read (``CONFIG`` and ``INFO`` both
refused) or a Redis that is down at start-up only logs a warning: refusing to start then
would turn a managed Redis's restrictions or a Redis restart into an outage of the API,
which answers 503 until Redis is back anyway.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from otp_service.adapters.redis_policy import maxmemory_policy
from otp_service.core.eviction import eviction_problem, masked_url
from otp_service.errors import StoreUnavailable

log = logging.getLogger("otp_service.usecases.redis_safety")


class UnsafeRedis(Exception):
    """The Redis evicts keys when full; the message is the one line the CLI prints."""


async def check_eviction_policy(redis: Redis, url: str) -> None:
    """Raise ``UnsafeRedis`` when the Redis at ``url`` may evict tenant keys.

    Raises:
        UnsafeRedis: its ``maxmemory-policy`` is not ``noeviction``.
    """
    shown = masked_url(url)
    try:
        policy = await maxmemory_policy(redis)
    except StoreUnavailable:
        log.warning("could not check the maxmemory-policy of Redis at %s: it is unreachable", shown)
        return
    if policy is None:
        log.warning(
            "could not read the maxmemory-policy of Redis at %s (CONFIG and INFO refused);"
            " make sure it is noeviction",
            shown,
        )
        return
    problem = eviction_problem(policy)
    if problem is not None:
        raise UnsafeRedis(f"Redis at {shown} has {problem}")
