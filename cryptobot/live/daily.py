"""The figures of one UTC day for the live bot's daily summary, kept bar by bar.

The summary goes out at the first bar of the next day, so it must not read the kernel's day counters: by
then they already belong to the new day. The tracker keeps the previous day's own figures instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utc_day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d")


class DayTracker:
    """Equity at the end of each day, its change over the day, the position held and the bars processed."""

    def __init__(self) -> None:
        self.day: str | None = None
        self._open = self._close = float("nan")
        self._position = 0.0
        self._bars = 0

    def update(self, ts_ms: int, equity: float, position: float) -> tuple[str, dict[str, Any]] | None:
        """Record a processed bar (its open time, equity and position after it); returns the finished day's
        summary when this bar starts a new day. The first day seen counts from its first bar's equity."""
        day = utc_day(ts_ms)
        finished = None
        if day != self.day:
            if self.day is not None:
                finished = (self.day, {"equity": self._close, "pnl_day": self._close - self._open,
                                       "position": self._position, "bars": self._bars})
            self._open = self._close if self.day is not None else equity
            self.day, self._bars = day, 0
        self._close, self._position = equity, position
        self._bars += 1
        return finished
