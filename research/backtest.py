"""Backtest: signals from the shared strategy pipeline, fills and risk from the shared execution kernel,
portfolio analytics from vectorbt.

Our kernel decides every order (design §3 semantics, one implementation shared with live trading);
vectorbt then records exactly those orders through a flexible order function — several orders per bar
(reversal, entry plus same-bar stop) are allowed — and provides the portfolio object and its analytics.
The kernel's equity and vectorbt's are checked to agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cryptobot.config import Config, load_config
from cryptobot.data import DataValidationError, timeframe_to_ms, timestamps_ms, validate_frame
from cryptobot.data.validate import infer_timeframe
from cryptobot.execution import execution_params, fingerprint, orders_frame, skips_frame, trades_frame
from cryptobot.features import FEATURE_ORDER
from cryptobot.kernels import execution as ex
from cryptobot.ml import load_bundle
from cryptobot.ml.gate import gate_probabilities
from cryptobot.strategies import active_strategies, compute_signals
from cryptobot.warmup import wait_for_ahead


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


def run(ohlcv: pd.DataFrame, config: Config | None = None, ml_gate: Any = None,
        currency: str | None = None, trade_from: int = 0) -> BacktestResult:
    """Backtest the registered strategies on `ohlcv` with the shared execution and risk kernels.

    `ml_gate`: per-bar probabilities aligned with `ohlcv` (array or Series); an entry is taken only when
    p >= threshold (`ml.threshold`, default 0.5) and its size is scaled by p when `ml.scale_size`; a bar
    without a probability (NaN) takes no entry (`ml_gate`).
    Without `ml_gate` and with `ml.enabled`, the bundle in `ml.bundle_dir` gates exactly as in live trading
    (`cryptobot.ml.gate`; threshold `ml.threshold`, else the bundle's own); a bundle that cannot be verified
    raises `BundleError` — never a silent ungated run.
    `currency`: what money is counted in (stats.json), default the quote of `exchange.symbol`.
    `trade_from`: bars before this position only warm the strategies and the execution kernel starts at
    it, flat with the initial capital — what the live bot does with its history warm-up (reconciliation).
    """
    cfg = config or load_config()
    tf = _check_input(ohlcv)
    bar_ms = timeframe_to_ms(tf)
    bundle = load_bundle(cfg.ml.bundle_dir) if ml_gate is None and cfg.ml.enabled else None
    signals = compute_signals(ohlcv, cfg, timeframe=tf, with_features=bundle is not None)
    if bundle is not None:
        ml_gate = gate_probabilities(bundle, signals[list(FEATURE_ORDER)].to_numpy())
        signals = signals.drop(columns=list(FEATURE_ORDER))
    n = len(ohlcv)
    if ml_gate is None:
        ml = np.full(n, np.nan)
    else:
        ml = np.asarray(ml_gate.reindex(ohlcv.index) if isinstance(ml_gate, pd.Series) else ml_gate, dtype=np.float64)
        if ml.shape != (n,):
            raise ValueError(f"ml_gate has shape {ml.shape}; expected one probability per bar ({n})")
    if not 0 <= trade_from < n:
        raise ValueError(f"trade_from={trade_from} is outside the {n} bars of the backtest data")
    t = slice(trade_from, None)
    ts = timestamps_ms(ohlcv)[t]
    o, h, lo, c = (np.ascontiguousarray(ohlcv[k].to_numpy(np.float64)[t]) for k in ("open", "high", "low", "close"))
    params = execution_params(cfg, bar_ms, gated=ml_gate is not None, bundle=bundle)
    wait_for_ahead()  # a cold execution kernel being compiled by `compile_ahead` is loaded, not compiled twice
    events, traded_equity, traded_position, _ = ex.execution_batch(
        params, ts, o, h, lo, c,
        np.ascontiguousarray(signals["action"].to_numpy(np.float64)[t]),
        np.ascontiguousarray(signals["stop_loss"].to_numpy(np.float64)[t]),
        np.ascontiguousarray(signals["take_profit"].to_numpy(np.float64)[t]),
        np.ascontiguousarray(signals["voters"].to_numpy(np.float64)[t]), np.ascontiguousarray(ml[t]),
    )
    equity, position = traded_equity, traded_position
    if trade_from:  # event bar numbers count from the first bar of `ohlcv`, as the live bot's do
        equity = np.concatenate([np.full(trade_from, float(cfg.execution.initial_capital)), traded_equity])
        position = np.concatenate([np.zeros(trade_from), traded_position])
        events["bar"] += trade_from
        events["entry_bar"][events["kind"] == ex.KIND.exit] += trade_from
    index = pd.DatetimeIndex(ohlcv.index)
    trades = trades_frame(events, index)
    skipped = skips_frame(events, index)
    orders = orders_frame(events, index)
    eq = pd.Series(equity, index=index, name="equity")
    pos = pd.Series(position, index=index, name="position")
    from research.stats import compute_stats

    stats = compute_stats(eq, trades, skipped, signals, cfg, bar_ms, currency)
    stats["strategies"] = active_strategies(cfg)
    stats["ml_gate"] = {"gated": ml_gate is not None, "bundle_id": bundle.bundle_id if bundle is not None else None,
                        "threshold": float(params[ex.EP.ml_threshold]) if ml_gate is not None else None}
    return BacktestResult(trades, skipped, eq, pos, signals, stats, fingerprint(trades), cfg, orders,
                          _close=ohlcv["close"])


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
        freq=pd.Timedelta(int(np.median(np.diff(pd.DatetimeIndex(close.index).as_unit("ms").asi8))), unit="ms") if n > 1 else None,
    )
