"""Labels net of trading costs, each with the bar where its outcome becomes known (for purged CV).

- fixed horizon: 1 if the close `horizon` bars later beats the signal close by more than `threshold` plus
  the round-trip cost (the seed's "next bar > +0.3 %" is horizon 1, threshold 0.003);
- triple barrier: 1 if the upper barrier is touched before the lower one within the horizon (lower first
  when both are inside one bar, as the execution kernel takes the stop first);
- meta-labels (the default use): for every entry the strategies would take, entered at the next open like
  the backtest, 1 if its take-profit is reached before its stop-loss within the horizon, net of costs
  (strategies without a take-profit: the net return at the horizon is positive).
The last bars whose outcome lies beyond the data are left unlabelled, never silently 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from cryptobot.config import Config


@dataclass
class Labels:
    rows: np.ndarray  # bar positions that carry a label
    y: np.ndarray  # 0/1
    end: np.ndarray  # bar position where each label's outcome is known (inclusive)
    kind: str
    horizon: int
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "horizon_bars": self.horizon, **self.params,
                "positives": int(self.y.sum()), "samples": int(self.y.size)}


def round_trip_cost(cfg: Config) -> float:
    """Fees both ways plus slippage both ways, as a fraction of price."""
    return 2.0 * cfg.costs.taker_fee + 2.0 * cfg.costs.slippage_bps / 10_000.0


def fixed_horizon(ohlcv: pd.DataFrame, horizon: int, threshold: float, cost: float) -> Labels:
    c = ohlcv["close"].to_numpy(np.float64)
    n = c.size - horizon
    rows = np.arange(max(n, 0))
    ret = c[rows + horizon] / c[rows] - 1.0
    y = (ret - cost > threshold).astype(np.int8)
    return Labels(rows, y, rows + horizon, "fixed_horizon", horizon, {"threshold": threshold, "cost": cost})


@njit(cache=True)
def _first_touch(h: np.ndarray, lo: np.ndarray, c: np.ndarray, start: int, horizon: int, side: float, entry: float,
                 stop: float, take: float, cost: float) -> tuple[int, int]:
    """(label, end bar) for a position entered at `entry` on bar `start`; stop checked before take in a bar."""
    last = min(start + horizon - 1, h.shape[0] - 1)
    for i in range(start, last + 1):
        if (side > 0.0 and lo[i] <= stop) or (side < 0.0 and h[i] >= stop):
            return 0, i
        if take == take and ((side > 0.0 and h[i] >= take) or (side < 0.0 and lo[i] <= take)):
            ret = side * (take / entry - 1.0)
            return (1 if ret - cost > 0.0 else 0), i
    ret = side * (c[last] / entry - 1.0)
    return (1 if (take != take and ret - cost > 0.0) else 0), last


@njit(cache=True)
def _barriers(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, rows: np.ndarray, side: np.ndarray,
              stop: np.ndarray, take: np.ndarray, horizon: int, cost: float, slip: float,
              next_open: bool) -> tuple[np.ndarray, np.ndarray]:
    y = np.empty(rows.shape[0], dtype=np.int8)
    end = np.empty(rows.shape[0], dtype=np.int64)
    for k in range(rows.shape[0]):
        t = rows[k]
        start = t + 1  # the first bar that can touch a barrier
        entry = o[start] * (1.0 + side[k] * slip) if next_open else c[t]
        y[k], end[k] = _first_touch(h, lo, c, start, horizon, side[k], entry, stop[k], take[k], cost)
    return y, end


def triple_barrier(ohlcv: pd.DataFrame, horizon: int, up: float, down: float, cost: float) -> Labels:
    """Long from each close: 1 if close·(1+up) is touched before close·(1−down) within `horizon` bars."""
    o, h, lo, c = (ohlcv[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    rows = np.arange(max(c.size - horizon, 0), dtype=np.int64)
    side = np.ones(rows.size)
    y, end = _barriers(o, h, lo, c, rows, side, c[rows] * (1 - down), c[rows] * (1 + up), horizon, cost, 0.0, False)
    return Labels(rows, y, end, "triple_barrier", horizon, {"up": up, "down": down, "cost": cost})


def meta_labels(ohlcv: pd.DataFrame, signals: pd.DataFrame, horizon: int, cfg: Config) -> Labels:
    """One label per strategy entry signal (action ≠ 0) whose horizon fits in the data."""
    o, h, lo, c = (ohlcv[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    action = signals["action"].to_numpy()
    rows = np.flatnonzero((action != 0) & (np.arange(action.size) + horizon < action.size)).astype(np.int64)
    slip = cfg.costs.slippage_bps / 10_000.0
    y, end = _barriers(o, h, lo, c, rows, action[rows].astype(np.float64), signals["stop_loss"].to_numpy()[rows],
                       signals["take_profit"].to_numpy()[rows], horizon, round_trip_cost(cfg), slip, True)
    return Labels(rows, y, end, "meta", horizon, {"cost": round_trip_cost(cfg), "entry": "next open"})
