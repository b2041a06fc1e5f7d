"""The tour's custom strategy (docs/strategies.md, "Write your own strategy"): an EMA crossover step kernel.

A strategy lives in an importable module so numba can cache its kernel and the generated pipeline can
import it; `notebooks/tour.ipynb` imports this file and registers it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cryptobot.kernels.features import EMA_SIZE, ema_update
from cryptobot.kernels.strategies import emit, hold

FAST, SLOW, SL_PCT = 0, 1, 2  # parameter vector layout
PREV = 2 * EMA_SIZE  # state layout: two EMA blocks, then the previous difference
DEFAULTS = {"fast": 10.0, "slow": 30.0, "sl_pct": 0.05}
STATE_SIZE = 2 * EMA_SIZE + 1
WARMUP = 30


@njit(cache=True)
def my_cross_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, features: np.ndarray,
                  out: np.ndarray) -> None:
    """Long when the fast EMA crosses above the slow one, short when it crosses below."""
    close = bar[3]
    diff = ema_update(st, 0, int(p[FAST]), close) - ema_update(st, EMA_SIZE, int(p[SLOW]), close)
    prev = st[PREV]
    st[PREV] = diff
    if not (np.isfinite(diff) and np.isfinite(prev)):
        hold(out)
    elif prev <= 0.0 < diff:
        emit(out, 1.0, 1.0, close, close * p[SL_PCT], 0.0)
    elif prev >= 0.0 > diff:
        emit(out, -1.0, 1.0, close, close * p[SL_PCT], 0.0)
    else:
        hold(out)
