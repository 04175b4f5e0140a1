"""The Redis client of a process: a bounded pool that waits under load, and a narrow retry.

A request that finds every connection in use waits for one (up to the Redis timeout)
instead of failing at once: redis-py's default pool raises as soon as its connections are
taken, which turned a burst of 250 concurrent requests into 150 answers of 503 with Redis
healthy. When even the wait runs out, the error says the service is busy
(``redis_scripts.translated``), not that Redis is down.

A command is retried once, and only after a connection error: that is what a pooled
connection left over from before a Redis restart gives, and the new server never saw the
command. A timeout is never retried: the command may be running, and scripts such as
taking a check attempt must not run twice.
"""

from __future__ import annotations

from typing import Final

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

POOL_SIZE: Final = 128
"""Connections per process: more than the argon2 pool can keep busy, far below Redis's limit."""


def open_redis(url: str, *, timeout_seconds: float) -> Redis:
    """A client for ``url`` whose commands and pool waits each take at most ``timeout_seconds``."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=timeout_seconds,
        decode_responses=True,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis_errors.ConnectionError,)),
    )
    return Redis.from_pool(pool)
