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
    """Register ``lua/<name>.lua`` after the shared prelude ``lua/_lib.lua``.

    redis-py runs it by SHA and reloads it after a flush. The prelude holds what several
    scripts do alike (queueing follow-up work, ending a verification), so each is written once.
    """
    lua = resources.files("otp_service.adapters").joinpath("lua")
    source = lua.joinpath("_lib.lua").read_text() + lua.joinpath(f"{name}.lua").read_text()
    return redis.register_script(source)


def text(value: bytes | str) -> str:
    """A Redis reply as text (clients are opened with ``decode_responses=True``)."""
    return value.decode() if isinstance(value, bytes) else value


_POOL_EXHAUSTED = "No connection available."
"""What redis-py's blocking pool says when no connection came free in time."""


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Turn "Redis cannot answer (now)" into ``StoreUnavailable``; other Redis errors are bugs.

    Besides lost connections and timeouts, that covers a Redis that is loading its data,
    a replica or a cluster that cannot take writes for now, and one out of memory.
    """
    try:
        yield
    except redis_errors.ConnectionError as exc:
        if str(exc) == _POOL_EXHAUSTED:
            raise StoreUnavailable(
                "the service is busy: too many requests are waiting for the data store;"
                " try again shortly"
            ) from exc
        raise StoreUnavailable("the data store is unavailable; try again shortly") from exc
    except (
        redis_errors.TimeoutError,
        redis_errors.BusyLoadingError,
        redis_errors.ReadOnlyError,
        redis_errors.OutOfMemoryError,
        redis_errors.ClusterDownError,
        redis_errors.TryAgainError,
        redis_errors.MasterDownError,
    ) as exc:
        raise StoreUnavailable("the data store is unavailable; try again shortly") from exc
