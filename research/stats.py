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
from cryptobot.strategies import registered

YEAR_MS = 365.25 * 86_400_000
METRICS = ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_duration_bars",
           "trade_count", "win_rate", "profit_factor", "expectancy", "sharpe_per_bar", "skew", "kurtosis",
           "n_returns")
"""Layout of `equity_metrics`' output row (and of the sweep's metric columns)."""


@njit(cache=True, inline="always")
def metrics_start(init: float, n: int, blocks: int) -> tuple[float, float, float, int, int, float, float, float, float,
                                                              float, int, int, int, float, float, float]:
    """The running state of `metrics_bar` before the first bar: (previous equity, peak, max drawdown, bars under
    water, longest run, Σr, Σr², Σr³, Σr⁴, Σ downside r², block index, next block start, block length, and
    the current block's count, Σr, Σr²)."""
    return (init, init, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, -1, 0, max(1, n // blocks), 0.0, 0.0, 0.0)


@njit(cache=True, inline="always")
def metrics_bar(m: Any, i: int, equity: float, blocks: int, block_n: np.ndarray, block_s1: np.ndarray,
                block_s2: np.ndarray) -> Any:
    """Bar i's equity into the running metrics (a block's moments are written when the next block starts)."""
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


@njit(cache=True)
def equity_metrics(equity: np.ndarray, init: float, pnl: np.ndarray, bars_per_year: float, out: np.ndarray,
                   block_n: np.ndarray, block_s1: np.ndarray, block_s2: np.ndarray) -> None:
    """Metrics in the layout METRICS (into `out`) and per-block return moments (count, sum, sum of squares
    over `block_n.shape[0]` consecutive blocks, for CSCV) from an equity curve and closed-trade P&Ls.

    The streaming blocks (`metrics_start`, `metrics_bar`, `trade_push`, `metrics_finish`) are what the
    sweep's fused evaluator runs bar by bar with the execution core; this is the same arithmetic over arrays.
    """
    n = equity.shape[0]
    blocks = block_n.shape[0]
    block_n[:] = 0.0
    block_s1[:] = 0.0
    block_s2[:] = 0.0
    m = metrics_start(init, n, blocks)
    for i in range(n):
        m = metrics_bar(m, i, equity[i], blocks, block_n, block_s1, block_s2)
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
    in_market = np.zeros(len(eq), dtype=bool)
    for a, b in zip(trades["entry_bar"].to_numpy(), trades["exit_bar"].to_numpy(), strict=True):
        in_market[a : b + 1] = True
    per_strategy: dict[str, dict[str, float]] = {}
    voters = trades["voters"].to_numpy(np.int64) if len(trades) else np.zeros(0, dtype=np.int64)
    for i, name in enumerate(registered()):
        mask = (voters >> i & 1).astype(bool)
        n = int(mask.sum())
        per_strategy[name] = {
            "trades": n,
            "pnl": float(pnl[mask].sum()),
            "win_rate": float((pnl[mask] > 0).mean()) if n else 0.0,
            "signals": int((signals[f"{name}_action"] != 0).sum()),
        }
    exit_reasons = trades["exit_reason"].value_counts().to_dict() if len(trades) else {}
    skip_reasons = skipped["reason"].value_counts().to_dict() if len(skipped) else {}
    total_signals = int((signals["action"] != 0).sum())
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
        "exposure": float(in_market.mean()) if len(eq) else 0.0,
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
