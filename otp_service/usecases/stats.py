"""Conversion statistics of a tenant (``GET /v1/stats``), from its hourly counters.

What is counted, and why the resolution is one hour, is in ``core/stats.py``.
"""

from __future__ import annotations

import msgspec

from otp_service.adapters.redis_stats import StatsStore
from otp_service.clock import Clock
from otp_service.core import stats
from otp_service.core.model import Tenant


class Report(msgspec.Struct, frozen=True):
    """The window a report covers and its rows, by country and sender type."""

    window: stats.Window
    rows: list[stats.StatsRow]


class Stats:
    """Reports over the counters the verification scripts keep."""

    def __init__(self, *, store: StatsStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def report(self, tenant: Tenant, start: str | None, end: str | None) -> Report:
        """The tenant's counts over ``[start, end)`` (RFC 3339; default: the last 24 h).

        Raises:
            InvalidInput: a bad time, ``start`` not before ``end``, or more than 40 days.
        """
        window = stats.window(start, end, self._clock.now_ms())
        hours = await self._store.hours(tenant.id, window.hours())
        return Report(window, stats.rows(hours))
