"""Blocks in Redis: ranges the fraud guard condemned and countries whose budget is spent.

The start script refuses starts while a block is in force (``lua/_lib.lua``); this adapter
writes a range's block once the detector has condemned it (with its ``fraud.blocked``
event, in the same script), lists the tenant's blocks and lifts one.
"""

from __future__ import annotations

from typing import Final

import msgspec
from redis.asyncio import Redis

from otp_service.adapters import redis_keys as keys
from otp_service.adapters.redis_scripts import load_script, text, translated
from otp_service.adapters.redis_work import WorkQueue
from otp_service.core.fraud import Block, FraudGuardMode

_decoder: Final = msgspec.json.Decoder(Block)
_encoder: Final = msgspec.json.Encoder()


class BlockStore:
    """Write, list and lift a tenant's blocks."""

    def __init__(self, redis: Redis, work: WorkQueue) -> None:
        self._redis = redis
        self._work = work
        self._block = load_script(redis, "fraud_block")
        self._lift = load_script(redis, "block_lift")

    async def block_range(
        self,
        tenant_id: str,
        *,
        prefix: str,
        block_id: str,
        mode: FraudGuardMode,
        reason: str,
        durations_ms: list[int],
        now_ms: int,
        event_id: str,
        wider: list[str],
    ) -> Block | None:
        """Block a range and queue its event; ``None`` when a block of it is in force.

        The range's starts leave the counts of the ``wider`` prefixes around it.
        """
        async with translated():
            reply = await self._block(
                keys=[keys.tenant(tenant_id), *keys.outbox(tenant_id)],
                args=[
                    prefix,
                    block_id,
                    mode.value,
                    reason,
                    now_ms,
                    _encoder.encode(durations_ms),
                    event_id,
                    _encoder.encode(wider),
                ],
            )
        hint = int(reply[0])
        if hint >= 0:
            await self._work.hint(tenant_id, hint, now_ms)
        if text(reply[1]) != "blocked":
            return None
        return _decoder.decode(text(reply[2]))

    async def in_force(self, tenant_id: str, now_ms: int) -> list[Block]:
        """The tenant's blocks that have not ended, oldest first."""
        async with translated():
            raw = await self._redis.hvals(keys.blocks(tenant_id))
        found = [_decoder.decode(text(item)) for item in raw]
        return sorted(
            (block for block in found if block.expires_at > now_ms),
            key=lambda block: (block.created_at, block.id),
        )

    async def lift(self, tenant_id: str, block_id: str, now_ms: int) -> Block | None:
        """Lift a block in force; ``None`` when there is none with this id."""
        async with translated():
            reply = await self._lift(keys=[keys.tenant(tenant_id)], args=[block_id, now_ms])
        if text(reply[0]) != "lifted":
            return None
        return _decoder.decode(text(reply[1]))
