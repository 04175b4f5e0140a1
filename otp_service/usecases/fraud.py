"""The fraud guard's actions: block a range the detector condemned; list and lift blocks.

The detector (``core/fraud.py``) judges the counters the start script returned, so judging
costs no round trip; only a start that condemns a range pays one more, to write the block.
Starts racing with that write may still be sent; every start after it is refused (in
``block`` mode). Each block is logged, counted in ``/metrics`` and sent to the tenant as a
``fraud.blocked`` event (queued by the script that writes it).
"""

from __future__ import annotations

import logging
import random

from otp_service.adapters.redis_blocks import BlockStore
from otp_service.clock import Clock
from otp_service.core import fraud
from otp_service.core.fraud import Block, FraudGuardMode, PrefixStats
from otp_service.core.ids import new_id
from otp_service.core.model import Tenant
from otp_service.errors import NotFound
from otp_service.metrics import Metrics

log = logging.getLogger("otp_service.usecases.fraud")


class FraudGuard:
    """Turns the detector's verdicts into blocks; the admin API's view of them."""

    def __init__(
        self, *, blocks: BlockStore, clock: Clock, rng: random.Random, metrics: Metrics
    ) -> None:
        self._blocks = blocks
        self._clock = clock
        self._rng = rng
        self._metrics = metrics

    async def judge(self, tenant: Tenant, stats: list[PrefixStats]) -> Block | None:
        """Block the range the detector condemns after a start, if any; return the block."""
        mode = tenant.settings.fraud_guard
        if mode is FraudGuardMode.OFF or not stats:
            return None
        verdict = fraud.assess(stats, tenant.settings.fraud)
        if verdict is None:
            return None
        block = await self._blocks.block_range(
            tenant.id,
            prefix=verdict.prefix,
            block_id=new_id("blk", self._rng),
            mode=mode,
            reason=verdict.reason,
            durations_ms=fraud.block_durations_ms(tenant.settings.fraud),
            now_ms=self._clock.now_ms(),
            event_id=new_id("evt", self._rng),
            wider=[stat.prefix for stat in stats if len(stat.prefix) < len(verdict.prefix)],
        )
        if block is not None:
            self._metrics.otp_fraud_blocks_total.labels(mode=block.mode.value).inc()
            fields = {
                "tenant": tenant.id,
                "range": block.value,
                "mode": block.mode.value,
                "until": block.expires_at,
                "reason": block.reason,
            }
            log.warning("block", extra={"fields": fields})
        return block

    async def in_force(self, tenant_id: str) -> list[Block]:
        """The tenant's blocks in force."""
        return await self._blocks.in_force(tenant_id, self._clock.now_ms())

    async def lift(self, tenant_id: str, block_id: str) -> Block:
        """Lift a block: the next start it refused goes through.

        Raises:
            NotFound: no block in force with this id.
        """
        block = await self._blocks.lift(tenant_id, block_id, self._clock.now_ms())
        if block is None:
            raise NotFound("no such block", "block_not_found")
        fields = {
            "tenant": tenant_id,
            "block": block.id,
            "limit": block.limit,
            "range": block.value,
        }
        log.warning("block lifted", extra={"fields": fields})
        return block
