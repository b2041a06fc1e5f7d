"""Backtest and sweep statistics: one metrics kernel (`equity_metrics`) for both, plus the backtest's extras.

`research.sweep` evaluates thousands of combinations inside compiled loops; `compute_stats` (stats.json)
calls the same compiled `equity_metrics` on the kernel's equity curve and trade P&Ls, so a number called
`sharpe` or `profit_factor` is the same arithmetic wherever it appears. Definitions (per-bar returns r_t
against the previous bar's equity, the first against the initial capital; n bars; B bars per year):
- sharpe = mean(r) / std(r, ddof=1) × √B, 0 when the returns do not vary;
- sortino = mean(r) / √(Σ min(r, 0)² / n) × √B (downside deviation over all n returns), 0 without a loss;
- cagr = (final / initial)^(B / n) − 1 (−1 when equity ended at or below zero);
- max_drawdown = max over t of 1 − equity_t / running peak (the initial capital is the first peak);
  max_drawdown_duration_bars = the longest run of bars below the running peak;
- calmar = cagr / max_drawdown, 0 without a drawdown;
- profit_factor = gross profit / gross loss of closed trades, undefined (NaN here, null in JSON) when
  no trade lost — with or without winners;
- win_rate and expectancy (mean P&L per trade) are 0 without trades.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from cryptobot.config import Config
from cryptobot.data import StoreKey
from cryptobot.data.store import name_to_symbol
from cryptobot.kernels.features import _data_pointer
from cryptobot.kernels.metrics import metrics_bar, metrics_finish, metrics_start, trade_push
from cryptobot.strategies import registered

YEAR_MS = 365.25 * 86_400_000
METRICS = ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_duration_bars",
           "trade_count", "win_rate", "profit_factor", "expectancy", "sharpe_per_bar", "skew", "kurtosis",
           "n_returns")
"""Layout of `equity_metrics`' output row (and of the sweep's metric columns)."""


@njit(cache=True)
def equity_metrics(equity: np.ndarray, init: float, pnl: np.ndarray, bars_per_year: float, out: np.ndarray,
                   block_n: np.ndarray, block_s1: np.ndarray, block_s2: np.ndarray) -> None:
    """Metrics in the layout METRICS (into `out`) and per-block return moments (count, sum, sum of squares
    over `block_n.shape[0]` consecutive blocks, for CSCV) from an equity curve and closed-trade P&Ls.

    The streaming blocks (`cryptobot.kernels.metrics`) are what the sweep's fused evaluator runs bar by bar
    with the execution core; this is the same arithmetic over arrays.
    """
    n = equity.shape[0]
    blocks = block_n.shape[0]
    block_n[:] = 0.0
    block_s1[:] = 0.0
    block_s2[:] = 0.0
    m = metrics_start(init, n, blocks)
    bn: Any = _data_pointer(block_n)  # type: ignore[call-arg]
    b1: Any = _data_pointer(block_s1)
    b2: Any = _data_pointer(block_s2)
    for i in range(n):
        m = metrics_bar(m, i, equity[i], blocks, bn, b1, b2)
    t = (0.0, 0.0, 0.0, 0.0)
    for x in pnl:
        t = trade_push(t, x)
    metrics_finish(m, t, n, init, equity[n - 1] if n else init, bars_per_year, out, block_n, block_s1, block_s2)


def metrics(equity: np.ndarray, init: float, pnl: np.ndarray, bars_per_year: float) -> dict[str, float]:
    """`equity_metrics` as a dict (no blocks)."""
    out = np.empty(len(METRICS))
    one = np.empty(1)
    equity_metrics(np.ascontiguousarray(equity, dtype=np.float64), float(init),
                   np.ascontiguousarray(pnl, dtype=np.float64), float(bars_per_year), out, one, one.copy(), one.copy())
    return dict(zip(METRICS, out.tolist(), strict=True))


def quote_currency(source: str | Path | None, cfg: Config) -> str:
    """The currency money is counted in: the quote of the symbol named by the data source (store key
    `binance/BTC-USDT/1h`, file `binance_BTC-USDT_1h_….csv.gz`), else the quote of `exchange.symbol`."""
    symbol = cfg.exchange.symbol
    if source is not None:
        path = Path(source)
        match = re.search(r"(?:^|_)([A-Z0-9]+-[A-Z0-9]+)(?:_|\.)", path.name)
        if match:
            symbol = name_to_symbol(match.group(1))
        elif not path.is_file():
            try:
                symbol = StoreKey.parse(str(source)).symbol
            except ValueError:
                pass
    return symbol.split("/")[1].split(":")[0]


def covered_bars(entry: np.ndarray, exit_: np.ndarray) -> int:
    """How many bars lie inside at least one trade, entry to exit bar inclusive, in O(trades).

    Trades in entry order: each adds the bars past the furthest exit before it (a reversal's shared bar
    counts once)."""
    if entry.size == 0:
        return 0
    order = np.argsort(entry, kind="stable")
    entry, exit_ = entry[order], exit_[order]
    reach = np.concatenate(([-1], np.maximum.accumulate(exit_)[:-1]))  # furthest bar covered before trade i
    return int(np.maximum(exit_ - np.maximum(entry - 1, reach), 0).sum())


def compute_stats(equity: pd.Series, trades: pd.DataFrame, skipped: pd.DataFrame, signals: pd.DataFrame,
                  cfg: Config, bar_ms: int, currency: str | None = None) -> dict[str, Any]:
    """The stats.json dict. Money is in `currency` (default: the quote of `exchange.symbol`); NaN marks a
    value that is undefined (`profit_factor` without a losing trade) and is written as null."""
    init = cfg.execution.initial_capital
    quote = currency or quote_currency(None, cfg)
    eq = equity.to_numpy(np.float64)
    pnl = trades["pnl"].to_numpy(np.float64)
    m = metrics(eq, init, pnl, YEAR_MS / bar_ms)
    held = (trades["exit_bar"] - trades["entry_bar"] + 1).to_numpy() if len(trades) else np.zeros(0)
    bars_in_market = covered_bars(trades["entry_bar"].to_numpy(np.int64), trades["exit_bar"].to_numpy(np.int64))
    per_strategy: dict[str, dict[str, float]] = {}
    voters = trades["voters"].to_numpy(np.int64) if len(trades) else np.zeros(0, dtype=np.int64)
    for i, name in enumerate(registered()):
        mask = (voters >> i & 1).astype(bool)
        n = int(mask.sum())
        per_strategy[name] = {
            "trades": n,
            "pnl": float(pnl[mask].sum()),
            "win_rate": float((pnl[mask] > 0).mean()) if n else 0.0,
            "signals": int(np.count_nonzero(signals[f"{name}_action"].to_numpy())),
        }
    exit_reasons = trades["exit_reason"].value_counts().to_dict() if len(trades) else {}
    skip_reasons = skipped["reason"].value_counts().to_dict() if len(skipped) else {}
    total_signals = int(np.count_nonzero(signals["action"].to_numpy()))
    stats: dict[str, Any] = {
        "currency": quote,
        **{k: m[k] for k in ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown")},
        "max_drawdown_duration": m["max_drawdown_duration_bars"] * bar_ms / 86_400_000,
        "max_drawdown_duration_bars": int(m["max_drawdown_duration_bars"]),
        "win_rate": m["win_rate"],
        "profit_factor": m["profit_factor"],
        "expectancy": m["expectancy"],
        "trade_count": int(m["trade_count"]),
        "avg_trade_duration": float(held.mean() * bar_ms / 3_600_000) if len(held) else 0.0,
        "exposure": bars_in_market / len(eq) if len(eq) else 0.0,
        "fees_paid": float(trades["fees"].sum()) if len(trades) else 0.0,
        "interest_paid": float(trades["interest"].sum()) if len(trades) else 0.0,
        "per_strategy": per_strategy,
        "exit_reasons": {str(k): int(v) for k, v in exit_reasons.items()},
        "skipped_entries": {str(k): int(v) for k, v in skip_reasons.items()},
        "performance_stats": {
            "total_signals": total_signals,
            "executed_trades": int(len(trades)),
            "current_balance": float(eq[-1]) if len(eq) else float(init),
            "session_pnl": float(eq[-1] - init) if len(eq) else 0.0,
            "execution_rate": float(len(trades) / total_signals * 100.0) if total_signals else 0.0,
        },
        "units": {
            "max_drawdown_duration": "days", "avg_trade_duration": "hours", "exposure": "fraction of bars",
            "fees_paid": quote, "interest_paid": quote, "expectancy": quote, "session_pnl": quote,
            "current_balance": quote, "sharpe": "annualised, per-bar returns", "sortino": "annualised, per-bar returns",
        },
    }
    return stats
