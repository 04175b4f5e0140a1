"""The wall clock, behind a protocol so tests can move time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Tells the time in integer milliseconds since the Unix epoch."""

    def now_ms(self) -> int:
        """Return the current time."""
        ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        """Return the current time from the system."""
        return time.time_ns() // 1_000_000
