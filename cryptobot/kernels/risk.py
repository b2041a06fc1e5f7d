"""Risk decisions as numba functions (seed spec §7, bugs fixed): fractional Kelly and size rounding.

The path-dependent gates (drawdown halt, loss pause, daily limit, price-jump anomaly) live in the execution
step, which owns the state they read; the arithmetic is here so it is written once.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def kelly_fraction(returns: np.ndarray, n: int, min_trades: int, safety: float, cap: float, fallback: float) -> float:
    """Fraction of equity to risk: Kelly f = (b·p − (1 − p)) / b from the last `n` trade returns.

    p = win rate, b = mean win / mean loss. Needs `min_trades` trades with at least one win and one loss,
    else the fixed fallback; the result is scaled by the safety factor and capped.
    """
    if n < min_trades:
        return min(fallback, cap)
    wins = 0
    win_sum = 0.0
    loss_sum = 0.0
    for i in range(n):
        r = returns[i]
        if r > 0.0:
            wins += 1
            win_sum += r
        elif r < 0.0:
            loss_sum -= r
    losses = n - wins
    if wins == 0 or loss_sum <= 0.0 or losses == 0:
        return min(fallback, cap)
    p = wins / n
    b = (win_sum / wins) / (loss_sum / losses)
    f = (b * p - (1.0 - p)) / b
    if f <= 0.0:
        return 0.0
    return min(f * safety, cap)


@njit(cache=True)
def round_amount(amount: float, step: float) -> float:
    """Round down to the exchange's amount step (a trade below the minimum is skipped, never rounded up)."""
    if not (amount > 0.0):
        return 0.0
    units = np.floor(amount / step + 1e-9)
    return units * step
