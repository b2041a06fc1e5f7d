"""The seed's five strategies and the EMA-crossover example as numba kernels (seed spec §4.3–4.7).

**One declaration per strategy.** `declare(...)` names a strategy's parameters, its scalar state values
(with their initial values) and its ring buffers once. The numba-visible named tuples (`<Name>Params`,
`<Name>State`), the index tuples (`layout.P`, `layout.S`: `P.sl_atr` is the index of `sl_atr`), the sizes,
the config packing (`cryptobot.strategies.registry`, by name from `strategies.<name>.<param>`), the docs
table and the layout digest saved with every signal state are derived from it. A researcher's own strategy
uses the same `declare` (see docs/strategies.md).

**State in registers.** Each built-in is one pure *core* (`@njit(inline="always")`): its parameters and
state as named tuples, the bar and the 15 features (a tuple in FEATURE_ORDER, or an array) in, the new
state and its vote `(action −1/0/+1, confidence 0..1, stop-loss, take-profit)` out. Ring buffers are the
only array state, reached through a buffer and an offset `b` (the strategy's slice in the state array).
The generated signal pipeline carries every core's state in locals over the history; the *step driver*
of each strategy (the common array signature below, used by tests, sweeps and custom pipelines) unpacks
its state array, calls the same core and packs it back:

    step(state, params, timestamp_ms, bar, features, out) -> None

Strategies emit "hold" while any input they need is NaN (warm-up, bad bar). The seed's random jitter is
gone: where it added noise, the deterministic value is the jitter's mean, set in config.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit
from numba.np.unsafe.ndarray import to_fixed_tuple

from cryptobot.kernels.features import (
    EMA_SIZE,
    F_ADX,
    F_ATR,
    F_BB_POS,
    F_CH_POS,
    F_CLOSE,
    F_DC_HIGH,
    F_DC_LOW,
    F_EMA_FAST,
    F_EMA_SLOW,
    F_MACD,
    F_MINUS_DI,
    F_PLUS_DI,
    F_RSI,
    F_VOL_RATIO,
    WIN_HEADER,
    _data_pointer,
    atr_block,
    block_max_push,
    ema_block,
    ring_sums_push,
    true_range,
)

NAN = np.nan
O_ACTION, O_CONF, O_SL, O_TP = 0, 1, 2, 3

__all__ = ["EMA_SIZE", "WIN_HEADER", "Layout", "declare", "emit", "emit_levels", "hold"]


# ------------------------------------------------------------------------------------- the declaration
class Layout(NamedTuple):
    """A strategy's declaration and everything derived from it (`declare`)."""

    name: str
    params: Any  # namedtuple type <Name>Params: one float per parameter, numba-visible
    state: Any  # namedtuple type <Name>State: one float per scalar state value
    P: Any  # parameter indices by name (P.sl_atr == its position in the parameter vector)
    S: Any  # state indices by name (S.prev_adx == its position in the state array)
    defaults: dict[str, float]  # declared default values (custom strategies; built-ins read config)
    init: tuple[float, ...]  # initial scalar state
    buffers: tuple[tuple[str, str, int, int, str], ...]  # (name, length parameter, extra slots, floats/slot, meaning)
    meanings: tuple[str, ...]  # of the scalar state values
    n_params: int
    n_state: int
    features: tuple[int, ...] | None = None  # the feature outputs (F_*) the core reads; None: any of them

    def state_size(self, p: np.ndarray) -> int:
        """Scalars, then each ring buffer of width × (int(p[length parameter]) + extra) floats."""
        names = list(self.P._fields)
        size = self.n_state
        for _, param, extra, width, _ in self.buffers:
            size += width * (int(p[names.index(param)]) + extra)
        return size

    def new_state(self, p: np.ndarray) -> np.ndarray:
        st = np.zeros(self.state_size(p), dtype=np.float64)
        st[: self.n_state] = self.init
        return st

    @property
    def shape(self) -> str:
        """What the layout digest hashes: names and order of parameters, state and buffers."""
        return repr((self.name, list(self.P._fields), list(zip(self.S._fields, self.init, strict=True)),
                     [b[:4] for b in self.buffers]))

    def table(self) -> str:
        """The state layout as docs/strategies.md shows it."""
        rows = ["| index | state value | initial | meaning |", "|---|---|---|---|"]
        rows += [f"| {i} | `{n}` | {v!r} | {m} |" for i, (n, v, m) in enumerate(zip(self.S._fields, self.init,
                                                                                  self.meanings, strict=True))]
        for n, p, extra, w, m in self.buffers:
            length = f"`{p}`" + (f" + {extra}" if extra else "")
            rows.append(f"| then | `{n}` | {w} × ({length}) floats | {m} |" if w > 1 else
                        f"| then | `{n}` | {length} floats | {m} |")
        return "\n".join(rows)


def _camel(name: str) -> str:
    """'ema_cross' → 'EmaCross' (names the declared tuple types)."""
    words = "".join(ch if ch.isascii() and ch.isalnum() else " " for ch in name).split()
    return "".join(word.capitalize() for word in words)


def declare(
    name: str,
    params: tuple[str | tuple[str, float], ...],
    state: tuple[str | tuple[str, float] | tuple[str, float, str], ...] = (),
    buffers: tuple[tuple[str, str, int, int] | tuple[str, str, int, int, str], ...] = (),
    features: tuple[int, ...] | None = None,
) -> Layout:
    """Declare a strategy's parameters, scalar state and ring buffers by name, once.

    `params`: names (built-ins: the `strategies.<name>` config field of that name) or `(name, default)`.
    `state`: names (initial 0.0) or `(name, initial[, meaning])`. `buffers`: `(name, length parameter,
    extra slots, floats per slot[, meaning])`, laid out after the scalars in this order. `features=(F_CLOSE, F_ATR, …)`
    promises the kernel reads only those of the 15 features, so a backtest of such strategies computes only
    the feature blocks they need (`()`: none; None, the default: all; a test runs every built-in both ways
    and compares). The returned
    `Layout.P` / `Layout.S` are the index tuples a kernel reads its arrays with (`p[P.fast]`, `st[S.prev]`).
    """
    pnames = [p if isinstance(p, str) else p[0] for p in params]
    defaults = {p[0]: float(p[1]) for p in params if not isinstance(p, str)}
    rows = [(s, 0.0, "") if isinstance(s, str) else (s[0], float(s[1]), s[2] if len(s) > 2 else "")
            for s in state]
    snames = [r[0] for r in rows]
    for what, names in (("parameter", pnames), ("state value", snames)):
        bad = [n for n in names if not n.isidentifier() or n.startswith("_")]
        if bad or len(set(names)) != len(names):
            raise ValueError(f"strategy {name!r}: {what} names must be unique identifiers without a leading _: {names}")
    bufs = tuple((b[0], b[1], int(b[2]), int(b[3]), b[4] if len(b) > 4 else "") for b in buffers)
    unknown = [b[1] for b in bufs if b[1] not in pnames]
    if unknown:
        raise ValueError(f"strategy {name!r}: buffer lengths name unknown parameters {unknown}")
    camel = _camel(name)
    named: Any = NamedTuple  # the functional form with computed names (mypy only knows literal ones)
    param_t = named(f"{camel}Params", [(n, float) for n in pnames])
    state_t = named(f"{camel}State", [(n, float) for n in snames])
    p_idx = named(f"{camel}P", [(n, int) for n in pnames])(*range(len(pnames)))
    s_idx = named(f"{camel}S", [(n, int) for n in snames])(*range(len(snames)))
    return Layout(name, param_t, state_t, p_idx, s_idx, defaults, tuple(r[1] for r in rows), bufs,
                  tuple(r[2] for r in rows), len(pnames), len(snames), None if features is None else tuple(features))


# ------------------------------------------------------------------------------------------ votes
@njit(cache=True, inline="always")
def hold_vote(confidence: float) -> tuple[float, float, float, float]:
    return 0.0, confidence, NAN, NAN


@njit(cache=True, inline="always")
def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else (hi if x > hi else x)


@njit(cache=True, inline="always")
def levels_vote(action: float, confidence: float, sl: float, tp: float) -> tuple[float, float, float, float]:
    """Buy/sell with absolute SL/TP levels; a level that is NaN or ≤ 0 is none (NaN: the execution kernel never
    triggers it), so a percent stop of 0 or of 100 % of a long trades without a stop."""
    return action, confidence, sl if sl > 0.0 else NAN, tp if tp > 0.0 else NAN


@njit(cache=True, inline="always")
def emit_vote(action: float, confidence: float, price: float, sl_dist: float, tp_dist: float
              ) -> tuple[float, float, float, float]:
    """Buy/sell with SL/TP at fixed distances from the signal price (seed §4.2: SL = P ∓ d, TP = P ± d·ratio)."""
    if action == 0.0 or not (sl_dist > 0.0) or price - sl_dist <= 0.0 and action > 0.0:
        return hold_vote(confidence)  # no usable stop distance yet (e.g. ATR not ready): no trade
    return levels_vote(action, confidence, price - action * sl_dist, price + action * tp_dist if tp_dist > 0.0 else NAN)


@njit(cache=True, inline="always")
def _write(out: np.ndarray, r: tuple[float, float, float, float]) -> None:
    out[O_ACTION], out[O_CONF], out[O_SL], out[O_TP] = r


@njit(cache=True)
def hold(out: np.ndarray, confidence: float = 0.0) -> None:
    """`hold_vote` into an array vote (for step kernels written against arrays)."""
    _write(out, hold_vote(confidence))


@njit(cache=True)
def emit(out: np.ndarray, action: float, confidence: float, price: float, sl_dist: float, tp_dist: float) -> None:
    """`emit_vote` into an array vote."""
    _write(out, emit_vote(action, confidence, price, sl_dist, tp_dist))


@njit(cache=True)
def emit_levels(out: np.ndarray, action: float, confidence: float, sl: float, tp: float) -> None:
    """`levels_vote` into an array vote."""
    _write(out, levels_vote(action, confidence, sl, tp))


@njit(cache=True, inline="always")
def store_state(st: Any, b: int, s: Any) -> None:
    """Pack a strategy's scalar state (a named tuple of floats) into st[b:]."""
    for i in range(len(s)):
        st[b + i] = s[i]


@njit(cache=True, inline="always")
def _check(st: np.ndarray, size: int) -> None:
    """Buffers are reached through a raw pointer, so a state of the wrong size must never get that far."""
    if st.shape[0] != size:
        raise ValueError("strategy state array does not match the layout of these parameters; rebuild it")


# ----------------------------------------------------------------------------------------- ATRBased
ATR_BASED = declare(
    "atr_based",
    params=("bb_overbought", "bb_oversold", "rsi_overbought", "rsi_oversold", "base_confidence",
            "confidence_multiplier", "min_confidence", "low_volatility_ratio", "high_volatility_ratio",
            "volatility_lookback", "sl_atr", "tp_atr"),
    state=(("count", 0.0, "ATR/close values in the window (saturates at the lookback)"),
           ("pos", 0.0, "window: next write position"),
           ("centre", 0.0, "window: centre K of the sum"),
           ("sum", 0.0, "window: Σ(x − K)")),
    buffers=(("ratios", "volatility_lookback", 0, 1, "ATR/close of the last bars"),),
    features=(F_CLOSE, F_ATR, F_BB_POS, F_RSI),
)
AtrBasedParams, AtrBasedState = ATR_BASED.params, ATR_BASED.state
ATR_P, ATR_S = ATR_BASED.P, ATR_BASED.S
ATR_N_PARAMS, ATR_N_STATE = ATR_BASED.n_params, ATR_BASED.n_state


@njit(cache=True)
def atr_based_state_size(p: np.ndarray) -> int:
    return ATR_N_STATE + int(p[ATR_P.volatility_lookback])


@njit(cache=True, inline="always")
def atr_based_core(q: Any, s: Any, buf: Any, b: int, ts: int, o: float, h: float, lo: float, c: float, v: float,
                   f: Any) -> tuple[Any, tuple[float, float, float, float]]:
    """Mean reversion on Bollinger position + RSI, scaled by the volatility regime (seed §4.3)."""
    close, atr, bb, rsi = f[F_CLOSE], f[F_ATR], f[F_BB_POS], f[F_RSI]
    if not (np.isfinite(atr) and np.isfinite(bb) and np.isfinite(rsi)) or close <= 0.0:
        return s, hold_vote(0.0)
    lookback = int(q.volatility_lookback)
    count = int(s.count)
    pos, k, s1, _ = ring_sums_push(buf, b + ATR_N_STATE, lookback, count, int(s.pos), s.centre, s.sum, 0.0,
                                   atr / close, False, False)
    s = AtrBasedState(float(min(count + 1, lookback)), float(pos), k, s1)
    regime = 1.0
    if count + 1 >= lookback:
        mean_ratio = k + s1 / lookback
        m = (atr / close) / mean_ratio if mean_ratio > 0.0 else 1.0
        regime = 0.8 if m < q.low_volatility_ratio else (1.2 if m > q.high_volatility_ratio else 1.0)
    bb_side = 0.0
    bb_conf = 0.0
    bb_strength = 0.0
    if bb >= q.bb_overbought:
        bb_side, bb_strength = -1.0, min((bb - q.bb_overbought) / 0.2, 1.0)
    elif bb <= q.bb_oversold:
        bb_side, bb_strength = 1.0, min((q.bb_oversold - bb) / 0.2, 1.0)
    if bb_side != 0.0:
        bb_conf = q.base_confidence + q.confidence_multiplier * bb_strength
    rsi_side = 0.0
    rsi_conf = 0.0
    if rsi >= q.rsi_overbought:
        rsi_side = -1.0
        rsi_conf = 0.2 + 0.3 * min((rsi - q.rsi_overbought) / 30.0, 1.0)
    elif rsi <= q.rsi_oversold:
        rsi_side = 1.0
        rsi_conf = 0.2 + 0.3 * min((q.rsi_oversold - rsi) / 30.0, 1.0)
    side = 0.0
    conf = 0.0
    if bb_side != 0.0 and rsi_side != 0.0:
        if bb_side == rsi_side:
            side, conf = bb_side, min(bb_conf + rsi_conf, 1.0)
        elif bb_conf >= rsi_conf:
            side, conf = bb_side, bb_conf * 0.8
        else:
            side, conf = rsi_side, rsi_conf * 0.8
    elif bb_side != 0.0:
        side, conf = bb_side, bb_conf * 0.7
    elif rsi_side != 0.0:
        side, conf = rsi_side, rsi_conf * 0.7
    else:
        t = (abs(bb - 0.5) + abs(rsi - 50.0) / 50.0) / 2.0
        if t > 0.1:
            side = 1.0 if (bb < 0.5 or rsi < 50.0) else -1.0
            conf = 0.25 + 0.3 * t
    conf = min(conf * regime, 1.0)
    if side == 0.0 or conf < q.min_confidence:
        return s, hold_vote(conf if side == 0.0 else 0.0)
    return s, emit_vote(side, conf, close, atr * q.sl_atr, atr * q.tp_atr)


@njit(cache=True)
def atr_based_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Step driver of `atr_based_core` over a state array."""
    _check(st, atr_based_state_size(p))
    q = AtrBasedParams(*to_fixed_tuple(p, ATR_N_PARAMS))  # type: ignore[call-arg]
    s, r = atr_based_core(q, AtrBasedState(*to_fixed_tuple(st, ATR_N_STATE)), _data_pointer(st), 0, ts,
                          bar[0], bar[1], bar[2], bar[3], bar[4], f)
    store_state(st, 0, s)
    _write(out, r)


# ------------------------------------------------------------------------------------ MochipoyAlert
MOCHIPOY_ALERT = declare(
    "mochipoy_alert",
    params=("rci_period", "rci_overbought", "rci_oversold", "strong_confidence", "vote_step", "weak_confidence",
            "max_confidence", "min_confidence", "sl_atr", "tp_atr"),
    state=(("count", 0.0, "closes in the RCI window (saturates at the period)"),
           ("pos", 0.0, "RCI window: next write position (the oldest close once full)")),
    buffers=(("closes", "rci_period", 0, 1, "the last closes"),
             ("rank_gaps", "rci_period", 0, 1, "their price rank − time rank (kept once the window is full)")),
    features=(F_CLOSE, F_ATR, F_EMA_FAST, F_EMA_SLOW, F_MACD),
)
MochipoyAlertParams, MochipoyAlertState = MOCHIPOY_ALERT.params, MOCHIPOY_ALERT.state
MP_P, MP_S = MOCHIPOY_ALERT.P, MOCHIPOY_ALERT.S
MP_N_PARAMS, MP_N_STATE = MOCHIPOY_ALERT.n_params, MOCHIPOY_ALERT.n_state
MP_P_RCI_N = MP_P.rci_period


@njit(cache=True)
def mochipoy_state_size(p: np.ndarray) -> int:
    return MP_N_STATE + 2 * int(p[MP_P.rci_period])


@njit(cache=True, inline="always")
def _rci(d2: float, n: int) -> float:
    """RCI = (1 − 6·Σd² / (n(n²−1))) · 100 from Σd² (a sum of integers, exact in any order)."""
    return (1.0 - 6.0 * d2 / (n * (n * n - 1.0))) * 100.0


@njit(cache=True, inline="always")
def price_rank(buf: Any, b0: int, n: int, x: float) -> int:
    """Rank of x among the n values at buf[b0:], descending: 1 + how many are higher (ties share the best)."""
    rank = 1
    for j in range(n):
        rank += buf[b0 + j] > x
    return rank


@njit(cache=True, inline="always")
def rci_block(buf: Any, b0: int, pos: int, n: int) -> float:
    """Rank correlation index of the n values of the ring at buf[b0:], oldest at `pos` (seed §4.4).

    Price ranks descending (`price_rank`), time ranks descending from n (oldest) to 1 (newest), so a
    steadily rising window gives +100.
    """
    d2 = 0.0
    for age in range(n):  # age 0 = oldest
        j0 = pos + age
        d = price_rank(buf, b0, n, buf[b0 + (j0 - n if j0 >= n else j0)]) - (n - age)
        d2 += d * d
    return _rci(d2, n)


@njit(cache=True, inline="always")
def rci_push(buf: Any, vals: int, gaps: int, pos: int, n: int, x: float, full: bool) -> float:
    """Put x over the oldest value (slot `pos`) of a ring of n values and return the new window's RCI.

    Beside the values (buf[vals:]) the ring keeps each value's d = price rank − time rank (buf[gaps:]).
    `full` (the ring was full before this push): one O(n) pass — a value's d shrinks by one as its time
    rank grows, grows by one if x arrives above it, shrinks by one if the leaving value was above it — otherwise the gaps are
    computed afresh with `price_rank`. Σd² is a sum of integers, so this gives `rci_block`'s RCI bit for
    bit (a test compares them on random windows with ties).
    """
    d2 = 0.0
    if full:
        y = buf[vals + pos]
        rank_x = 1.0
        for j in range(n):  # slot `pos` too (as if it stayed y), corrected after the loop: no branch in it
            z = buf[vals + j]
            d = buf[gaps + j] + ((x > z) - (y > z) - 1.0)
            buf[gaps + j] = d
            d2 += d * d
            rank_x += z > x
        d = buf[gaps + pos]
        d_x = rank_x - (y > x) - 1.0  # x is the newest: time rank 1
        d2 += d_x * d_x - d * d
        buf[vals + pos] = x
        buf[gaps + pos] = d_x
        return _rci(d2, n)
    buf[vals + pos] = x
    oldest = pos + 1 if pos + 1 < n else 0
    for j in range(n):
        age = j - oldest if j >= oldest else j - oldest + n
        d = float(price_rank(buf, vals, n, buf[vals + j]) - (n - age))
        buf[gaps + j] = d
        d2 += d * d
    return _rci(d2, n)


@njit(cache=True)
def rci(st: np.ndarray, o: int, n: int) -> float:
    """`rci_block` of a `window_push` window kept in an array at st[o:] (count, position, …, then values)."""
    return rci_block(st, o + WIN_HEADER, int(st[o + 1]), n)


@njit(cache=True, inline="always")
def mochipoy_alert_core(q: Any, s: Any, buf: Any, b: int, ts: int, o: float, h: float, lo: float, c: float,
                        v: float, f: Any) -> tuple[Any, tuple[float, float, float, float]]:
    """Vote of EMA trend, MACD sign and RCI reversal (seed §4.4), without the seed's clock-seeded jitter."""
    close, atr = f[F_CLOSE], f[F_ATR]
    n = int(q.rci_period)
    count = int(s.count)
    pos = int(s.pos)
    vals = b + MP_N_STATE
    r = NAN
    if count + 1 < n:
        buf[vals + pos] = close
    else:
        r = rci_push(buf, vals, vals + n, pos, n, close, count >= n)
    s = MochipoyAlertState(float(min(count + 1, n)), float(pos + 1 if pos + 1 < n else 0))
    ema_f, ema_s, macd = f[F_EMA_FAST], f[F_EMA_SLOW], f[F_MACD]
    if not (count + 1 >= n and np.isfinite(ema_f) and np.isfinite(ema_s) and np.isfinite(macd) and np.isfinite(atr)):
        return s, hold_vote(0.0)
    buys = 0
    sells = 0
    if ema_f > ema_s:
        buys += 1
    elif ema_f < ema_s:
        sells += 1
    if macd > 0.0:
        buys += 1
    elif macd < 0.0:
        sells += 1
    if r >= q.rci_overbought:
        sells += 1
    elif r <= q.rci_oversold:
        buys += 1
    side = 0.0
    conf = 0.0
    if buys >= 2:
        side, conf = 1.0, min(q.max_confidence, q.strong_confidence + q.vote_step * (buys - 2))
    elif sells >= 2:
        side, conf = -1.0, min(q.max_confidence, q.strong_confidence + q.vote_step * (sells - 2))
    elif buys == 1 and sells == 0:
        side, conf = 1.0, q.weak_confidence
    elif sells == 1 and buys == 0:
        side, conf = -1.0, q.weak_confidence
    if side == 0.0 or conf < q.min_confidence:
        return s, hold_vote(0.0)
    return s, emit_vote(side, conf, close, atr * q.sl_atr, atr * q.tp_atr)


@njit(cache=True)
def mochipoy_alert_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Step driver of `mochipoy_alert_core` over a state array."""
    _check(st, mochipoy_state_size(p))
    q = MochipoyAlertParams(*to_fixed_tuple(p, MP_N_PARAMS))  # type: ignore[call-arg]
    s, r = mochipoy_alert_core(q, MochipoyAlertState(*to_fixed_tuple(st, MP_N_STATE)), _data_pointer(st), 0, ts,
                               bar[0], bar[1], bar[2], bar[3], bar[4], f)
    store_state(st, 0, s)
    _write(out, r)


# ----------------------------------------------------------------------------------- MultiTimeframe
MULTI_TIMEFRAME = declare(
    "multi_timeframe",
    params=("trend_lookback", "min_trend_strength", "min_volatility", "entry_lookback", "rsi_overbought",
            "rsi_oversold", "trend_weight", "entry_weight", "min_confidence", "sl_atr", "tp_atr",
            "base_ms", "htf_ms", "htf_ema_period", "htf_atr_period"),
    state=(("bucket", 0.0, "open time of the higher-timeframe bar being aggregated"),
           ("bucket_high", 0.0, "its high so far"),
           ("bucket_low", 0.0, "its low so far"),
           ("bucket_close", 0.0, "its close so far"),
           ("bucket_open", 0.0, "1 while a higher-timeframe bar is being aggregated"),
           ("prev_close", 0.0, "previous base bar's close"),
           ("prev_ema_fast", 0.0, "previous base bar's fast EMA"),
           ("htf_ema_seen", 0.0, "higher-timeframe EMA: closes seen"),
           ("htf_ema_sum", 0.0, "higher-timeframe EMA: seed sum"),
           ("htf_ema", 0.0, "higher-timeframe EMA value"),
           ("htf_atr_seen", 0.0, "higher-timeframe ATR: bars seen"),
           ("htf_atr_prev_close", 0.0, "higher-timeframe ATR: previous close"),
           ("htf_atr_value", 0.0, "higher-timeframe ATR: true-range sum, then Wilder ATR"),
           ("htf_atr", 0.0, "last higher-timeframe ATR output"),
           ("bars", 0.0, "base bars seen (the entry windows are full from entry_lookback)"),
           ("emas_count", 0.0, "finite higher-timeframe EMA values in their window (saturates)"),
           ("emas_pos", 0.0, "that window: next write position (the oldest value once full)"),
           ("lows_pos", 0.0, "entry lows: position in the current block"),
           ("lows_prefix", 0.0, "entry lows: max of −low in the current block"),
           ("highs_pos", 0.0, "entry highs: position in the current block"),
           ("highs_prefix", 0.0, "entry highs: max of the current block")),
    buffers=(("htf_emas", "trend_lookback", 1, 1, "the last higher-timeframe EMA values"),
             ("lows", "entry_lookback", 0, 2, "−lows of the current block, then suffix maxima of the previous"),
             ("highs", "entry_lookback", 0, 2, "highs of the current block, then suffix maxima of the previous")),
    features=(F_CLOSE, F_EMA_FAST, F_RSI, F_ATR),
)
MultiTimeframeParams, MultiTimeframeState = MULTI_TIMEFRAME.params, MULTI_TIMEFRAME.state
MT_P, MT_S = MULTI_TIMEFRAME.P, MULTI_TIMEFRAME.S
MT_N_PARAMS, MT_N_STATE = MULTI_TIMEFRAME.n_params, MULTI_TIMEFRAME.n_state
MT_S_EMA = MT_S.htf_ema_seen


@njit(cache=True, inline="always")
def _mtf_offsets(q: Any) -> tuple[int, int, int, int]:
    """Buffer offsets relative to the strategy's slice (in `MULTI_TIMEFRAME.buffers` order) and the size."""
    emas = MT_N_STATE
    lows = emas + int(q.trend_lookback) + 1
    highs = lows + 2 * int(q.entry_lookback)
    return emas, lows, highs, highs + 2 * int(q.entry_lookback)


@njit(cache=True)
def multi_timeframe_state_size(p: np.ndarray) -> int:
    return _mtf_offsets(MultiTimeframeParams(*to_fixed_tuple(p, MT_N_PARAMS)))[3]  # type: ignore[call-arg]


@njit(cache=True, inline="always")
def _mtf_close_bucket(q: Any, s: Any, buf: Any, emas: int) -> Any:
    """A higher-timeframe bar is complete: feed its close to the HTF EMA/ATR and the slope window."""
    seen, total, value, ema = ema_block(s.htf_ema_seen, s.htf_ema_sum, s.htf_ema, float(int(q.htf_ema_period)),
                                        s.bucket_close, False)
    tr = true_range(s.bucket_high, s.bucket_low, s.htf_atr_prev_close)
    atr_value, atr = atr_block(s.htf_atr_seen, s.htf_atr_value, float(int(q.htf_atr_period)), tr, False)
    count, pos = s.emas_count, s.emas_pos
    if np.isfinite(ema):
        n = int(q.trend_lookback) + 1
        buf[emas + int(pos)] = ema
        pos = float(int(pos) + 1 if int(pos) + 1 < n else 0)
        count = float(min(int(count) + 1, n))
    return MultiTimeframeState(
        s.bucket, s.bucket_high, s.bucket_low, s.bucket_close, 0.0, s.prev_close, s.prev_ema_fast,
        seen, total, value, s.htf_atr_seen + 1.0, s.bucket_close, atr_value, atr, s.bars, count, pos,
        s.lows_pos, s.lows_prefix, s.highs_pos, s.highs_prefix)


@njit(cache=True, inline="always")
def multi_timeframe_core(q: Any, s: Any, buf: Any, b: int, ts: int, o: float, h: float, lo: float, c: float,
                         v: float, f: Any) -> tuple[Any, tuple[float, float, float, float]]:
    """Higher-timeframe trend + base-timeframe entry (seed §4.5), with a real higher timeframe.

    Higher bars are aggregated on the clock from the bar open times; one is used only once it has closed:
    at the close of the base bar whose close time reaches the bucket end, or — when that bar is missing —
    as soon as a bar of a later bucket arrives. Batch and live call this same code, so there is no lookahead.
    """
    emas, lows, highs, _ = _mtf_offsets(q)
    emas += b
    lows += b
    highs += b
    base_ms = int(q.base_ms)
    htf_ms = int(q.htf_ms)
    bucket = (ts // htf_ms) * htf_ms
    if s.bucket_open == 1.0 and bucket != int(s.bucket):
        s = _mtf_close_bucket(q, s, buf, emas)
    if s.bucket_open == 0.0:
        bk, bh, bl, bc = float(bucket), h, lo, c
    else:
        bk, bh, bl, bc = s.bucket, max(s.bucket_high, h), min(s.bucket_low, lo), c
    entry_lb = int(q.entry_lookback)
    lp, lpre, neg_low = block_max_push(buf, lows, entry_lb, int(s.lows_pos), s.lows_prefix, -lo)
    hp, hpre, high_max = block_max_push(buf, highs, entry_lb, int(s.highs_pos), s.highs_prefix, h)
    close, ema_f, rsi, atr = f[F_CLOSE], f[F_EMA_FAST], f[F_RSI], f[F_ATR]
    prev_c, prev_e = s.prev_close, s.prev_ema_fast
    full = s.bars + 1.0 >= entry_lb
    s = MultiTimeframeState(
        bk, bh, bl, bc, 1.0, close, ema_f, s.htf_ema_seen, s.htf_ema_sum, s.htf_ema, s.htf_atr_seen,
        s.htf_atr_prev_close, s.htf_atr_value, s.htf_atr, s.bars + 1.0, s.emas_count, s.emas_pos,
        float(lp), lpre, float(hp), hpre)
    if ts + base_ms >= bucket + htf_ms:
        s = _mtf_close_bucket(q, s, buf, emas)

    trend_n = int(q.trend_lookback) + 1
    if not (full and int(s.emas_count) >= trend_n and np.isfinite(ema_f) and np.isfinite(rsi)
            and np.isfinite(atr) and np.isfinite(prev_e) and prev_c > 0.0):
        return s, hold_vote(0.0)
    pos = int(s.emas_pos)
    oldest = buf[emas + pos]
    newest = buf[emas + (pos - 1 if pos > 0 else trend_n - 1)]
    htf_atr = s.htf_atr
    trend = 0.0
    if np.isfinite(htf_atr) and htf_atr / close > q.min_volatility:
        g = newest / oldest - 1.0
        if g > q.min_trend_strength and close > newest:
            trend = 1.0
        elif g < -q.min_trend_strength and close < newest:
            trend = -1.0
    cross = 0.0
    if prev_c <= prev_e and close > ema_f:
        cross = 1.0
    elif prev_c >= prev_e and close < ema_f:
        cross = -1.0
    rsi_vote = 1.0 if rsi <= q.rsi_oversold else (-1.0 if rsi >= q.rsi_overbought else 0.0)
    pullback = 0.0
    if cross == 1.0 and close > -neg_low * 1.005:
        pullback = 1.0
    elif cross == -1.0 and close < high_max * 0.995:
        pullback = -1.0
    ups = (cross == 1.0) + (rsi_vote == 1.0) + (pullback == 1.0)
    downs = (cross == -1.0) + (rsi_vote == -1.0) + (pullback == -1.0)
    entry = 1.0 if ups >= 2 else (-1.0 if downs >= 2 else 0.0)
    score = q.trend_weight * trend + q.entry_weight * entry
    conf = clamp(abs(score), 0.0, 1.0)
    if conf < q.min_confidence or score == 0.0:
        return s, hold_vote(0.0)
    return s, emit_vote(1.0 if score > 0.0 else -1.0, conf, close, atr * q.sl_atr, atr * q.tp_atr)


@njit(cache=True)
def multi_timeframe_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Step driver of `multi_timeframe_core` over a state array."""
    q = MultiTimeframeParams(*to_fixed_tuple(p, MT_N_PARAMS))  # type: ignore[call-arg]
    _check(st, _mtf_offsets(q)[3])
    s, r = multi_timeframe_core(q, MultiTimeframeState(*to_fixed_tuple(st, MT_N_STATE)), _data_pointer(st), 0, ts,
                                bar[0], bar[1], bar[2], bar[3], bar[4], f)
    store_state(st, 0, s)
    _write(out, r)


# ---------------------------------------------------------------------------------- DonchianChannel
DONCHIAN_CHANNEL = declare(
    "donchian_channel",
    params=("breakout_threshold", "breakout_volume_ratio", "breakout_confidence", "reversal_threshold",
            "weak_zone_low", "weak_zone_high", "middle_zone_min", "middle_zone_max", "weak_signal_confidence",
            "min_confidence", "sl_atr", "tp_atr"),
    state=(("prev_high", 0.0, "previous bar's channel high"), ("prev_low", 0.0, "previous bar's channel low")),
    features=(F_CLOSE, F_ATR, F_CH_POS, F_VOL_RATIO, F_DC_HIGH, F_DC_LOW),
)
DonchianChannelParams, DonchianChannelState = DONCHIAN_CHANNEL.params, DONCHIAN_CHANNEL.state
DC_P, DC_S = DONCHIAN_CHANNEL.P, DONCHIAN_CHANNEL.S
DC_N_PARAMS, DC_N_STATE = DONCHIAN_CHANNEL.n_params, DONCHIAN_CHANNEL.n_state


@njit(cache=True)
def donchian_state_size(p: np.ndarray) -> int:
    return DC_N_STATE


@njit(cache=True, inline="always")
def donchian_channel_core(q: Any, s: Any, buf: Any, b: int, ts: int, o: float, h: float, lo: float, c: float,
                          v: float, f: Any) -> tuple[Any, tuple[float, float, float, float]]:
    """Channel breakout/reversal zones (seed §4.6). Breakouts compare the close with the PREVIOUS bar's
    channel: the current bar is inside its own channel, which is why the seed's breakout could never fire."""
    close, atr, pos, vr = f[F_CLOSE], f[F_ATR], f[F_CH_POS], f[F_VOL_RATIO]
    prev_hi, prev_lo = s.prev_high, s.prev_low
    s = DonchianChannelState(f[F_DC_HIGH], f[F_DC_LOW])
    if not (np.isfinite(atr) and np.isfinite(pos) and np.isfinite(vr) and prev_hi > 0.0) or close <= 0.0:
        return s, hold_vote(0.0)
    vol = atr / close
    vol_bonus = 0.1 if 0.01 <= vol <= 0.03 else 0.0
    volume_bonus = min(0.1, 0.2 * (vr - 1.0)) if vr > 1.0 else 0.0
    side = 0.0
    conf = 0.0
    if close > prev_hi * (1.0 + q.breakout_threshold) and vr > q.breakout_volume_ratio:
        side, conf = 1.0, q.breakout_confidence
    elif close < prev_lo * (1.0 - q.breakout_threshold) and vr > q.breakout_volume_ratio:
        side, conf = -1.0, q.breakout_confidence
    elif pos < q.reversal_threshold:
        side, conf = 1.0, clamp(0.3 + 0.3 * (1.0 - pos) + vol_bonus + volume_bonus, 0.2, 0.9)
    elif pos > 1.0 - q.reversal_threshold:
        side, conf = -1.0, clamp(0.3 + 0.3 * pos + vol_bonus + volume_bonus, 0.2, 0.9)
    elif q.weak_zone_low <= pos < q.middle_zone_min:
        span = q.middle_zone_min - q.weak_zone_low
        side = 1.0
        conf = clamp(q.weak_signal_confidence + 0.2 * (q.middle_zone_min - pos) / span + vol_bonus + volume_bonus,
                     0.25, 0.6)
    elif q.middle_zone_max < pos <= q.weak_zone_high:
        span = q.weak_zone_high - q.middle_zone_max
        side = -1.0
        conf = clamp(q.weak_signal_confidence + 0.2 * (pos - q.middle_zone_max) / span + vol_bonus + volume_bonus,
                     0.25, 0.6)
    if side == 0.0 or conf < q.min_confidence:
        return s, hold_vote(0.0)
    return s, emit_vote(side, conf, close, atr * q.sl_atr, atr * q.tp_atr)


@njit(cache=True)
def donchian_channel_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Step driver of `donchian_channel_core` over a state array."""
    _check(st, DC_N_STATE)
    q = DonchianChannelParams(*to_fixed_tuple(p, DC_N_PARAMS))  # type: ignore[call-arg]
    s, r = donchian_channel_core(q, DonchianChannelState(*to_fixed_tuple(st, DC_N_STATE)), _data_pointer(st), 0, ts,
                                 bar[0], bar[1], bar[2], bar[3], bar[4], f)
    store_state(st, 0, s)
    _write(out, r)


# --------------------------------------------------------------------------------- ADXTrendStrength
ADX_TREND_STRENGTH = declare(
    "adx_trend_strength",
    params=("strong_trend_threshold", "weak_trend_threshold", "di_crossover_threshold", "weak_di_threshold",
            "moderate_di_threshold", "di_weak_signal_confidence", "min_confidence", "sl_atr", "tp_atr",
            "strong_trend_multiplier", "trade_weak_trend"),
    state=(("prev_adx", 0.0, "previous bar's ADX"), ("prev_diff", 0.0, "previous bar's +DI − −DI")),
    features=(F_CLOSE, F_ATR, F_ADX, F_VOL_RATIO, F_PLUS_DI, F_MINUS_DI),
)
AdxTrendStrengthParams, AdxTrendStrengthState = ADX_TREND_STRENGTH.params, ADX_TREND_STRENGTH.state
AD_P, AD_S = ADX_TREND_STRENGTH.P, ADX_TREND_STRENGTH.S
AD_N_PARAMS, AD_N_STATE = ADX_TREND_STRENGTH.n_params, ADX_TREND_STRENGTH.n_state


@njit(cache=True)
def adx_state_size(p: np.ndarray) -> int:
    return AD_N_STATE


@njit(cache=True, inline="always")
def adx_trend_strength_core(q: Any, s: Any, buf: Any, b: int, ts: int, o: float, h: float, lo: float, c: float,
                            v: float, f: Any) -> tuple[Any, tuple[float, float, float, float]]:
    """Trend strength and DI crossovers (seed §4.7). The seed's weak-trend branch — trading the DI side
    when there is *no* trend — is kept (it is the seed's rule) but can be switched off in config."""
    close, atr, adx, vr = f[F_CLOSE], f[F_ATR], f[F_ADX], f[F_VOL_RATIO]
    diff = f[F_PLUS_DI] - f[F_MINUS_DI]
    prev_adx, prev_diff = s.prev_adx, s.prev_diff
    s = AdxTrendStrengthState(adx, diff)
    if not (np.isfinite(adx) and np.isfinite(diff) and np.isfinite(atr) and np.isfinite(vr)
            and np.isfinite(prev_adx) and np.isfinite(prev_diff) and prev_adx > 0.0):
        return s, hold_vote(0.0)
    strong = adx >= q.strong_trend_threshold
    weak = adx < q.weak_trend_threshold
    rising = 1.0 if adx > prev_adx else 0.0
    bull_cross = diff > 0.0 and prev_diff <= 0.0 and abs(diff) >= q.di_crossover_threshold
    bear_cross = diff < 0.0 and prev_diff >= 0.0 and abs(diff) >= q.di_crossover_threshold
    adx_bonus = min(0.3, 0.015 * (adx - q.strong_trend_threshold)) if strong else (0.0 if weak else 0.1)
    volume_bonus = min(0.1, 0.2 * (vr - 1.0)) if vr > 1.2 else 0.0
    k = q.strong_trend_multiplier if strong else 1.0
    side = 0.0
    conf = 0.0
    if strong and rising == 1.0 and (bull_cross or bear_cross):
        side = 1.0 if bull_cross else -1.0
        conf = clamp(0.3 + adx_bonus + 0.1 * rising + min(0.2, 0.02 * abs(diff)) + 0.15 + volume_bonus, 0.2, 0.9)
    elif not strong and not weak and abs(diff) >= q.moderate_di_threshold and vr > 1.1:
        side = 1.0 if diff > 0.0 else -1.0
        cross_bonus = 0.15 if (bull_cross and side > 0.0) or (bear_cross and side < 0.0) else 0.0
        conf = clamp(0.3 + adx_bonus + 0.1 * rising + min(0.2, 0.02 * abs(diff)) + cross_bonus + volume_bonus, 0.2, 0.9)
    elif weak and q.trade_weak_trend > 0.0 and abs(diff) >= q.weak_di_threshold:
        side = 1.0 if diff > 0.0 else -1.0
        weak_volume = min(0.1, 0.2 * (vr - 1.0)) if vr > 1.1 else 0.0
        conf = clamp(q.di_weak_signal_confidence + min(0.2, 0.04 * abs(diff)) + 0.05 * rising + weak_volume, 0.25, 0.6)
    if side == 0.0 or conf < q.min_confidence:
        return s, hold_vote(0.0)
    return s, emit_vote(side, conf, close, atr * q.sl_atr * k, atr * q.tp_atr * k)


@njit(cache=True)
def adx_trend_strength_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Step driver of `adx_trend_strength_core` over a state array."""
    _check(st, AD_N_STATE)
    q = AdxTrendStrengthParams(*to_fixed_tuple(p, AD_N_PARAMS))  # type: ignore[call-arg]
    s, r = adx_trend_strength_core(q, AdxTrendStrengthState(*to_fixed_tuple(st, AD_N_STATE)), _data_pointer(st), 0,
                                   ts, bar[0], bar[1], bar[2], bar[3], bar[4], f)
    store_state(st, 0, s)
    _write(out, r)


# ------------------------------------------------------------------------- EMA crossover (the example)
EMA_CROSS = declare(
    "ema_cross",
    params=("fast", "slow", "sl_pct", "tp_pct"),
    state=(("fast_seen", 0.0, "fast EMA: closes seen"), ("fast_sum", 0.0, "fast EMA: seed sum"),
           ("fast_ema", 0.0, "fast EMA value"), ("slow_seen", 0.0, "slow EMA: closes seen"),
           ("slow_sum", 0.0, "slow EMA: seed sum"), ("slow_ema", 0.0, "slow EMA value"),
           ("prev_diff", 0.0, "previous fast − slow")),
    features=(),  # its EMAs are its own state: periods apart from the feature set's
)
EmaCrossParams, EmaCrossState = EMA_CROSS.params, EMA_CROSS.state
EC_P, EC_S = EMA_CROSS.P, EMA_CROSS.S
EC_N_PARAMS, EC_N_STATE = EMA_CROSS.n_params, EMA_CROSS.n_state


@njit(cache=True)
def ema_cross_state_size(p: np.ndarray) -> int:
    return EC_N_STATE


@njit(cache=True, inline="always")
def ema_cross_core(q: Any, s: Any, buf: Any, b: int, ts: int, o: float, h: float, lo: float, c: float, v: float,
                   f: Any) -> tuple[Any, tuple[float, float, float, float]]:
    """Long when EMA(fast) crosses above EMA(slow), short/exit on the opposite cross; percent stops
    (`sl_pct` / `tp_pct` of the close, 0 = none)."""
    fs, fsum, fv, fast = ema_block(s.fast_seen, s.fast_sum, s.fast_ema, float(int(q.fast)), c, False)
    ss, ssum, sv, slow = ema_block(s.slow_seen, s.slow_sum, s.slow_ema, float(int(q.slow)), c, False)
    diff = fast - slow
    prev = s.prev_diff
    s = EmaCrossState(fs, fsum, fv, ss, ssum, sv, diff)
    if not (np.isfinite(diff) and np.isfinite(prev)):
        return s, hold_vote(0.0)
    side = 1.0 if (prev <= 0.0 < diff) else (-1.0 if (prev >= 0.0 > diff) else 0.0)
    if side == 0.0:
        return s, hold_vote(0.0)
    sl_pct, tp_pct = q.sl_pct, q.tp_pct
    return s, levels_vote(side, 1.0, c * (1.0 - side * sl_pct) if sl_pct > 0.0 else NAN,
                          c * (1.0 + side * tp_pct) if tp_pct > 0.0 else NAN)


@njit(cache=True)
def ema_cross_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Step driver of `ema_cross_core` over a state array."""
    _check(st, EC_N_STATE)
    q = EmaCrossParams(*to_fixed_tuple(p, EC_N_PARAMS))  # type: ignore[call-arg]
    s, r = ema_cross_core(q, EmaCrossState(*to_fixed_tuple(st, EC_N_STATE)), _data_pointer(st), 0, ts,
                          bar[0], bar[1], bar[2], bar[3], bar[4], f)
    store_state(st, 0, s)
    _write(out, r)


# The built-ins in registration order: (declaration, core, step driver, state size).
BUILTINS: tuple[tuple[Layout, Any, Any, Any], ...] = (
    (ATR_BASED, atr_based_core, atr_based_step, atr_based_state_size),
    (MOCHIPOY_ALERT, mochipoy_alert_core, mochipoy_alert_step, mochipoy_state_size),
    (MULTI_TIMEFRAME, multi_timeframe_core, multi_timeframe_step, multi_timeframe_state_size),
    (DONCHIAN_CHANNEL, donchian_channel_core, donchian_channel_step, donchian_state_size),
    (ADX_TREND_STRENGTH, adx_trend_strength_core, adx_trend_strength_step, adx_state_size),
    (EMA_CROSS, ema_cross_core, ema_cross_step, ema_cross_state_size),
)
