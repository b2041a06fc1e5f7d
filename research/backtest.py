"""Backtest: signals from the shared strategy pipeline, fills and risk from the shared execution kernel,
portfolio analytics from vectorbt.

Our kernel decides every order (design §3 semantics, one implementation shared with live trading);
vectorbt then records exactly those orders through a flexible order function — several orders per bar
(reversal, entry plus same-bar stop) are allowed — and provides the portfolio object and its analytics.
The kernel's equity and vectorbt's are checked to agree.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cryptobot.config import Config, load_config
from cryptobot.data import DataValidationError, timeframe_to_ms, timestamps_ms, validate_frame
from cryptobot.data.validate import infer_timeframe
from cryptobot.kernels import execution as ex
from cryptobot.strategies import compute_signals, registered

REASONS = {
    ex.R_SIGNAL: "signal", ex.R_STOP_LOSS: "stop_loss", ex.R_TAKE_PROFIT: "take_profit", ex.R_RISK_HALT: "risk_halt",
    ex.R_LOSS_PAUSE: "loss_pause", ex.R_DAILY_LIMIT: "daily_limit", ex.R_ANOMALY: "anomaly",
    ex.R_BELOW_MIN: "below_min_size", ex.R_ML_GATE: "ml_gate", ex.R_END_OF_DATA: "end_of_data",
    ex.R_SHORT_DISABLED: "short_disabled", ex.R_NOT_FILLED: "not_filled", ex.R_NO_EDGE: "no_edge",
}


def execution_params(cfg: Config, bar_ms: int) -> np.ndarray:
    """The execution kernel's parameter vector from config (layout `cryptobot.kernels.execution.P_*`)."""
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
    p[ex.P_RISK_ON] = float(r.enabled)
    p[ex.P_SAFETY] = k.safety_factor
    p[ex.P_MAX_POS] = k.max_position_ratio
    p[ex.P_MIN_TRADES] = k.min_trades
    p[ex.P_FALLBACK] = k.fallback_size
    p[ex.P_LOOKBACK] = k.lookback_trades
    p[ex.P_MAX_DD] = r.max_drawdown
    p[ex.P_DD_SCALING] = float(r.drawdown_scaling)
    p[ex.P_LOSS_LIMIT] = r.consecutive_loss_limit
    p[ex.P_COOLDOWN_MS] = r.cooldown_hours * 3_600_000.0
    p[ex.P_DAILY_LIMIT] = r.daily_loss_limit
    p[ex.P_JUMP_Z] = r.price_jump_zscore
    p[ex.P_JUMP_LB] = r.price_jump_lookback
    p[ex.P_ML_THRESHOLD] = cfg.ml.threshold if cfg.ml.threshold is not None else 0.5
    p[ex.P_ML_SCALE] = float(cfg.ml.scale_size)
    return p


@dataclass
class BacktestResult:
    """What a backtest produced. `portfolio` is a vectorbt Portfolio built from the kernel's orders."""

    trades: pd.DataFrame
    skipped: pd.DataFrame
    equity: pd.Series
    position: pd.Series
    signals: pd.DataFrame
    stats: dict[str, Any]
    fingerprint: str
    config: Config
    orders: pd.DataFrame
    _portfolio: Any = field(default=None, repr=False)
    _close: pd.Series | None = field(default=None, repr=False)

    @property
    def portfolio(self) -> Any:
        """vectorbt Portfolio of exactly the kernel's orders (built on first access: vectorbt is slow to import)."""
        if self._portfolio is None:
            assert self._close is not None
            self._portfolio = build_portfolio(self._close, self.orders, self.config.execution.initial_capital)
        return self._portfolio


def _check_input(ohlcv: pd.DataFrame) -> str:
    report = validate_frame(ohlcv, source="backtest data")
    report.raise_for_errors()
    if ohlcv.empty:
        raise DataValidationError("backtest data: no bars in the selected range")
    tf = report.timeframe or infer_timeframe(timestamps_ms(ohlcv))
    if tf is None:
        raise DataValidationError("backtest data: need at least two bars to know the timeframe")
    return tf


def run(ohlcv: pd.DataFrame, config: Config | None = None, ml_gate: Any = None) -> BacktestResult:
    """Backtest the registered strategies on `ohlcv` with the shared execution and risk kernels.

    `ml_gate`: per-bar probabilities aligned with `ohlcv` (array or Series); an entry is taken only when
    p >= threshold (`ml.threshold`, default 0.5) and its size is scaled by p when `ml.scale_size`.
    """
    cfg = config or load_config()
    tf = _check_input(ohlcv)
    bar_ms = timeframe_to_ms(tf)
    signals = compute_signals(ohlcv, cfg, timeframe=tf)
    n = len(ohlcv)
    if ml_gate is None:
        ml = np.full(n, np.nan)
    else:
        ml = np.asarray(ml_gate.reindex(ohlcv.index) if isinstance(ml_gate, pd.Series) else ml_gate, dtype=np.float64)
        if ml.shape != (n,):
            raise ValueError(f"ml_gate has shape {ml.shape}; expected one probability per bar ({n})")
    ts = timestamps_ms(ohlcv)
    o, h, lo, c = (np.ascontiguousarray(ohlcv[k].to_numpy(np.float64)) for k in ("open", "high", "low", "close"))
    events, equity, position, _ = ex.execution_batch(
        execution_params(cfg, bar_ms), ts, o, h, lo, c,
        signals["action"].to_numpy(np.float64), signals["stop_loss"].to_numpy(), signals["take_profit"].to_numpy(),
        signals["voters"].to_numpy(np.float64), ml,
    )
    index = ohlcv.index
    trades = _trades_frame(events, index)
    skipped = _skips_frame(events, index)
    orders = _orders_frame(events, index)
    eq = pd.Series(equity, index=index, name="equity")
    pos = pd.Series(position, index=index, name="position")
    from research.stats import compute_stats

    stats = compute_stats(eq, trades, skipped, signals, cfg, bar_ms)
    return BacktestResult(trades, skipped, eq, pos, signals, stats, fingerprint(trades), cfg, orders,
                          _close=ohlcv["close"])


def _names(voters: int) -> str:
    return "+".join(name for i, name in enumerate(registered()) if voters >> i & 1)


def _trades_frame(events: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    exits = events[events[:, ex.EV_KIND] == ex.EV_EXIT]
    entry_bar = exits[:, ex.EV_ENTRY_BAR].astype(np.int64)
    exit_bar = exits[:, ex.EV_BAR].astype(np.int64)
    voters = exits[:, ex.EV_VOTERS].astype(np.int64)
    entries = events[events[:, ex.EV_KIND] == ex.EV_ENTRY]
    entry_fee_by_bar = dict(zip(entries[:, ex.EV_BAR].astype(np.int64).tolist(), entries[:, ex.EV_FEE].tolist(), strict=True))
    fees = [entry_fee_by_bar[b] + f for b, f in zip(entry_bar.tolist(), exits[:, ex.EV_FEE].tolist(), strict=True)]
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
    })


def _skips_frame(events: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    skips = events[events[:, ex.EV_KIND] == ex.EV_SKIP]
    bars = skips[:, ex.EV_BAR].astype(np.int64)
    return pd.DataFrame({
        "time": index[bars],
        "side": np.where(skips[:, ex.EV_SIDE] > 0, "long", "short"),
        "reason": [REASONS[int(r)] for r in skips[:, ex.EV_REASON]],
        "size": skips[:, ex.EV_AMOUNT],
        "bar": bars,
    })


def _orders_frame(events: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
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
    for row in trades.itertuples(index=False):
        line = (
            f"{row.entry_time.value // 1_000_000}|{row.exit_time.value // 1_000_000}|{row.side}|{row.size:.10g}|"
            f"{row.entry_price:.10g}|{row.exit_price:.10g}|{row.fees:.10g}|{row.interest:.10g}|{row.pnl:.10g}|"
            f"{row.exit_reason}\n"
        )
        digest.update(line.encode())
    return digest.hexdigest()


def build_portfolio(close: pd.Series, orders: pd.DataFrame, init_cash: float) -> Any:
    """A vectorbt Portfolio that records exactly `orders` (several per bar allowed)."""
    import vectorbt as vbt

    from research.vbt_orders import order_func_nb

    n = len(close)
    counts = np.bincount(orders["bar"].to_numpy(), minlength=n).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return vbt.Portfolio.from_order_func(
        close,
        order_func_nb,
        starts,
        counts,
        np.ascontiguousarray(orders["size"].to_numpy(np.float64)),
        np.ascontiguousarray(orders["price"].to_numpy(np.float64)),
        np.ascontiguousarray(orders["fee_rate"].to_numpy(np.float64)),
        np.ascontiguousarray(orders["fixed_fee"].to_numpy(np.float64)),
        flexible=True,
        init_cash=init_cash,
        freq=pd.Timedelta(int(np.median(np.diff(close.index.as_unit("ms").asi8))), unit="ms") if n > 1 else None,
    )
