"""The execution kernel's runtime wrapper, shared by the backtest and the live bot.

Config → the kernel's parameter vector, reason codes → names, and the kernel's event buffer → the trades,
skipped-entries and orders frames, plus the trade fingerprint. The backtest (`research.backtest`) and the
live adapter (`cryptobot.live`) both use these, so a replay through the live adapter and a backtest of the
same bars are compared with one definition of a trade.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from cryptobot.config import Config
from cryptobot.kernels import execution as ex
from cryptobot.ml.bundle import Bundle
from cryptobot.ml.gate import gate_threshold
from cryptobot.strategies import registered

REASONS = {
    ex.R_SIGNAL: "signal", ex.R_STOP_LOSS: "stop_loss", ex.R_TAKE_PROFIT: "take_profit", ex.R_RISK_HALT: "risk_halt",
    ex.R_LOSS_PAUSE: "loss_pause", ex.R_DAILY_LIMIT: "daily_limit", ex.R_ANOMALY: "anomaly",
    ex.R_BELOW_MIN: "below_min_size", ex.R_ML_GATE: "ml_gate", ex.R_END_OF_DATA: "end_of_data",
    ex.R_SHORT_DISABLED: "short_disabled", ex.R_NOT_FILLED: "not_filled", ex.R_NO_EDGE: "no_edge",
    ex.R_CAPPED: "capped_by_capital",
}


def execution_params(cfg: Config, bar_ms: int, gated: bool = False, bundle: Bundle | None = None) -> np.ndarray:
    """The execution kernel's parameter vector from config (layout `cryptobot.kernels.execution.P_*`).

    `gated`: the caller passes ML probabilities; every entry then needs p >= threshold, and a bar without a
    probability (NaN: warm-up, a bad feature row) is skipped as `ml_gate`. Ungated runs pass NaN and trade.
    `bundle`: the probabilities come from this bundle, so the threshold is `gate_threshold` (the config's
    `ml.threshold`, else the bundle's own) — the one place it enters the kernel, for backtest and live.
    """
    p = np.zeros(ex.N_PARAMS, dtype=np.float64)
    e, r, k, c = cfg.execution, cfg.risk, cfg.risk.kelly, cfg.costs
    p[ex.P_INIT_CASH] = e.initial_capital
    p[ex.P_TAKER] = c.taker_fee
    p[ex.P_MAKER] = c.maker_fee
    p[ex.P_SLIP] = c.slippage_bps / 10_000.0
    p[ex.P_INTEREST] = c.margin_interest_daily
    p[ex.P_POST_ONLY] = float(c.order_type == "post_only")
    p[ex.P_STOPS_ON_FILL] = float(e.stops_on_fill_bar)
    p[ex.P_REVERSE] = float(e.reverse_on_opposite)
    p[ex.P_ALLOW_SHORT] = float(e.allow_short)
    p[ex.P_STEP] = cfg.exchange.amount_step
    p[ex.P_MIN_AMOUNT] = cfg.exchange.min_amount
    p[ex.P_LEVERAGE] = cfg.exchange.leverage
    p[ex.P_BAR_MS] = bar_ms
    p[ex.P_FIXED_AMOUNT] = e.fixed_amount
    p[ex.P_FIXED_STAKE] = e.fixed_stake
    p[ex.P_RISK_ON] = float(r.enabled)
    p[ex.P_SAFETY] = k.safety_factor
    p[ex.P_MAX_POS] = k.max_position_ratio
    p[ex.P_MIN_TRADES] = k.min_trades
    p[ex.P_FALLBACK] = k.fallback_size
    p[ex.P_LOOKBACK] = k.lookback_trades
    p[ex.P_KELLY_WINDOW_MS] = k.window_days * ex.DAY_MS
    p[ex.P_MAX_DD] = r.max_drawdown
    p[ex.P_DD_SCALING] = float(r.drawdown_scaling)
    p[ex.P_LOSS_LIMIT] = r.consecutive_loss_limit
    p[ex.P_COOLDOWN_MS] = r.cooldown_hours * 3_600_000.0
    p[ex.P_DAILY_LIMIT] = r.daily_loss_limit
    p[ex.P_JUMP_Z] = r.price_jump_zscore
    p[ex.P_JUMP_LB] = r.price_jump_lookback
    p[ex.P_ML_THRESHOLD] = (gate_threshold(cfg, bundle) if bundle is not None
                            else cfg.ml.threshold if cfg.ml.threshold is not None else 0.5)
    p[ex.P_ML_SCALE] = float(cfg.ml.scale_size)
    p[ex.P_ML_ON] = float(gated)
    return p


def _names(voters: int) -> str:
    return "+".join(name for i, name in enumerate(registered()) if voters >> i & 1)


def trades_frame(events: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Closed trades (one row per exit event), in the columns of the backtest's `trades.csv`; `entry_reason`
    is `signal`, or `capped_by_capital` when a fixed size was cut to equity × leverage."""
    exits = events[events[:, ex.EV_KIND] == ex.EV_EXIT]
    entry_bar = exits[:, ex.EV_ENTRY_BAR].astype(np.int64)
    exit_bar = exits[:, ex.EV_BAR].astype(np.int64)
    voters = exits[:, ex.EV_VOTERS].astype(np.int64)
    entries = events[events[:, ex.EV_KIND] == ex.EV_ENTRY]
    entry_by_bar = {int(row[ex.EV_BAR]): row for row in entries}
    fees = [entry_by_bar[b][ex.EV_FEE] + f for b, f in zip(entry_bar.tolist(), exits[:, ex.EV_FEE].tolist(), strict=True)]
    entry_reasons = [REASONS[int(entry_by_bar[b][ex.EV_REASON])] for b in entry_bar.tolist()]
    return pd.DataFrame({
        "entry_time": index[entry_bar],
        "exit_time": index[exit_bar],
        "side": np.where(exits[:, ex.EV_SIDE] > 0, "long", "short"),
        "size": exits[:, ex.EV_AMOUNT],
        "entry_price": exits[:, ex.EV_ENTRY_PRICE],
        "exit_price": exits[:, ex.EV_PRICE],
        "fees": np.asarray(fees, dtype=np.float64),
        "interest": exits[:, ex.EV_INTEREST],
        "pnl": exits[:, ex.EV_PNL],
        "return": exits[:, ex.EV_RETURN],
        "exit_reason": [REASONS[int(r)] for r in exits[:, ex.EV_REASON]],
        "strategies": [_names(int(v)) for v in voters],
        "voters": voters,
        "entry_bar": entry_bar,
        "exit_bar": exit_bar,
        "entry_reason": entry_reasons,
    })


def skips_frame(events: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Entries the kernel decided not to take, with the reason (`skipped.csv`)."""
    skips = events[events[:, ex.EV_KIND] == ex.EV_SKIP]
    bars = skips[:, ex.EV_BAR].astype(np.int64)
    return pd.DataFrame({
        "time": index[bars],
        "side": np.where(skips[:, ex.EV_SIDE] > 0, "long", "short"),
        "reason": [REASONS[int(r)] for r in skips[:, ex.EV_REASON]],
        "size": skips[:, ex.EV_AMOUNT],
        "bar": bars,
    })


def orders_frame(events: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Every fill as a signed order (entries and exits), the input vectorbt records."""
    fills = events[(events[:, ex.EV_KIND] == ex.EV_ENTRY) | (events[:, ex.EV_KIND] == ex.EV_EXIT)]
    is_exit = fills[:, ex.EV_KIND] == ex.EV_EXIT
    signed = fills[:, ex.EV_SIDE] * fills[:, ex.EV_AMOUNT] * np.where(is_exit, -1.0, 1.0)
    return pd.DataFrame({
        "bar": fills[:, ex.EV_BAR].astype(np.int64),
        "time": index[fills[:, ex.EV_BAR].astype(np.int64)],
        "size": signed,
        "price": fills[:, ex.EV_PRICE],
        "fee_rate": fills[:, ex.EV_FEE_RATE],
        "fixed_fee": np.where(is_exit, fills[:, ex.EV_INTEREST], 0.0),
    })


def fingerprint(trades: pd.DataFrame) -> str:
    """sha256 over every trade (times, side, size, prices, P&L, reason), numbers at 10 significant digits
    so the hash is stable across machines while any real change in a fill moves it."""
    digest = hashlib.sha256()
    times = [pd.DatetimeIndex(trades[c]).as_unit("ms").asi8.tolist() for c in ("entry_time", "exit_time")]
    numbers = [trades[c].to_numpy(np.float64).tolist() for c in ("size", "entry_price", "exit_price", "fees",
                                                                   "interest", "pnl")]
    for entry, exit_, side, size, entry_price, exit_price, fees, interest, pnl, reason in zip(
        *times, trades["side"].tolist(), *numbers, trades["exit_reason"].tolist(), strict=True
    ):
        line = (
            f"{entry}|{exit_}|{side}|{size:.10g}|{entry_price:.10g}|{exit_price:.10g}|{fees:.10g}|{interest:.10g}|"
            f"{pnl:.10g}|{reason}\n"
        )
        digest.update(line.encode())
    return digest.hexdigest()
