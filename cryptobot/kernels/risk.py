"""Risk decisions as numba functions (seed spec §7, bugs fixed): fractional Kelly over a time window and
size rounding.

The path-dependent gates (drawdown halt, loss pause, daily limit, price-jump anomaly) live in the execution
step, which owns the state they read; the arithmetic is here so it is written once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def kelly_fraction_at(buf: Any, rets: int, closed: int, n: int, now_ms: float, window_ms: float, min_trades: int,
                      safety: float, cap: float, fallback: float) -> float:
    """Fraction of equity to risk: Kelly f = (b·p − (1 − p)) / b from the recent trade record.

    The record is the first `n` trade returns at buf[rets:] and the bar times they closed on at buf[closed:]
    (`buf` an array or the execution state's raw pointer); only trades with `now_ms − closed_ms < window_ms`
    count, so a record that says "no edge" ages out and the fallback applies again once the window holds
    fewer than `min_trades` trades (the seed's 30-day window: a lock-out lasts at most one window after the
    last trade). p = win rate, b = mean win / mean loss; fewer than `min_trades` trades, or no win or no loss
    among them → the fixed fallback; f ≤ 0 → 0 (no edge); else f × safety, capped.
    """
    count = 0
    wins = 0
    win_sum = 0.0
    loss_sum = 0.0
    for i in range(n):
        if not (now_ms - buf[closed + i] < window_ms):
            continue
        count += 1
        r = buf[rets + i]
        if r > 0.0:
            wins += 1
            win_sum += r
        elif r < 0.0:
            loss_sum -= r
    if count < min_trades:
        return min(fallback, cap)
    losses = count - wins
    if wins == 0 or loss_sum <= 0.0 or losses == 0:
        return min(fallback, cap)
    p = wins / count
    b = (win_sum / wins) / (loss_sum / losses)
    f = (b * p - (1.0 - p)) / b
    if f <= 0.0:
        return 0.0
    return min(f * safety, cap)


@njit(cache=True)
def kelly_fraction(returns: np.ndarray, closed_ms: np.ndarray, n: int, now_ms: float, window_ms: float,
                   min_trades: int, safety: float, cap: float, fallback: float) -> float:
    """`kelly_fraction_at` over a record held in two arrays (returns, bar times they closed on)."""
    record = np.concatenate((returns[:n], closed_ms[:n]))
    return kelly_fraction_at(record, 0, n, n, now_ms, window_ms, min_trades, safety, cap, fallback)


@njit(cache=True)
def round_amount(amount: float, step: float) -> float:
    """Round down to the exchange's amount step (a trade below the minimum is skipped, never rounded up)."""
    if not (amount > 0.0):
        return 0.0
    units = np.floor(amount / step + 1e-9)
    return units * step
