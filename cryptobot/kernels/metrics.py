"""Backtest metrics as streaming numba blocks: the one implementation behind `research.stats.equity_metrics`
(stats.json, the general sweep) and the sweep's fused evaluator, which runs them bar by bar beside the
execution core with their state in locals. Definitions: `research.stats`; output layout `research.stats.METRICS`.

They live with the kernels so numba's cache (keyed on every kernel source, `cryptobot/__init__.py`) never
keeps a compiled sweep that inlined an older version of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def metrics_start(init: float, n: int, blocks: int) -> tuple[float, float, float, int, int, float, float, float, float,
                                                              float, int, int, int, float, float, float]:
    """The running state of `metrics_bar` before the first bar: (previous equity, peak, max drawdown, bars under
    water, longest run, Σr, Σr², Σr³, Σr⁴, Σ downside r², block index, next block start, block length, and
    the current block's count, Σr, Σr²)."""
    return (init, init, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, -1, 0, max(1, n // blocks), 0.0, 0.0, 0.0)


@njit(cache=True, inline="always")
def metrics_bar(m: Any, i: int, equity: float, blocks: int, block_n: Any, block_s1: Any, block_s2: Any) -> Any:
    """Bar i's equity into the running metrics (a block's moments are written when the next block starts).

    Pass the block outputs as raw pointers (`cryptobot.kernels.features._data_pointer`), not arrays: an array
    handed to an inlined function every bar costs a reference-count call pair per array per bar.
    """
    prev, peak, max_dd, under, longest, s1, s2, s3, s4, down2, k, next_block, block_len, bn, b1, b2 = m
    if i == next_block and k < blocks - 1:  # block index without a division per bar
        if k >= 0:
            block_n[k], block_s1[k], block_s2[k] = bn, b1, b2
        k += 1
        next_block += block_len
        bn, b1, b2 = 0.0, 0.0, 0.0
    bn += 1.0
    if equity != prev:  # equal equity: r = x / x − 1 = 0 exactly, adding it changes no sum (skip the division)
        r = equity / prev - 1.0
        prev = equity
        r2 = r * r
        s1 += r
        s2 += r2
        s3 += r2 * r
        s4 += r2 * r * r
        if r < 0.0:
            down2 += r2
        b1 += r
        b2 += r2
    if equity >= peak:  # a new (or equal) peak: drawdown 1 − x / x = 0 exactly
        peak = equity
        under = 0
    else:
        dd = 1.0 - equity / peak
        if dd > max_dd:
            max_dd = dd
        if dd > 0.0:
            under += 1
            if under > longest:
                longest = under
        else:
            under = 0
    return (prev, peak, max_dd, under, longest, s1, s2, s3, s4, down2, k, next_block, block_len, bn, b1, b2)


@njit(cache=True, inline="always")
def trade_push(t: tuple[float, float, float, float], pnl: float) -> tuple[float, float, float, float]:
    """A closed trade's P&L into (trades, wins, gross win, gross loss); start from (0, 0, 0, 0)."""
    trades, wins, gross_win, gross_loss = t
    trades += 1.0
    if pnl > 0.0:
        wins += 1.0
        gross_win += pnl
    elif pnl < 0.0:
        gross_loss -= pnl
    return trades, wins, gross_win, gross_loss


@njit(cache=True, inline="always")
def metrics_finish(m: Any, t: tuple[float, float, float, float], n: int, init: float, final: float,
                   bars_per_year: float, out: np.ndarray, block_n: np.ndarray, block_s1: np.ndarray,
                   block_s2: np.ndarray) -> None:
    """METRICS into `out` from the running bar and trade state of n bars ending at equity `final`, and the
    last block's moments (the block arrays start zeroed: blocks not reached stay 0)."""
    _, _, max_dd, _, longest, s1, s2, s3, s4, down2, k, _, _, bn, b1, b2 = m
    if k >= 0:
        block_n[k], block_s1[k], block_s2[k] = bn, b1, b2
    trades, wins, gross_win, gross_loss = t
    mean = s1 / n if n else 0.0
    m2 = s2 / n - mean * mean if n else 0.0
    m3 = s3 / n - 3.0 * mean * s2 / n + 2.0 * mean**3 if n else 0.0
    m4 = s4 / n - 4.0 * mean * s3 / n + 6.0 * mean * mean * s2 / n - 3.0 * mean**4 if n else 0.0
    var = m2 * n / (n - 1.0) if n > 1 else 0.0
    sr = mean / np.sqrt(var) if var > 0.0 else 0.0
    downside = np.sqrt(down2 / n) if n else 0.0
    if n == 0:
        cagr = 0.0
    elif final > 0.0:
        cagr = (final / init) ** (bars_per_year / n) - 1.0
    else:
        cagr = -1.0
    out[0] = final / init - 1.0
    out[1] = cagr
    out[2] = sr * np.sqrt(bars_per_year)
    out[3] = mean / downside * np.sqrt(bars_per_year) if downside > 0.0 else 0.0
    out[4] = cagr / max_dd if max_dd > 0.0 else 0.0
    out[5] = max_dd
    out[6] = longest
    out[7] = trades
    out[8] = wins / trades if trades else 0.0
    out[9] = gross_win / gross_loss if gross_loss > 0.0 else np.nan
    out[10] = (gross_win - gross_loss) / trades if trades else 0.0
    out[11] = sr
    out[12] = m3 / m2**1.5 if m2 > 0.0 else 0.0
    out[13] = m4 / (m2 * m2) if m2 > 0.0 else 3.0
    out[14] = n
