"""Lua scripts shipped as package data, and the Redis error translation all adapters share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from otp_service.errors import StoreUnavailable


def load_script(redis: Redis, name: str) -> AsyncScript:
    """Register ``lua/<name>.lua``; redis-py runs it by SHA and reloads it after a flush."""
    source = resources.files("otp_service.adapters").joinpath("lua", f"{name}.lua").read_text()
    return redis.register_script(source)


def text(value: bytes | str) -> str:
    """A Redis reply as text (clients are opened with ``decode_responses=True``)."""
    return value.decode() if isinstance(value, bytes) else value


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Turn "Redis cannot answer" into ``StoreUnavailable``; other Redis errors are bugs."""
    try:
        yield
    except (
        redis_errors.ConnectionError,
        redis_errors.TimeoutError,
        redis_errors.BusyLoadingError,
    ) as exc:
        raise StoreUnavailable("the data store is unavailable; try again shortly") from exc
