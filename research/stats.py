"""Backtest statistics from the kernel's equity curve and trade list (`stats.json`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cryptobot.config import Config
from cryptobot.strategies import registered

YEAR_MS = 365.25 * 86_400_000


def _drawdown(equity: np.ndarray) -> tuple[float, int]:
    """Maximum drawdown (fraction) and the longest time under water, in bars."""
    peak = np.maximum.accumulate(equity)
    dd = 1.0 - equity / peak
    under = np.concatenate(([0], (dd > 0).astype(np.int8), [0]))
    edges = np.diff(under)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int((ends - starts).max()) if starts.size else 0
    return float(dd.max(initial=0.0)), longest


def compute_stats(equity: pd.Series, trades: pd.DataFrame, skipped: pd.DataFrame, signals: pd.DataFrame,
                  cfg: Config, bar_ms: int) -> dict[str, Any]:
    init = cfg.execution.initial_capital
    eq = equity.to_numpy(np.float64)
    rets = np.diff(np.concatenate(([init], eq))) / np.concatenate(([init], eq[:-1]))
    bars_per_year = YEAR_MS / bar_ms
    span_years = max(len(eq) * bar_ms / YEAR_MS, 1e-12)
    total_return = eq[-1] / init - 1.0 if len(eq) else 0.0
    cagr = (eq[-1] / init) ** (1.0 / span_years) - 1.0 if len(eq) and eq[-1] > 0 else -1.0
    sd = rets.std(ddof=1) if len(rets) > 1 else 0.0
    downside = rets[rets < 0]
    dsd = np.sqrt(np.mean(downside**2)) if downside.size else 0.0
    sharpe = float(rets.mean() / sd * np.sqrt(bars_per_year)) if sd > 0 else 0.0
    sortino = float(rets.mean() / dsd * np.sqrt(bars_per_year)) if dsd > 0 else 0.0
    max_dd, dd_bars = _drawdown(eq) if len(eq) else (0.0, 0)
    pnl = trades["pnl"].to_numpy(np.float64)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
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
        "total_return": float(total_return),
        "cagr": float(cagr),
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": float(cagr / max_dd) if max_dd > 0 else 0.0,
        "max_drawdown": max_dd,
        "max_drawdown_duration": float(dd_bars * bar_ms / 86_400_000),
        "max_drawdown_duration_bars": int(dd_bars),
        "win_rate": float(len(wins) / len(pnl)) if len(pnl) else 0.0,
        "profit_factor": float(wins.sum() / -losses.sum()) if losses.size else (None if wins.size else 0.0),
        "expectancy": float(pnl.mean()) if len(pnl) else 0.0,
        "trade_count": int(len(trades)),
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
            "fees_paid": "JPY", "interest_paid": "JPY", "sharpe": "annualised, per-bar returns",
        },
    }
    return stats
