"""Recipients who opted out, per Telnyx's scope.

The scope is the messaging profile (or, for a tenant without one, the tenant itself), so
every tenant sending through a profile honours an opt-out.

A scope keeps two keys under one hash tag ``{o:<scope>}``: a hash of number to opt-out
(the lookup a start makes) and a sorted set of the numbers, all with score 0 so Redis
orders them by their bytes. The set lets an operator page through a scope with
``ZRANGEBYLEX`` from the last number seen, which works on Redis Cluster, where ``SCAN``
would have to visit every node. Both keys change together in one script, so the listing
and the lookups never disagree.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
from redis.asyncio import Redis

from otp_service.adapters.redis_scripts import load_script, text, translated

OptOutSource = Literal["keyword", "carrier", "import"]
"""How an opt-out became known: an inbound STOP, Telnyx's 40300, or Telnyx's own list."""


class OptOut(msgspec.Struct, frozen=True, kw_only=True):
    """When and how a number opted out."""

    since: int
    source: OptOutSource


_decoder: Final = msgspec.json.Decoder(OptOut)


def profile_scope(messaging_profile_id: str) -> str:
    """The scope of a messaging profile: where Telnyx keeps the block rules of its numbers."""
    return f"profile:{messaging_profile_id}"


def _keys(scope: str) -> list[str]:
    tag = f"otp:{{o:{scope}}}"
    return [f"{tag}:records", f"{tag}:index"]


class OptOutStore:
    """Opt-outs by (scope, number), listable per scope in number order."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._record = load_script(redis, "optout_record")
        self._remove = load_script(redis, "optout_remove")
        self._list = load_script(redis, "optout_list")

    async def record(self, scope: str, e164: str, opt_out: OptOut) -> bool:
        """Record an opt-out; the first one recorded keeps its time.

        Returns whether it is new (``False``: the number had opted out already).
        """
        async with translated():
            added = await self._record(keys=_keys(scope), args=[e164, msgspec.json.encode(opt_out)])
        return bool(added)

    async def remove(self, scope: str, e164: str) -> bool:
        """Lift the number's opt-out in this scope; return whether there was one."""
        async with translated():
            removed = await self._remove(keys=_keys(scope), args=[e164])
        return bool(removed)

    async def get(self, scope: str, e164: str) -> OptOut | None:
        """Return the number's opt-out in this scope, if any."""
        async with translated():
            raw = await self._redis.hget(_keys(scope)[0], e164)
        return None if raw is None else _decoder.decode(raw)

    async def list(
        self, scope: str, after: str | None, limit: int
    ) -> tuple[list[tuple[str, OptOut]], str | None]:
        """Return up to ``limit`` opt-outs of the scope, by number, after the number ``after``.

        The second value is the number to pass as ``after`` for the next page, ``None`` on
        the last page. Numbers recorded or lifted between two pages show up or drop out
        where they sort; no number is listed twice.
        """
        start = "-" if after is None else f"({after}"
        async with translated():
            reply = await self._list(keys=_keys(scope), args=[start, limit + 1])
        numbers = [text(number) for number in reply[0::2]]
        records = [_decoder.decode(raw) for raw in reply[1::2]]
        page = list(zip(numbers, records, strict=True))[:limit]
        more = len(numbers) > limit
        return page, page[-1][0] if more else None
