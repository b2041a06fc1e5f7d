"""Time spans in epoch milliseconds, spelled once: bar sizes, UTC days, windows, cooldowns, annualisation."""

from __future__ import annotations

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
YEAR_MS = 365.25 * DAY_MS  # a float: used to annualise, never to step a clock
WEEK_OFFSET_MS = 4 * DAY_MS  # the epoch was a Thursday; weekly bars open on Mondays
UNIT_MS: dict[str, int] = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS, "w": WEEK_MS}  # timeframe suffixes
