"""Conversion statistics (``GET /v1/stats``): the report window and the rows of a report.

The counters are kept by the Lua scripts as the events happen (``count_stat`` in
``adapters/lua/_lib.lua``), one hash per tenant and hour, so a report reads at most
``MAX_WINDOW_MS / HOUR_MS`` hashes and never scans verifications. That fixes the resolution
at one hour: a report covers the hours whose start lies in ``[from, to)``, and each event
counts in the hour it happened in (a code started at 10:59 and approved at 11:01 is
``started`` in one hour and ``approved`` in the next). Over a short window the conversion
rate can therefore exceed 1; over a day it is what operators expect.

Each counter field is ``<country>|<sender_type>|<metric>``:

- ``started``, ``approved``, ``blocked``: starts, those approved, and starts that abuse
  protection refused, counted under the route a start takes (the first sender of the
  destination's chain), so that ``approved / started`` is a route's conversion;
- ``sent``: messages Telnyx took; ``delivered``: messages whose receipt says delivered;
  ``failed_sends``: messages that ended undelivered (refused, or their send call failed, or
  a receipt said sending failed, delivery failed or expired); these under the sender that
  sent (fallbacks included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from otp_service.errors import InvalidInput

HOUR_MS: Final = 3600 * 1000
"""The resolution of the counters (``HOUR_MS`` in ``lua/_lib.lua``)."""

DEFAULT_WINDOW_MS: Final = 24 * HOUR_MS
"""The window of a report that names no ``from``: the 24 h before ``to``."""

MAX_WINDOW_MS: Final = 40 * 24 * HOUR_MS
"""The widest window: counters are kept this long (``STATS_KEEP_MS`` of ``redis_keys`` and
``lua/_lib.lua``; the core reads no adapter), so a wider one could only add hours that are gone."""

METRICS: Final = ("started", "sent", "delivered", "approved", "failed_sends", "blocked")

_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_UNENCODED_PLUS: Final = re.compile(r" ([0-9]{2}:[0-9]{2})$", re.ASCII)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(9999, 12, 30, tzinfo=UTC)


class Window(msgspec.Struct, frozen=True):
    """The report's bounds, epoch milliseconds, ``start < end``."""

    start: int
    end: int

    def hours(self) -> list[int]:
        """The starts of the hours the report covers: those in ``[start, end)``."""
        first = -(-self.start // HOUR_MS) * HOUR_MS
        return list(range(first, self.end, HOUR_MS))


class StatsRow(msgspec.Struct, frozen=True, kw_only=True):
    """The counts of one destination country and sender type over the window."""

    country: str
    sender_type: str
    started: int = 0
    sent: int = 0
    delivered: int = 0
    approved: int = 0
    failed_sends: int = 0
    blocked: int = 0

    @property
    def conversion_rate(self) -> float | None:
        """``approved / started``, to 4 places; ``None`` with no start (no rate, not 0 %)."""
        return round(self.approved / self.started, 4) if self.started else None


def _read_time(value: str) -> int | str:
    """Epoch milliseconds of an RFC 3339 time, or what is wrong with it."""
    # A '+' sent unencoded in a query string arrives as a space: "…T10:00:00 01:00".
    value = _UNENCODED_PLUS.sub(r"+\1", value)
    if _RFC3339.fullmatch(value) is None:
        return "must be an RFC 3339 time with an offset, e.g. 2026-11-28T10:00:00Z"
    try:
        moment = datetime.fromisoformat(value.upper())
        if not _EPOCH <= moment <= _LATEST:
            return "must be between 1970 and 9999"
    except (ValueError, OverflowError) as exc:
        return f"is not a valid time: {exc}"
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _invalid(errors: list[dict[str, str]]) -> InvalidInput:
    return InvalidInput(f"{errors[0]['field']}: {errors[0]['message']}", errors)


def window(start: str | None, end: str | None, now_ms: int) -> Window:
    """The window of ``from``/``to`` as given; ``to`` defaults to now, ``from`` to 24 h before.

    Raises:
        InvalidInput: a time that is not RFC 3339 (each bad one has its entry in
            ``errors``), ``from`` not before ``to``, or a window wider than ``MAX_WINDOW_MS``.
    """
    times: dict[str, int] = {}
    errors: list[dict[str, str]] = []
    for field, value in (("from", start), ("to", end)):
        read = None if value is None else _read_time(value)
        if isinstance(read, str):
            errors.append({"field": field, "message": read})
        elif read is not None:
            times[field] = read
    if errors:
        raise _invalid(errors)
    end_ms = times.get("to", now_ms)
    start_ms = times.get("from", end_ms - DEFAULT_WINDOW_MS)
    if start_ms >= end_ms:
        raise _invalid([{"field": "from", "message": "must be before to"}])
    if end_ms - start_ms > MAX_WINDOW_MS:
        raise _invalid([{"field": "from", "message": "must be at most 40 days before to"}])
    return Window(start_ms, end_ms)


def rows(hours: Iterable[Mapping[str, str]]) -> list[StatsRow]:
    """Sum the hourly counter hashes into one row per country and sender type, in that order."""
    totals: dict[tuple[str, str], dict[str, int]] = {}
    for counters in hours:
        for name, count in counters.items():
            country, sender_type, metric = name.rsplit("|", 2)
            row = totals.setdefault((country, sender_type), dict.fromkeys(METRICS, 0))
            # A metric this version does not know (written by a newer one) is not reported.
            if metric in row:
                row[metric] += int(count)
    return [
        StatsRow(
            country=country,
            sender_type=sender_type,
            **{metric: counts[metric] for metric in METRICS},
        )
        for (country, sender_type), counts in sorted(totals.items())
    ]
