"""The 15 features as one numba core over scalar state, with a step and a batch driver (design §2.1).

**One declaration.** `PARAMS`, `STATE` and `BUFFERS` below name every parameter, every scalar state value
and every ring buffer once. The numba-visible named tuples (`FeatureParams`, `FeatureState`), the index
constants (`FP`, `FS`), the sizes, the buffer offsets (`feature_layout`), the config packing
(`cryptobot.features.feature_params`), the docs table (`LAYOUT_TABLE`) and the layout digest saved with
every live state (`cryptobot.features.LAYOUT_DIGEST`) are all derived from it, so adding a field touches one place.

**State in registers.** Every indicator is a pure block (`@njit(inline="always")`: scalars in, new scalars
out). `_core` composes them for one bar, sharing one bar counter, one previous bar and one true range.
`features_step` (live) unpacks the float64 state array into a `FeatureState`, calls the core and packs it
back; `features_batch_into` (research) unpacks once and carries the state in locals over the whole history.
Both call the same core with the same arithmetic, so batch = step bit for bit by construction. Ring buffers
(the windows) are the only array state and live after the scalars in the same state array.

Definitions follow TA-Lib (its seeding included): EMA seeded with the SMA of the first n values; MACD's
fast EMA seeded over the n_fast closes ending where the slow EMA's seed ends (TA-Lib's MACD alignment);
Wilder smoothing for RSI, ATR, ±DI and ADX. Non-finite input bars are skipped: the state is not touched
and that bar's outputs are NaN, so one bad bar cannot poison later values. Never `fastmath`: bit identity
with TA-Lib's order of operations and between the drivers relies on no reassociation.

The array-state blocks (`ema_update`, `atr_update`, `window_push` …) are thin wrappers over the same
scalar blocks, for the other kernels (strategies, execution) that keep their state in arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit, types
from numba.extending import intrinsic
from numba.np.unsafe.ndarray import to_fixed_tuple

NAN = np.nan

# ------------------------------------------------------------------------------------- the declaration
# Parameters: (name = the FeaturesConfig field, meaning). Packed in this order into a float64 vector.
PARAMS: tuple[tuple[str, str], ...] = (
    ("rsi_period", "Wilder RSI period"),
    ("macd_fast", "MACD fast EMA period"),
    ("macd_slow", "MACD slow EMA period"),
    ("atr_period", "Wilder ATR period"),
    ("bb_period", "Bollinger window"),
    ("bb_std", "Bollinger band width in population standard deviations"),
    ("ema_fast", "fast EMA period"),
    ("ema_slow", "slow EMA period"),
    ("volume_ratio_period", "volume SMA window"),
    ("donchian_period", "Donchian window"),
    ("adx_period", "Wilder ±DI / ADX period"),
)
# Scalar state: (name, initial value, meaning). The head of the state array, in this order.
STATE: tuple[tuple[str, float, str], ...] = (
    ("bars", 0.0, "finite bars accepted so far (shared bar counter of every block)"),
    ("prev_high", 0.0, "previous accepted bar's high"),
    ("prev_low", 0.0, "previous accepted bar's low"),
    ("prev_close", 0.0, "previous accepted bar's close"),
    ("rsi_gain", 0.0, "RSI: sum, then Wilder average, of gains"),
    ("rsi_loss", 0.0, "RSI: sum, then Wilder average, of losses"),
    ("macd_slow_seen", 0.0, "MACD slow EMA: values seen (saturates at the period)"),
    ("macd_slow_sum", 0.0, "MACD slow EMA: seed sum"),
    ("macd_slow", 0.0, "MACD slow EMA value"),
    ("macd_fast_seen", 0.0, "MACD fast EMA: values seen"),
    ("macd_fast_sum", 0.0, "MACD fast EMA: seed sum"),
    ("macd_fast", 0.0, "MACD fast EMA value"),
    ("atr", 0.0, "ATR: true-range sum, then Wilder ATR"),
    ("ema_fast_seen", 0.0, "fast EMA: values seen"),
    ("ema_fast_sum", 0.0, "fast EMA: seed sum"),
    ("ema_fast", 0.0, "fast EMA value"),
    ("ema_slow_seen", 0.0, "slow EMA: values seen"),
    ("ema_slow_sum", 0.0, "slow EMA: seed sum"),
    ("ema_slow", 0.0, "slow EMA value"),
    ("dmi_plus_dm", 0.0, "DMI: Wilder-smoothed +DM"),
    ("dmi_minus_dm", 0.0, "DMI: Wilder-smoothed −DM"),
    ("dmi_tr", 0.0, "DMI: Wilder-smoothed true range"),
    ("adx", NAN, "ADX value"),
    ("plus_di", NAN, "+DI value"),
    ("minus_di", NAN, "−DI value"),
    ("dx_sum", 0.0, "ADX: sum of the first DX values"),
    ("bb_pos", 0.0, "Bollinger ring: next write position"),
    ("bb_centre", 0.0, "Bollinger ring: centre K of the sums"),
    ("bb_sum", 0.0, "Bollinger ring: Σ(x − K)"),
    ("bb_sum_sq", 0.0, "Bollinger ring: Σ(x − K)²"),
    ("vr_pos", 0.0, "volume ring: next write position"),
    ("vr_centre", 0.0, "volume ring: centre K of the sum"),
    ("vr_sum", 0.0, "volume ring: Σ(x − K)"),
    ("dc_high_pos", 0.0, "Donchian high: position in the current block"),
    ("dc_high_prefix", 0.0, "Donchian high: max of the current block so far"),
    ("dc_low_pos", 0.0, "Donchian low: position in the current block"),
    ("dc_low_prefix", 0.0, "Donchian low: max of −low in the current block so far"),
)
# Ring buffers after the scalars: (name, parameter giving the length, floats per slot, meaning).
BUFFERS: tuple[tuple[str, str, int, str], ...] = (
    ("bb_closes", "bb_period", 1, "closes in the Bollinger window"),
    ("vr_volumes", "volume_ratio_period", 1, "volumes in the volume-ratio window"),
    ("dc_highs", "donchian_period", 2, "highs of the current block, then suffix maxima of the previous one"),
    ("dc_lows", "donchian_period", 2, "−lows of the current block, then suffix maxima of the previous one"),
)


class Derived(NamedTuple):
    """Everything the kernel needs from a declaration: named tuple types, sizes, initial values, digest."""

    params: Any  # namedtuple type FeatureParams
    state: Any  # namedtuple type FeatureState
    n_params: int
    n_state: int
    init: tuple[float, ...]
    buf_param: tuple[int, ...]
    buf_width: tuple[int, ...]
    shape: str  # what the layout digest hashes (cryptobot.features.layout_digest: hashing is not kernel code)
    table: str


def derive(params: tuple[tuple[str, str], ...], state: tuple[tuple[str, float, str], ...],
           buffers: tuple[tuple[str, str, int, str], ...]) -> Derived:
    """Index tuples, sizes, initial state, buffer table and digest of a declaration (used on copies by tests)."""
    param_t = NamedTuple("FeatureParams", [(n, float) for n, _ in params])  # type: ignore[misc]
    state_t = NamedTuple("FeatureState", [(n, float) for n, _, _ in state])  # type: ignore[misc]
    pnames = [n for n, _ in params]
    buf_param = tuple(pnames.index(p) for _, p, _, _ in buffers)
    buf_width = tuple(w for _, _, w, _ in buffers)
    shape = repr((pnames, [(n, v) for n, v, _ in state], [(n, p, w) for n, p, w, _ in buffers]))
    rows = ["| index | state value | initial | meaning |", "|---|---|---|---|"]
    rows += [f"| {i} | `{n}` | {v!r} | {m} |" for i, (n, v, m) in enumerate(state)]
    rows += [f"| then | `{n}` | {w} × `{p}` floats | {m} |" for n, p, w, m in buffers]
    return Derived(param_t, state_t, len(params), len(state), tuple(float(v) for _, v, _ in state),
                   buf_param, buf_width, shape, "\n".join(rows))


_D = derive(PARAMS, STATE, BUFFERS)
FeatureParams = _D.params
FeatureState = _D.state
FP = FeatureParams(*range(_D.n_params))  # parameter indices by name: FP.rsi_period == 0
FS = FeatureState(*range(_D.n_state))  # state indices by name: FS.bars == 0
N_PARAMS: int = _D.n_params
N_STATE: int = _D.n_state
STATE_INIT: tuple[float, ...] = _D.init
BUF_PARAM: tuple[int, ...] = _D.buf_param
BUF_WIDTH: tuple[int, ...] = _D.buf_width
N_BUFFERS = len(BUFFERS)
N_OFFSETS = N_BUFFERS + 1  # feature_layout: each buffer's offset, then the total size

# Positional aliases kept for the other kernels and older callers.
P_RSI, P_MACD_FAST, P_MACD_SLOW, P_ATR, P_BB, P_BB_STD = FP.rsi_period, FP.macd_fast, FP.macd_slow, FP.atr_period, \
    FP.bb_period, FP.bb_std
P_EMA_FAST, P_EMA_SLOW, P_VR, P_DC, P_ADX = FP.ema_fast, FP.ema_slow, FP.volume_ratio_period, FP.donchian_period, \
    FP.adx_period

N_FEATURES = 15
# Output columns, in FEATURE_ORDER.
F_CLOSE, F_VOLUME, F_RSI, F_MACD, F_ATR, F_BB_POS, F_EMA_FAST, F_EMA_SLOW = range(8)
F_VOL_RATIO, F_DC_HIGH, F_DC_LOW, F_CH_POS, F_ADX, F_PLUS_DI, F_MINUS_DI = range(8, 15)

# Blocks of the core a caller may switch off (`_core`'s `need`), and the block each output comes from
# (close and volume are the bar itself: -1). A switched-off block leaves its state as it was and gives NaN.
G_RSI, G_MACD, G_ATR, G_EMA_FAST, G_EMA_SLOW, G_DMI, G_BB, G_VOL_RATIO, G_DONCHIAN = range(9)
N_GROUPS = 9
OUTPUT_GROUP = (-1, -1, G_RSI, G_MACD, G_ATR, G_BB, G_EMA_FAST, G_EMA_SLOW, G_VOL_RATIO, G_DONCHIAN, G_DONCHIAN,
                G_DONCHIAN, G_DMI, G_DMI, G_DMI)
ALL_GROUPS = (True,) * N_GROUPS  # every block: the feature kernel's own drivers (a constant, folded away)


def groups_for(features: tuple[int, ...] | None) -> tuple[bool, ...]:
    """The blocks `_core` must run for these outputs (F_* indices; None: all of them)."""
    if features is None:
        return ALL_GROUPS
    wanted = {OUTPUT_GROUP[f] for f in features}
    return tuple(g in wanted for g in range(N_GROUPS))


LAYOUT_TABLE: str = _D.table  # the state layout as docs/features.md shows it (a test keeps them equal)


# ------------------------------------------------------------------------------------------- blocks
@njit(cache=True, inline="always")
def ema_block(seen: float, total: float, value: float, period: float, x: float, steady: bool
              ) -> tuple[float, float, float, float]:
    """TA-Lib EMA: SMA of the first `period` values, then prev + (x - prev) * 2 / (period + 1).

    Returns (seen, seed sum, value, output); the output is NaN until the seed is complete. `steady` (a
    literal, only once the seed is complete) compiles the warm-up branches away; every block takes it.
    """
    if not steady and seen < period:
        total += x
        seen += 1.0
        if seen == period:
            value = total / period
            return seen, total, value, value
        return seen, total, value, NAN
    value = (x - value) * (2.0 / (period + 1.0)) + value
    return seen, total, value, value


@njit(cache=True, inline="always")
def true_range(high: float, low: float, prev_close: float) -> float:
    tr = high - low
    a = abs(prev_close - high)
    b = abs(prev_close - low)
    if a > tr:
        tr = a
    if b > tr:
        tr = b
    return tr


@njit(cache=True, inline="always")
def rsi_block(seen: float, gain_s: float, loss_s: float, period: float, change: float, steady: bool
              ) -> tuple[float, float, float]:
    """Wilder RSI seeded like TA-Lib (plain average of the first `period` changes); 50 when nothing moved.

    `seen` = bars before this one; `change` = close − previous close. Returns (gain, loss, output).
    """
    if not steady and seen == 0.0:
        return gain_s, loss_s, NAN
    gain = change if change > 0.0 else 0.0
    loss = -change if change < 0.0 else 0.0
    if not steady and seen <= period:
        gain_s += gain
        loss_s += loss
        if seen < period:
            return gain_s, loss_s, NAN
        gain_s /= period
        loss_s /= period
    else:
        gain_s = (gain_s * (period - 1) + gain) / period
        loss_s = (loss_s * (period - 1) + loss) / period
    total = gain_s + loss_s
    return gain_s, loss_s, 50.0 if total == 0.0 else 100.0 * gain_s / total


@njit(cache=True, inline="always")
def atr_block(seen: float, value: float, period: float, tr: float, steady: bool) -> tuple[float, float]:
    """Wilder ATR as TA-Lib: first value = mean of TR over bars 1..period, then (prev*(n-1) + TR) / n."""
    if not steady and seen == 0.0:
        return value, NAN
    if not steady and seen < period:
        return value + tr, NAN
    if not steady and seen == period:
        value = (value + tr) / period
    else:
        value = (value * (period - 1) + tr) / period
    return value, value


@njit(cache=True, inline="always")
def dmi_block(
    seen: float, pdm: float, mdm: float, trs: float, adx: float, pdi: float, mdi: float, dx_sum: float,
    period: float, diff_p: float, diff_m: float, tr: float, steady: bool,
) -> tuple[float, float, float, float, float, float, float]:
    """Wilder ±DI and ADX exactly as TA-Lib sequences them. Returns (+DM, −DM, TR, ADX, +DI, −DI, DX sum).

    ±DI are valid from bar `period`, ADX from bar 2*period - 1; before that they are NaN.
    """
    if not steady and seen == 0.0:
        return pdm, mdm, trs, NAN, NAN, NAN, dx_sum
    plus_dm = 0.0
    minus_dm = 0.0
    if diff_m > 0.0 and diff_p < diff_m:
        minus_dm = diff_m
    elif diff_p > 0.0 and diff_p > diff_m:
        plus_dm = diff_p
    n = period
    if not steady and seen < period:  # accumulate the first period-1 values
        return pdm + plus_dm, mdm + minus_dm, trs + tr, adx, pdi, mdi, dx_sum
    pdm = pdm - pdm / n + plus_dm
    mdm = mdm - mdm / n + minus_dm
    trs = trs - trs / n + tr
    dx = NAN
    if trs != 0.0:
        pdi = 100.0 * (pdm / trs)
        mdi = 100.0 * (mdm / trs)
        total = pdi + mdi
        if total != 0.0:
            dx = 100.0 * (abs(mdi - pdi) / total)
    else:
        pdi = 0.0
        mdi = 0.0
    if not steady and seen <= 2 * period - 1:  # sum the first `period` DX values (bars period .. 2*period-1)
        if dx == dx:
            dx_sum += dx
        if seen == 2 * period - 1:
            adx = dx_sum / n
        return pdm, mdm, trs, adx, pdi, mdi, dx_sum
    if dx == dx:
        adx = (adx * (n - 1.0) + dx) / n
    return pdm, mdm, trs, adx, pdi, mdi, dx_sum


@njit(cache=True, inline="always")
def _ring_sums(buf: np.ndarray, b0: int, filled: int, squares: bool) -> tuple[float, float, float]:
    k = buf[b0]
    s1 = 0.0
    s2 = 0.0
    for i in range(filled):
        d = buf[b0 + i] - k
        s1 += d
        if squares:
            s2 += d * d
    return k, s1, s2


@njit(cache=True, inline="always")
def ring_sums_push(
    buf: np.ndarray, b0: int, period: int, count: int, pos: int, k: float, s1: float, s2: float, x: float,
    squares: bool, steady: bool,
) -> tuple[int, float, float, float]:
    """Push x into a ring of `period` values at buf[b0:]; keep Σ(x−K) (and Σ(x−K)² when `squares`).

    `count` = values pushed before this one. Sums are kept around a centre K (the oldest value at the last
    exact recompute) so variance does not cancel catastrophically at price levels of 1e7; they are
    recomputed exactly once per window length, so long runs cannot drift. Returns (pos, K, s1, s2).
    """
    if not steady and count < period:
        buf[b0 + pos] = x
        pos = pos + 1 if pos + 1 < period else 0
        k, s1, s2 = _ring_sums(buf, b0, count + 1, squares)
        return pos, k, s1, s2
    old = buf[b0 + pos]
    buf[b0 + pos] = x
    pos = pos + 1 if pos + 1 < period else 0
    if pos == 0:
        k, s1, s2 = _ring_sums(buf, b0, period, squares)
        return pos, k, s1, s2
    d_new = x - k
    d_old = old - k
    s1 += d_new - d_old
    if squares:
        s2 += d_new * d_new - d_old * d_old
    return pos, k, s1, s2


@njit(cache=True, inline="always")
def block_max_push(buf: np.ndarray, b0: int, period: int, pos: int, prefix: float, x: float
                   ) -> tuple[int, float, float]:
    """Exact rolling max of the last `period` values without rescans: van Herk/Gil-Werman, streaming.

    History is cut into blocks of `period` bars. The window ending now = the tail of the previous block
    (its suffix maxima, kept at buf[b0 + period + j]) plus the current block so far (its running prefix
    max). When a block completes, one backward pass over its values (kept at buf[b0 + j]) makes its suffix
    maxima: O(1) per bar, no data-dependent branches. Returns (pos, prefix, max); the max is valid once
    `period` values were pushed. For a rolling min push −x and negate the result (exact).
    """
    buf[b0 + pos] = x
    if pos == 0 or x > prefix:
        prefix = x
    if pos + 1 < period:
        tail = buf[b0 + period + pos + 1]
        return pos + 1, prefix, tail if tail > prefix else prefix
    run = x
    buf[b0 + 2 * period - 1] = run
    for j in range(period - 2, -1, -1):
        y = buf[b0 + j]
        if y > run:
            run = y
        buf[b0 + period + j] = run
    return 0, prefix, prefix


@intrinsic
def _data_pointer(typingctx: Any, arr: Any) -> Any:
    """The raw data pointer of a contiguous array: indexing it costs no reference counting per bar."""
    sig = types.CPointer(arr.dtype)(arr)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return sig, codegen


# -------------------------------------------------------------------------------------- the core
@njit(cache=True, inline="always")
def _core(q: Any, s: Any, buf: Any, off: np.ndarray, o: float, h: float, lo: float, c: float,
          v: float, steady: bool, need: Any) -> tuple[Any, tuple[float, ...]]:
    """One accepted (finite) bar: new state and the 15 outputs in FEATURE_ORDER. The only implementation.

    `need` (N_GROUPS booleans, `groups_for`): the blocks to run; a block switched off keeps its state and
    gives NaN — for a state nobody reads afterwards (the feature kernel's drivers pass ALL_GROUPS)."""
    seen = s.bars
    tr = true_range(h, lo, s.prev_close)
    rsi_gain, rsi_loss, rsi = s.rsi_gain, s.rsi_loss, NAN
    if need[G_RSI]:
        rsi_gain, rsi_loss, rsi = rsi_block(seen, rsi_gain, rsi_loss, q.rsi_period, c - s.prev_close, steady)

    ms_seen, ms_sum, ms, slow_out = s.macd_slow_seen, s.macd_slow_sum, s.macd_slow, NAN
    mf_seen, mf_sum, mf, fast_out = s.macd_fast_seen, s.macd_fast_sum, s.macd_fast, NAN
    if need[G_MACD]:
        ms_seen, ms_sum, ms, slow_out = ema_block(ms_seen, ms_sum, ms, q.macd_slow, c, steady)
        if steady or seen >= q.macd_slow - q.macd_fast:  # TA-Lib's alignment: both seeds end on the same bar
            mf_seen, mf_sum, mf, fast_out = ema_block(mf_seen, mf_sum, mf, q.macd_fast, c, steady)

    atr, atr_out = s.atr, NAN
    if need[G_ATR]:
        atr, atr_out = atr_block(seen, atr, q.atr_period, tr, steady)
    ef_seen, ef_sum, ef, ef_out = s.ema_fast_seen, s.ema_fast_sum, s.ema_fast, NAN
    if need[G_EMA_FAST]:
        ef_seen, ef_sum, ef, ef_out = ema_block(ef_seen, ef_sum, ef, q.ema_fast, c, steady)
    es_seen, es_sum, es, es_out = s.ema_slow_seen, s.ema_slow_sum, s.ema_slow, NAN
    if need[G_EMA_SLOW]:
        es_seen, es_sum, es, es_out = ema_block(es_seen, es_sum, es, q.ema_slow, c, steady)
    pdm, mdm, trs, adx, pdi, mdi, dx_sum = (s.dmi_plus_dm, s.dmi_minus_dm, s.dmi_tr, s.adx, s.plus_di, s.minus_di,
                                            s.dx_sum)
    adx_out, pdi_out, mdi_out = NAN, NAN, NAN
    if need[G_DMI]:
        pdm, mdm, trs, adx, pdi, mdi, dx_sum = dmi_block(
            seen, pdm, mdm, trs, adx, pdi, mdi, dx_sum, q.adx_period, h - s.prev_high, s.prev_low - lo, tr, steady)
        adx_out, pdi_out, mdi_out = adx, pdi, mdi

    count = int(seen)
    bb_pos, bb_k, bb_s1, bb_s2 = int(s.bb_pos), s.bb_centre, s.bb_sum, s.bb_sum_sq
    bb = NAN
    if need[G_BB]:
        bb_n = int(q.bb_period)
        bb_pos, bb_k, bb_s1, bb_s2 = ring_sums_push(buf, off[0], bb_n, count, bb_pos, bb_k, bb_s1, bb_s2, c, True,
                                                    steady)
        if steady or count + 1 >= bb_n:
            mid = bb_k + bb_s1 / bb_n
            m = bb_s1 / bb_n
            var = bb_s2 / bb_n - m * m
            width = 2.0 * q.bb_std * (np.sqrt(var) if var > 0.0 else 0.0)
            bb = 0.5 if width <= 0.0 else (c - (mid - 0.5 * width)) / width

    vr_pos, vr_k, vr_s1 = int(s.vr_pos), s.vr_centre, s.vr_sum
    vr = NAN
    if need[G_VOL_RATIO]:
        vr_n = int(q.volume_ratio_period)
        vr_pos, vr_k, vr_s1, _ = ring_sums_push(buf, off[1], vr_n, count, vr_pos, vr_k, vr_s1, 0.0, v, False, steady)
        if steady or count + 1 >= vr_n:
            avg = vr_k + vr_s1 / vr_n
            vr = v / avg if avg > 0.0 else NAN

    hp, hpre, lp, lpre = int(s.dc_high_pos), s.dc_high_prefix, int(s.dc_low_pos), s.dc_low_prefix
    dc_hi = NAN
    dc_lo = NAN
    ch = NAN
    if need[G_DONCHIAN]:
        dc_n = int(q.donchian_period)
        hp, hpre, upper = block_max_push(buf, off[2], dc_n, hp, hpre, h)
        lp, lpre, neg_lower = block_max_push(buf, off[3], dc_n, lp, lpre, -lo)
        lower = -neg_lower
        if steady or count + 1 >= dc_n:
            dc_hi = upper
            dc_lo = lower
            ch = 0.5 if upper <= lower else (c - lower) / (upper - lower)

    new = FeatureState(
        bars=seen + 1.0, prev_high=h, prev_low=lo, prev_close=c, rsi_gain=rsi_gain, rsi_loss=rsi_loss,
        macd_slow_seen=ms_seen, macd_slow_sum=ms_sum, macd_slow=ms,
        macd_fast_seen=mf_seen, macd_fast_sum=mf_sum, macd_fast=mf, atr=atr,
        ema_fast_seen=ef_seen, ema_fast_sum=ef_sum, ema_fast=ef, ema_slow_seen=es_seen, ema_slow_sum=es_sum,
        ema_slow=es, dmi_plus_dm=pdm, dmi_minus_dm=mdm, dmi_tr=trs, adx=adx, plus_di=pdi, minus_di=mdi,
        dx_sum=dx_sum, bb_pos=float(bb_pos), bb_centre=bb_k, bb_sum=bb_s1, bb_sum_sq=bb_s2,
        vr_pos=float(vr_pos), vr_centre=vr_k, vr_sum=vr_s1,
        dc_high_pos=float(hp), dc_high_prefix=hpre, dc_low_pos=float(lp), dc_low_prefix=lpre,
    )
    outs = (c, v, rsi, fast_out - slow_out, atr_out, bb, ef_out, es_out, vr, dc_hi, dc_lo, ch, adx_out, pdi_out,
            mdi_out)
    return new, outs


# ------------------------------------------------------------------------------------- the drivers
@njit(cache=True)
def _layout(n_state: int, buf_param: tuple[int, ...], buf_width: tuple[int, ...], p: np.ndarray) -> np.ndarray:
    off = np.empty(len(buf_param) + 1, dtype=np.int64)
    size = n_state
    for b in range(len(buf_param)):
        off[b] = size
        size += buf_width[b] * int(p[buf_param[b]])
    off[len(buf_param)] = size
    return off


@njit(cache=True)
def feature_layout(p: np.ndarray) -> np.ndarray:
    """Offsets of each ring buffer (in BUFFERS order) in the state array; the last entry is the total size."""
    return _layout(N_STATE, BUF_PARAM, BUF_WIDTH, p)


@njit(cache=True)
def features_init(p: np.ndarray) -> np.ndarray:
    off = feature_layout(p)
    st = np.zeros(off[N_BUFFERS], dtype=np.float64)
    for i in range(N_STATE):
        st[i] = STATE_INIT[i]
    return st


@njit(cache=True)
def features_warmup(p: np.ndarray) -> np.ndarray:
    """Bars of NaN before each feature is valid (index of its first value), in FEATURE_ORDER."""
    w = np.zeros(N_FEATURES, dtype=np.int64)
    w[F_RSI] = int(p[FP.rsi_period])
    w[F_MACD] = int(p[FP.macd_slow]) - 1
    w[F_ATR] = int(p[FP.atr_period])
    w[F_BB_POS] = int(p[FP.bb_period]) - 1
    w[F_EMA_FAST] = int(p[FP.ema_fast]) - 1
    w[F_EMA_SLOW] = int(p[FP.ema_slow]) - 1
    w[F_VOL_RATIO] = int(p[FP.volume_ratio_period]) - 1
    w[F_DC_HIGH] = int(p[FP.donchian_period]) - 1
    w[F_DC_LOW] = int(p[FP.donchian_period]) - 1
    w[F_CH_POS] = int(p[FP.donchian_period]) - 1
    w[F_ADX] = 2 * int(p[FP.adx_period]) - 1
    w[F_PLUS_DI] = int(p[FP.adx_period])
    w[F_MINUS_DI] = int(p[FP.adx_period])
    return w


@njit(cache=True, inline="always")
def _load(st: np.ndarray) -> Any:
    return FeatureState(*to_fixed_tuple(st, N_STATE))  # type: ignore[call-arg]


@njit(cache=True, inline="always")
def _store(st: np.ndarray, s: Any) -> None:
    for i in range(N_STATE):
        st[i] = s[i]


@njit(cache=True, inline="always")
def _params(p: np.ndarray) -> Any:
    return FeatureParams(*to_fixed_tuple(p, N_PARAMS))  # type: ignore[call-arg]


@njit(cache=True, inline="always")
def buffer_offsets(off: np.ndarray) -> Any:
    """`feature_layout` as a tuple of ints for the core: an array handed to an inlined core costs a
    reference-count increment and decrement (two calls with atomics) every bar; a tuple costs nothing."""
    return to_fixed_tuple(off, N_OFFSETS)  # type: ignore[call-arg]


@njit(cache=True, inline="always")
def _check_size(st: np.ndarray, off: np.ndarray) -> None:
    """The buffers are reached through a raw pointer, so a state of the wrong size must never get that far."""
    if st.shape[0] != off[N_BUFFERS]:
        raise ValueError("feature state array does not match the layout of these parameters; rebuild it")


@njit(cache=True)
def features_step(
    st: np.ndarray, p: np.ndarray, off: np.ndarray, o: float, h: float, lo: float, c: float, v: float, out: np.ndarray
) -> bool:
    """One closed bar → 15 features in `out`. Returns False (outputs NaN, state untouched) for a bad bar."""
    if not np.isfinite(o + h + lo + c + v):  # any NaN/inf makes the sum non-finite
        for k in range(N_FEATURES):
            out[k] = NAN
        return False
    _check_size(st, off)
    s, r = _core(_params(p), _load(st), _data_pointer(st), buffer_offsets(off), o, h, lo, c, v, False,  # type: ignore[call-arg]
                 ALL_GROUPS)
    _store(st, s)
    for k in range(N_FEATURES):
        out[k] = r[k]
    return True


@njit(cache=True, inline="always")
def _warm_bars(q: Any) -> float:
    """Bars after which no block takes a warm-up branch any more (so the `steady` core is exact)."""
    return max(q.rsi_period + 1.0, q.atr_period + 1.0, 2.0 * q.adx_period, q.macd_slow, q.ema_fast, q.ema_slow,
               q.bb_period, q.volume_ratio_period, q.donchian_period)


N_COMPUTED = N_FEATURES - 2  # the batch driver's output columns: every feature but close and volume (the inputs)


@njit(cache=True, inline="always")
def _run(q: Any, s: Any, buf: Any, off: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
         v: np.ndarray, out: Any, i: int, warm: float, steady: bool, bad: int) -> tuple[Any, int, int]:
    """Rows i.. through the core into the column pointers `out`; the non-steady run stops once every block is warm.

    Returns the state, the next row and the count of non-finite (skipped) bars so far.
    """
    n = c.shape[0]
    while i < n:
        if not steady and s.bars >= warm:
            break
        if not np.isfinite(o[i] + h[i] + lo[i] + c[i] + v[i]):
            for k in range(N_COMPUTED):
                out[k][i] = NAN
            bad += 1
        else:
            s, r = _core(q, s, buf, off, o[i], h[i], lo[i], c[i], v[i], steady, ALL_GROUPS)
            (out[0][i], out[1][i], out[2][i], out[3][i], out[4][i], out[5][i], out[6][i], out[7][i], out[8][i],
             out[9][i], out[10][i], out[11][i], out[12][i]) = r[2:]
        i += 1
    return s, i, bad


@njit(cache=True, nogil=True)
def features_batch_into(
    st: np.ndarray, p: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray,
    columns: Any,
) -> int:
    """The same core as `features_step` over history, state carried in locals; returns the bad-bar count.

    `columns` holds the N_COMPUTED contiguous float64 outputs (FEATURE_ORDER without close and volume,
    which are the inputs themselves: copying 2 × n floats would only cost time), len(c) rows each. Separate
    columns, not one (n, 15) block, so callers wrap them without copying. Until every block is warm the
    core runs as in the step; after that its `steady` specialisation, where the warm-up branches are
    compiled away (same arithmetic, so still bit for bit the step's numbers). Releases the GIL, so the
    caller can map the output pages on another core meanwhile (`cryptobot.prefault`).
    """
    off = feature_layout(p)
    _check_size(st, off)
    n = c.shape[0]
    if len(columns) != N_COMPUTED:
        raise ValueError("features_batch_into takes the 13 computed columns (see feature_columns)")
    for k in range(N_COMPUTED):
        if columns[k].shape[0] != n:
            raise ValueError("every output column must have one row per input bar")
    q = _params(p)
    buf: Any = _data_pointer(st)  # type: ignore[call-arg]
    out = (_data_pointer(columns[0]), _data_pointer(columns[1]), _data_pointer(columns[2]),
           _data_pointer(columns[3]), _data_pointer(columns[4]), _data_pointer(columns[5]),
           _data_pointer(columns[6]), _data_pointer(columns[7]), _data_pointer(columns[8]),
           _data_pointer(columns[9]), _data_pointer(columns[10]), _data_pointer(columns[11]),
           _data_pointer(columns[12]))
    offs = buffer_offsets(off)
    s, i, bad = _run(q, _load(st), buf, offs, o, h, lo, c, v, out, 0, _warm_bars(q), False, 0)
    s, i, bad = _run(q, s, buf, offs, o, h, lo, c, v, out, i, 0.0, True, bad)
    _store(st, s)
    return bad


def feature_columns(n: int) -> tuple[np.ndarray, ...]:
    """The N_COMPUTED output columns for `features_batch_into`, allocated by NumPy (faster than inside numba)."""
    return tuple(np.empty(n, dtype=np.float64) for _ in range(N_COMPUTED))


def input_column(x: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray
                 ) -> np.ndarray:
    """The close or volume feature column when some bars were skipped: the input, NaN on every skipped bar."""
    return np.where(np.isfinite(o + h + lo + c + v), x, NAN)


def features_batch(st: np.ndarray, p: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                   v: np.ndarray) -> np.ndarray:
    """`features_batch_into` as one (n, 15) array in FEATURE_ORDER (for tests and callers that want a matrix)."""
    columns = feature_columns(c.shape[0])
    features_batch_into(st, p, o, h, lo, c, v, columns)
    return np.column_stack((input_column(c, o, h, lo, c, v), input_column(v, o, h, lo, c, v)) + columns)


# ------------------------------------------------------- array-state wrappers for the other kernels
EMA_SIZE = 4  # [values seen, seed sum, value, unused]
ATR_SIZE = 3  # [bars seen, previous close, TR sum then ATR]
WIN_HEADER = 7  # [count, position, centre K, sum(x-K), sum((x-K)^2), max, min] followed by the buffer


@njit(cache=True)
def ema_update(st: np.ndarray, o: int, period: int, x: float) -> float:
    """`ema_block` on state st[o:o+EMA_SIZE]."""
    seen, total, value, out = ema_block(st[o], st[o + 1], st[o + 2], float(period), x, False)
    st[o] = seen
    st[o + 1] = total
    st[o + 2] = value
    return out


@njit(cache=True)
def atr_update(st: np.ndarray, o: int, period: int, high: float, low: float, close: float) -> float:
    """`atr_block` on state st[o:o+ATR_SIZE] (it keeps its own previous close)."""
    seen = st[o]
    tr = true_range(high, low, st[o + 1])
    value, out = atr_block(seen, st[o + 2], float(period), tr, False)
    st[o] = seen + 1.0
    st[o + 1] = close
    st[o + 2] = value
    return out


@njit(cache=True)
def window_size(period: int) -> int:
    return WIN_HEADER + period


@njit(cache=True)
def window_push(st: np.ndarray, o: int, period: int, x: float) -> bool:
    """Add x to a rolling window of `period` values keeping sums (`ring_sums_push`), max and min; True once full.

    Max/min are rescanned only when the value leaving the window was the extreme.
    """
    count = int(st[o])
    buf = o + WIN_HEADER
    old = st[buf + int(st[o + 1])]
    pos, k, s1, s2 = ring_sums_push(st, buf, period, count, int(st[o + 1]), st[o + 2], st[o + 3], st[o + 4], x,
                                    True, False)
    st[o] = min(count + 1, period)
    st[o + 1] = pos
    st[o + 2] = k
    st[o + 3] = s1
    st[o + 4] = s2
    mx = st[o + 5]
    mn = st[o + 6]
    if count < period:
        mx, mn = _scan(st, buf, count + 1)
    else:
        if x >= mx:
            mx = x
        elif old == mx:
            mx = _scan(st, buf, period)[0]
        if x <= mn:
            mn = x
        elif old == mn:
            mn = _scan(st, buf, period)[1]
    st[o + 5] = mx
    st[o + 6] = mn
    return count + 1 >= period


@njit(cache=True)
def _scan(st: np.ndarray, buf: int, filled: int) -> tuple[float, float]:
    mx = -np.inf
    mn = np.inf
    for i in range(filled):
        y = st[buf + i]
        if y > mx:
            mx = y
        if y < mn:
            mn = y
    return mx, mn


@njit(cache=True)
def window_mean(st: np.ndarray, o: int, period: int) -> float:
    return st[o + 2] + st[o + 3] / period


@njit(cache=True)
def window_std(st: np.ndarray, o: int, period: int) -> float:
    """Population standard deviation (TA-Lib STDDEV / BBANDS use ddof 0)."""
    m = st[o + 3] / period
    var = st[o + 4] / period - m * m
    return np.sqrt(var) if var > 0.0 else 0.0


@njit(cache=True)
def window_max(st: np.ndarray, o: int) -> float:
    return st[o + 5]


@njit(cache=True)
def window_min(st: np.ndarray, o: int) -> float:
    return st[o + 6]
