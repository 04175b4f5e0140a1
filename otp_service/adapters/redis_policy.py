"""Read the ``maxmemory-policy`` of the Redis the service is about to use.

``CONFIG GET`` is the direct way, but managed Redis services often disable or rename
``CONFIG``; ``INFO memory`` reports the same policy (``maxmemory_policy``) and is allowed
there. When neither answers, the policy is unknown (``None``) and the caller decides.
"""

from __future__ import annotations

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from otp_service.adapters.redis_scripts import text, translated


async def maxmemory_policy(redis: Redis) -> str | None:
    """The server's eviction policy, or ``None`` when it will not say.

    Raises:
        StoreUnavailable: Redis cannot be reached.
    """
    async with translated():
        try:
            found = await redis.config_get("maxmemory-policy")
        except redis_errors.ResponseError:  # CONFIG disabled or renamed
            found = {}
        policy = found.get("maxmemory-policy")
        if policy is not None:
            return text(policy)
        try:
            memory = await redis.info("memory")
        except redis_errors.ResponseError:
            return None
    reported = memory.get("maxmemory_policy")
    return None if reported is None else str(reported)
