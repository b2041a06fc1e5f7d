"""The execution kernel's runtime wrapper, shared by the backtest and the live bot.

Config → the kernel's parameter vector (by the declared names), the reason enum and names, the layout
digest saved with every execution state, and the kernel's event records → the trades, skipped-entries and
orders frames (vectorised), plus the trade fingerprint. The backtest (`research.backtest`) and the
live adapter (`cryptobot.live`) both use these, so a replay through the live adapter and a backtest of the
same bars are compared with one definition of a trade.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

import numpy as np
import pandas as pd
import pyarrow as pa

from cryptobot.config import Config
from cryptobot.features import layout_digest, require_layout
from cryptobot.kernels import execution as ex
from cryptobot.ml.bundle import Bundle
from cryptobot.ml.gate import gate_threshold
from cryptobot.strategies import registered

Reason = IntEnum("Reason", {name.upper(): code for name, code in zip(ex.REASON_NAMES, ex.R, strict=True)})  # type: ignore[misc]
Reason.__doc__ = "Reason codes of fills and skips (the kernel's `R`); `Reason(code).name.lower()` is the reported name."
REASONS: dict[int, str] = {int(r): r.name.lower() for r in Reason}
"""Reason code → the name written to trades.csv, skipped.csv and the decision log."""
EVENT_KIND_NAMES: dict[int, str] = dict(zip(ex.KIND, ex.EVENT_KINDS, strict=True))
LAYOUT_DIGEST = layout_digest(ex.derive(ex.PARAMS, ex.STATE, ex.BUFFERS).shape)
"""Digest of the execution kernel's layout; saved execution states carry it (`check_layout`)."""

_REASON_LOOKUP = ["none", *ex.REASON_NAMES]  # by code (0: none)


def check_layout(layout: str) -> None:
    """Refuse a saved execution state made by another kernel layout (its values would be read at wrong offsets)."""
    require_layout(layout, LAYOUT_DIGEST, "execution state")


def execution_params(cfg: Config, bar_ms: int, gated: bool = False, bundle: Bundle | None = None) -> np.ndarray:
    """The execution kernel's parameter vector from config: each declared parameter (`ex.PARAMS`) by name.

    `gated`: the caller passes ML probabilities; every entry then needs p >= threshold, and a bar without a
    probability (NaN: warm-up, a bad feature row) is skipped as `ml_gate`. Ungated runs pass NaN and trade.
    `bundle`: the probabilities come from this bundle, so the threshold is `gate_threshold` (the config's
    `ml.threshold`, else the bundle's own) — the one place it enters the kernel, for backtest and live.
    """
    e, r, k, c = cfg.execution, cfg.risk, cfg.risk.kelly, cfg.costs
    values = {
        "init_cash": e.initial_capital, "taker_fee": c.taker_fee, "maker_fee": c.maker_fee,
        "slippage": c.slippage_bps / 10_000.0, "interest_daily": c.margin_interest_daily,
        "post_only": c.order_type == "post_only", "stops_on_fill_bar": e.stops_on_fill_bar,
        "reverse_on_opposite": e.reverse_on_opposite, "allow_short": e.allow_short,
        "amount_step": cfg.exchange.amount_step, "min_amount": cfg.exchange.min_amount,
        "leverage": cfg.exchange.leverage, "bar_ms": bar_ms, "fixed_amount": e.fixed_amount,
        "fixed_stake": e.fixed_stake, "risk_on": r.enabled, "kelly_safety": k.safety_factor,
        "kelly_cap": k.max_position_ratio, "kelly_min_trades": k.min_trades, "kelly_fallback": k.fallback_size,
        "kelly_lookback": k.lookback_trades, "kelly_window_ms": k.window_days * ex.DAY_MS,
        "max_drawdown": r.max_drawdown, "drawdown_scaling": r.drawdown_scaling,
        "loss_limit": r.consecutive_loss_limit, "cooldown_ms": r.cooldown_hours * 3_600_000.0,
        "daily_loss_limit": r.daily_loss_limit, "jump_zscore": r.price_jump_zscore,
        "jump_lookback": r.price_jump_lookback,
        "ml_threshold": (gate_threshold(cfg, bundle) if bundle is not None
                         else cfg.ml.threshold if cfg.ml.threshold is not None else 0.5),
        "ml_scale_size": cfg.ml.scale_size, "ml_gated": gated,
    }
    names = [name for name, _ in ex.PARAMS]
    if set(values) != set(names):
        raise AssertionError(f"execution_params does not pack the declared parameters: {set(values) ^ set(names)}")
    return np.array([float(values[name]) for name in names], dtype=np.float64)


def event_records(events: np.ndarray) -> np.ndarray:
    """Events as records of `EVENT_DTYPE`, from records or from rows of EV_WIDTH floats (as the state stores them)."""
    if events.dtype == ex.EVENT_DTYPE:
        return events
    rows = np.ascontiguousarray(events, dtype=np.float64).reshape(-1, ex.EV_WIDTH)
    return rows.view(ex.EVENT_DTYPE).reshape(-1)


def _labels(codes: np.ndarray, names: list[str]) -> pd.api.extensions.ExtensionArray:
    """`names[code]` per row as a pandas string column, decoded by Arrow (from Python strings: 4x the time)."""
    dictionary = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)),
                                                pa.array(names, type=pa.large_string()))
    return pd.array(dictionary.dictionary_decode(), dtype="str")


def _reasons(codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    return _labels(np.asarray(codes).astype(np.int64), _REASON_LOOKUP)


def _sides(side: np.ndarray) -> pd.api.extensions.ExtensionArray:
    return _labels((side <= 0).astype(np.int32), ["long", "short"])  # long when side > 0, as the kernel writes


def _names(voters: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Voter bitmasks → "name+name" over `registered()`."""
    strategies = registered()
    codes, inverse = np.unique(voters, return_inverse=True)
    names = ["+".join(name for i, name in enumerate(strategies) if int(v) >> i & 1) for v in codes.tolist()]
    return _labels(inverse.reshape(-1), names)


def _of_kind(ev: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The records where `mask`, copied as rows of floats (indexing records field by field is ~10x slower)."""
    rows = np.ascontiguousarray(ev).view(np.float64).reshape(-1, ex.EV_WIDTH)[mask]
    return rows.view(ex.EVENT_DTYPE).reshape(-1)


def trades_frame(events: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Closed trades (one row per exit event), in the columns of the backtest's `trades.csv`; `entry_reason`
    is `signal`, or `capped_by_capital` when a fixed size was cut to equity × leverage."""
    ev = event_records(events)
    exits = _of_kind(ev, ev["kind"] == ex.KIND.exit)
    entries = _of_kind(ev, ev["kind"] == ex.KIND.entry)
    entry_bar = exits["entry_bar"].astype(np.int64)
    exit_bar = exits["bar"].astype(np.int64)
    voters = exits["voters"].astype(np.int64)
    opened = _of_kind(entries, np.searchsorted(entries["bar"].copy(), entry_bar))  # one entry per bar, in order
    return pd.DataFrame({
        "entry_time": index[entry_bar],
        "exit_time": index[exit_bar],
        "side": _sides(exits["side"]),
        "size": exits["amount"],
        "entry_price": exits["entry_price"],
        "exit_price": exits["price"],
        "fees": opened["fee"] + exits["fee"],
        "interest": exits["interest"],
        "pnl": exits["pnl"],
        "return": exits["trade_return"],
        "exit_reason": _reasons(exits["reason"]),
        "strategies": _names(voters),
        "voters": voters,
        "entry_bar": entry_bar,
        "exit_bar": exit_bar,
        "entry_reason": _reasons(opened["reason"]),
    })


def skips_frame(events: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Entries the kernel decided not to take, with the reason (`skipped.csv`)."""
    ev = event_records(events)
    skips = _of_kind(ev, ev["kind"] == ex.KIND.skip)
    bars = skips["bar"].astype(np.int64)
    return pd.DataFrame({
        "time": index[bars],
        "side": _sides(skips["side"]),
        "reason": _reasons(skips["reason"]),
        "size": skips["amount"],
        "bar": bars,
    })


def orders_frame(events: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Every fill as a signed order (entries and exits), the input vectorbt records."""
    ev = event_records(events)
    fills = _of_kind(ev, (ev["kind"] == ex.KIND.entry) | (ev["kind"] == ex.KIND.exit))
    is_exit = fills["kind"] == ex.KIND.exit
    bars = fills["bar"].astype(np.int64)
    return pd.DataFrame({
        "bar": bars,
        "time": index[bars],
        "size": fills["side"] * fills["amount"] * np.where(is_exit, -1.0, 1.0),
        "price": fills["price"],
        "fee_rate": fills["fee_rate"],
        "fixed_fee": np.where(is_exit, fills["interest"], 0.0),
    })


SIGNIFICANT = 10  # digits a number keeps in the fingerprint: last-bit differences between machines do not count
FINGERPRINT_NUMBERS = ("size", "entry_price", "exit_price", "fees", "interest", "pnl")
_TEN = np.array([float(10**j) for j in range(300)])  # correctly rounded powers of ten: the same on every machine
_TRADE_RECORD = np.dtype([("entry_ms", "<i8"), ("exit_ms", "<i8"), ("side", "i1"), ("reason", "<i2"),
                          *((f"{c}_mantissa", "<i8") for c in FINGERPRINT_NUMBERS),
                          *((f"{c}_exponent", "<i2") for c in FINGERPRINT_NUMBERS)])


def significant_digits(x: np.ndarray, digits: int = SIGNIFICANT) -> tuple[np.ndarray, np.ndarray]:
    """Each value rounded to `digits` significant digits, as integers (mantissa, exponent):
    x ≈ mantissa × 10**(exponent − digits + 1) with |mantissa| in [10**(digits − 1), 10**digits), half to even.

    The pair is canonical: `log10` only guesses the exponent and the guess is corrected until the mantissa is in
    range, so only IEEE multiplication, division and rounding — identical on every machine — decide it.
    0 is (0, 0); NaN, +inf and −inf are (0, 1000), (0, 1001), (0, 1002).
    """
    x = np.asarray(x, dtype=np.float64)
    mantissa = np.zeros(x.shape, dtype=np.int64)
    exponent = np.zeros(x.shape, dtype=np.int64)
    exponent[np.isnan(x)], exponent[x == np.inf], exponent[x == -np.inf] = 1000, 1001, 1002
    at = np.flatnonzero(np.isfinite(x) & (x != 0.0))
    v = x[at]
    e = np.floor(np.log10(np.abs(v))).astype(np.int64)
    low, high = 10.0 ** (digits - 1), 10.0**digits
    for _ in range(4):
        k = digits - 1 - e  # scale by 10**k; beyond 10**299 in two steps (subnormals)
        up, down = np.clip(k, 0, 299), np.clip(-k, 0, 299)
        m = np.rint(v * _TEN[up] * _TEN[np.clip(k - up, 0, 299)] / _TEN[down])
        step = (np.abs(m) >= high).astype(np.int64) - (np.abs(m) < low)
        if not step.any():
            break
        e = e + step
    else:
        raise AssertionError("significant_digits did not converge")
    mantissa[at], exponent[at] = m.astype(np.int64), e
    return mantissa, exponent


def fingerprint(trades: pd.DataFrame) -> str:
    """sha256 over every trade: entry and exit time (ms), side, exit reason, and size, prices, fees, interest
    and P&L at 10 significant digits (`significant_digits`), so the hash is stable across machines while any
    real change in a fill moves it. One fixed little-endian record per trade (`_TRADE_RECORD`), the reasons
    by name in a header, hashed in one call."""
    records = np.zeros(len(trades), dtype=_TRADE_RECORD)
    records["entry_ms"] = pd.DatetimeIndex(trades["entry_time"]).as_unit("ms").asi8
    records["exit_ms"] = pd.DatetimeIndex(trades["exit_time"]).as_unit("ms").asi8
    records["side"] = np.where(trades["side"].eq("long").to_numpy(bool), 1, -1)
    codes, reasons = pd.factorize(trades["exit_reason"])
    records["reason"] = codes
    for c in FINGERPRINT_NUMBERS:
        records[f"{c}_mantissa"], records[f"{c}_exponent"] = significant_digits(trades[c].to_numpy(np.float64))
    digest = hashlib.sha256(("cryptobot trades v2\n" + "|".join(map(str, reasons)) + "\n").encode())
    digest.update(records.tobytes())
    return digest.hexdigest()
