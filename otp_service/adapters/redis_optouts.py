"""Recipients who opted out, per Telnyx's scope.

The scope is the messaging profile (or, for a tenant without one, the tenant itself), so
every tenant sending through a profile honours an opt-out.
"""

from __future__ import annotations

import msgspec
from redis.asyncio import Redis

from otp_service.adapters.redis_scripts import translated


class OptOut(msgspec.Struct, frozen=True, kw_only=True):
    """When and how a number opted out."""

    since: int
    source: str


def _key(scope: str, e164: str) -> str:
    return f"otp:{{o:{scope}}}:{e164}"


class OptOutStore:
    """Opt-outs by (scope, number)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._decoder = msgspec.json.Decoder(OptOut)

    async def record(self, scope: str, e164: str, opt_out: OptOut) -> None:
        """Record an opt-out; the first one recorded keeps its time."""
        async with translated():
            await self._redis.set(_key(scope, e164), msgspec.json.encode(opt_out), nx=True)

    async def get(self, scope: str, e164: str) -> OptOut | None:
        """Return the number's opt-out in this scope, if any."""
        async with translated():
            raw = await self._redis.get(_key(scope, e164))
        return None if raw is None else self._decoder.decode(raw)
