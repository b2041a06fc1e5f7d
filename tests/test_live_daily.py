"""The daily summary reports the day that ended, with its own figures (checked by hand)."""

from __future__ import annotations

from cryptobot.live.daily import DayTracker

HOUR = 3_600_000
DAY0 = 1_514_937_600_000  # 2018-01-03T00:00:00Z


def test_each_finished_day_reports_its_close_its_change_and_its_bars() -> None:
    days = DayTracker()
    bars = [  # (open time, equity after the bar, position after it)
        (DAY0 + 22 * HOUR, 1_000_000.0, 0.0),
        (DAY0 + 23 * HOUR, 1_000_500.0, 0.01),
        (DAY0 + 24 * HOUR, 1_001_000.0, 0.01),  # 2018-01-04 starts: 01-03 is reported
        (DAY0 + 25 * HOUR, 999_000.0, 0.0),
        (DAY0 + 72 * HOUR, 998_000.0, 0.0),  # 01-05 had no bar (downtime): 01-04 is reported, then 01-06 begins
    ]
    out = [days.update(*bar) for bar in bars]
    assert out[0] is None and out[1] is None and out[3] is None
    assert out[2] == ("2018-01-03", {"equity": 1_000_500.0, "pnl_day": 500.0, "position": 0.01, "bars": 2})
    # 01-04 opened at 01-03's close (1,000,500) and closed at 999,000: -1,500, not the first bar's change
    assert out[4] == ("2018-01-04", {"equity": 999_000.0, "pnl_day": -1_500.0, "position": 0.0, "bars": 2})
    assert days.day == "2018-01-06"
