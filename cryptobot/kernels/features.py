"""The 15 features as numba step kernels over one float64 state array (design §2.1).

Every indicator is a small *block* living at an offset inside the state array and updated in O(1) per bar
(amortised: rolling windows re-centre and recompute their sums exactly once per window length, so long
runs cannot drift). `features_step` updates all blocks for one closed bar and writes 15 outputs;
`features_batch` loops the same step over history. Because both paths call the same code the live stepper
and the backtest agree bit for bit.

Definitions follow TA-Lib (its seeding included): EMA seeded with the SMA of the first n values; MACD's
fast EMA seeded over the n_fast closes ending where the slow EMA's seed ends (TA-Lib's MACD alignment);
Wilder smoothing for RSI, ATR, ±DI and ADX. Non-finite input bars are skipped: the state is not touched
and that bar's outputs are NaN, so one bad bar cannot poison later values.

The blocks (`ema_update`, `atr_update`, `rsi_update`, `window_push` …) are public so other kernels (the
strategies) reuse them instead of writing a second EMA.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NAN = np.nan

# Parameter vector layout (float64 array), built from FeaturesConfig by cryptobot.features.
P_RSI, P_MACD_FAST, P_MACD_SLOW, P_ATR, P_BB, P_BB_STD, P_EMA_FAST, P_EMA_SLOW, P_VR, P_DC, P_ADX = range(11)
N_PARAMS = 11
N_FEATURES = 15
# Output columns, in FEATURE_ORDER.
F_CLOSE, F_VOLUME, F_RSI, F_MACD, F_ATR, F_BB_POS, F_EMA_FAST, F_EMA_SLOW = range(8)
F_VOL_RATIO, F_DC_HIGH, F_DC_LOW, F_CH_POS, F_ADX, F_PLUS_DI, F_MINUS_DI = range(8, 15)

# ------------------------------------------------------------------------------------------- EMA block
EMA_SIZE = 4  # [values seen, seed sum, value, smoothing factor 2 / (period + 1)]


@njit(cache=True)
def ema_update(st: np.ndarray, o: int, period: int, x: float) -> float:
    """TA-Lib EMA: SMA of the first `period` values, then prev + (x - prev) * 2 / (period + 1)."""
    seen = st[o]
    if seen < period:
        st[o + 1] += x
        st[o] = seen + 1.0
        if seen + 1.0 == period:
            st[o + 2] = st[o + 1] / period
            st[o + 3] = 2.0 / (period + 1.0)
            return st[o + 2]
        return NAN
    prev = st[o + 2]
    st[o + 2] = (x - prev) * st[o + 3] + prev
    return st[o + 2]


# ------------------------------------------------------------------------------------------ MACD block
MACD_SIZE = 1 + 2 * EMA_SIZE  # [bars seen, slow EMA block, fast EMA block]


@njit(cache=True)
def macd_update(st: np.ndarray, o: int, fast: int, slow: int, x: float) -> float:
    """MACD line as TA-Lib aligns it: the fast EMA starts at bar slow - fast, so both seeds end together."""
    seen = st[o]
    st[o] = seen + 1.0
    s = ema_update(st, o + 1, slow, x)
    f = NAN
    if seen >= slow - fast:
        f = ema_update(st, o + 1 + EMA_SIZE, fast, x)
    return f - s


# ------------------------------------------------------------------------------------------- RSI block
RSI_SIZE = 5  # [bars seen, previous close, average gain, average loss, output]


@njit(cache=True)
def rsi_update(st: np.ndarray, o: int, period: int, close: float) -> float:
    """Wilder RSI seeded like TA-Lib (plain average of the first `period` changes); 50 when nothing moved."""
    seen = st[o]
    st[o] = seen + 1.0
    if seen == 0.0:
        st[o + 1] = close
        return NAN
    change = close - st[o + 1]
    st[o + 1] = close
    gain = change if change > 0.0 else 0.0
    loss = -change if change < 0.0 else 0.0
    if seen <= period:
        st[o + 2] += gain
        st[o + 3] += loss
        if seen < period:
            return NAN
        st[o + 2] /= period
        st[o + 3] /= period
    else:
        st[o + 2] = (st[o + 2] * (period - 1) + gain) / period
        st[o + 3] = (st[o + 3] * (period - 1) + loss) / period
    total = st[o + 2] + st[o + 3]
    st[o + 4] = 50.0 if total == 0.0 else 100.0 * st[o + 2] / total
    return st[o + 4]


# ------------------------------------------------------------------------------------------- ATR block
ATR_SIZE = 3  # [bars seen, previous close, TR sum then ATR]


@njit(cache=True)
def true_range(high: float, low: float, prev_close: float) -> float:
    tr = high - low
    a = abs(prev_close - high)
    b = abs(prev_close - low)
    if a > tr:
        tr = a
    if b > tr:
        tr = b
    return tr


@njit(cache=True)
def atr_update(st: np.ndarray, o: int, period: int, high: float, low: float, close: float) -> float:
    """Wilder ATR as TA-Lib: first value = mean of TR over bars 1..period, then (prev*(n-1) + TR) / n."""
    seen = st[o]
    st[o] = seen + 1.0
    if seen == 0.0:
        st[o + 1] = close
        return NAN
    tr = true_range(high, low, st[o + 1])
    st[o + 1] = close
    if seen < period:
        st[o + 2] += tr
        return NAN
    if seen == period:
        st[o + 2] = (st[o + 2] + tr) / period
    else:
        st[o + 2] = (st[o + 2] * (period - 1) + tr) / period
    return st[o + 2]


# ------------------------------------------------------------------------------------- DMI / ADX block
DMI_SIZE = 11  # [seen, prev high, prev low, prev close, +DM, -DM, TR, ADX, +DI, -DI, DX seed sum]


@njit(cache=True)
def dmi_update(st: np.ndarray, o: int, period: int, high: float, low: float, close: float) -> None:
    """Wilder ±DI and ADX exactly as TA-Lib sequences them; results in st[o+8] (+DI), st[o+9] (−DI), st[o+7] (ADX).

    ±DI are valid from bar `period`, ADX from bar 2*period - 1; before that the slots hold NaN.
    """
    seen = st[o]
    st[o] = seen + 1.0
    if seen == 0.0:
        st[o + 1] = high
        st[o + 2] = low
        st[o + 3] = close
        st[o + 7] = NAN
        st[o + 8] = NAN
        st[o + 9] = NAN
        return
    diff_p = high - st[o + 1]
    diff_m = st[o + 2] - low
    tr = true_range(high, low, st[o + 3])
    st[o + 1] = high
    st[o + 2] = low
    st[o + 3] = close
    plus_dm = 0.0
    minus_dm = 0.0
    if diff_m > 0.0 and diff_p < diff_m:
        minus_dm = diff_m
    elif diff_p > 0.0 and diff_p > diff_m:
        plus_dm = diff_p
    n = float(period)
    if seen < period:  # accumulate the first period-1 values
        st[o + 4] += plus_dm
        st[o + 5] += minus_dm
        st[o + 6] += tr
        return
    st[o + 4] = st[o + 4] - st[o + 4] / n + plus_dm
    st[o + 5] = st[o + 5] - st[o + 5] / n + minus_dm
    st[o + 6] = st[o + 6] - st[o + 6] / n + tr
    dx = NAN
    if st[o + 6] != 0.0:
        plus_di = 100.0 * (st[o + 4] / st[o + 6])
        minus_di = 100.0 * (st[o + 5] / st[o + 6])
        st[o + 8] = plus_di
        st[o + 9] = minus_di
        total = plus_di + minus_di
        if total != 0.0:
            dx = 100.0 * (abs(minus_di - plus_di) / total)
    else:
        st[o + 8] = 0.0
        st[o + 9] = 0.0
    if seen <= 2 * period - 1:  # sum the first `period` DX values (bars period .. 2*period-1)
        if dx == dx:
            st[o + 10] += dx
        if seen == 2 * period - 1:
            st[o + 7] = st[o + 10] / n
        return
    if dx == dx:
        st[o + 7] = (st[o + 7] * (n - 1.0) + dx) / n


# ------------------------------------------------------------------------------------ rolling windows
WIN_HEADER = 7  # [count, position, centre K, sum(x-K), sum((x-K)^2), max, min] followed by the buffer


@njit(cache=True)
def window_size(period: int) -> int:
    return WIN_HEADER + period


@njit(cache=True)
def _window_recompute(st: np.ndarray, o: int, period: int, filled: int) -> None:
    buf = o + WIN_HEADER
    k = st[buf]
    s1 = 0.0
    s2 = 0.0
    mx = -np.inf
    mn = np.inf
    for i in range(filled):
        x = st[buf + i]
        d = x - k
        s1 += d
        s2 += d * d
        if x > mx:
            mx = x
        if x < mn:
            mn = x
    st[o + 2] = k
    st[o + 3] = s1
    st[o + 4] = s2
    st[o + 5] = mx
    st[o + 6] = mn


@njit(cache=True)
def window_push(st: np.ndarray, o: int, period: int, x: float) -> bool:
    """Add x to a rolling window of `period` values; True once the window is full.

    Sums are kept around a centre K (the oldest value at the last exact recompute) so variance does not
    cancel catastrophically at price levels of 1e7; they are recomputed exactly once per window length.
    Max/min are rescanned only when the value leaving the window was the extreme.
    """
    count = int(st[o])
    pos = int(st[o + 1])
    buf = o + WIN_HEADER
    if count < period:
        st[buf + pos] = x
        count += 1
        st[o] = count
        st[o + 1] = pos + 1 if pos + 1 < period else 0
        _window_recompute(st, o, period, count)
        return count == period
    old = st[buf + pos]
    st[buf + pos] = x
    pos = pos + 1 if pos + 1 < period else 0
    st[o + 1] = pos
    if pos == 0:
        _window_recompute(st, o, period, period)
        return True
    k = st[o + 2]
    d_new = x - k
    d_old = old - k
    st[o + 3] += d_new - d_old
    st[o + 4] += d_new * d_new - d_old * d_old
    if x >= st[o + 5]:
        st[o + 5] = x
    elif old == st[o + 5]:
        mx = -np.inf
        for i in range(period):
            if st[buf + i] > mx:
                mx = st[buf + i]
        st[o + 5] = mx
    if x <= st[o + 6]:
        st[o + 6] = x
    elif old == st[o + 6]:
        mn = np.inf
        for i in range(period):
            if st[buf + i] < mn:
                mn = st[buf + i]
        st[o + 6] = mn
    return True


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


# ------------------------------------------------------------------------------------ the fused step
@njit(cache=True)
def feature_layout(p: np.ndarray) -> np.ndarray:
    """Offsets of each block in the state array; the last entry is the total state size."""
    off = np.zeros(11, dtype=np.int64)
    size = 1  # state[0] = bars accepted
    off[0] = size  # RSI
    size += RSI_SIZE
    off[1] = size  # MACD
    size += MACD_SIZE
    off[2] = size  # ATR
    size += ATR_SIZE
    off[3] = size  # EMA fast
    size += EMA_SIZE
    off[4] = size  # EMA slow
    size += EMA_SIZE
    off[5] = size  # DMI/ADX
    size += DMI_SIZE
    off[6] = size  # close window (Bollinger)
    size += window_size(int(p[P_BB]))
    off[7] = size  # volume window
    size += window_size(int(p[P_VR]))
    off[8] = size  # high window (Donchian)
    size += window_size(int(p[P_DC]))
    off[9] = size  # low window (Donchian)
    size += window_size(int(p[P_DC]))
    off[10] = size
    return off


@njit(cache=True)
def features_init(p: np.ndarray) -> np.ndarray:
    off = feature_layout(p)
    st = np.zeros(off[10], dtype=np.float64)
    st[off[5] + 7] = NAN
    st[off[5] + 8] = NAN
    st[off[5] + 9] = NAN
    return st


@njit(cache=True)
def features_warmup(p: np.ndarray) -> np.ndarray:
    """Bars of NaN before each feature is valid (index of its first value), in FEATURE_ORDER."""
    w = np.zeros(N_FEATURES, dtype=np.int64)
    w[F_RSI] = int(p[P_RSI])
    w[F_MACD] = int(p[P_MACD_SLOW]) - 1
    w[F_ATR] = int(p[P_ATR])
    w[F_BB_POS] = int(p[P_BB]) - 1
    w[F_EMA_FAST] = int(p[P_EMA_FAST]) - 1
    w[F_EMA_SLOW] = int(p[P_EMA_SLOW]) - 1
    w[F_VOL_RATIO] = int(p[P_VR]) - 1
    w[F_DC_HIGH] = int(p[P_DC]) - 1
    w[F_DC_LOW] = int(p[P_DC]) - 1
    w[F_CH_POS] = int(p[P_DC]) - 1
    w[F_ADX] = 2 * int(p[P_ADX]) - 1
    w[F_PLUS_DI] = int(p[P_ADX])
    w[F_MINUS_DI] = int(p[P_ADX])
    return w


@njit(cache=True)
def features_step(
    st: np.ndarray, p: np.ndarray, off: np.ndarray, o: float, h: float, lo: float, c: float, v: float, out: np.ndarray
) -> bool:
    """One closed bar → 15 features in `out`. Returns False (outputs NaN, state untouched) for a bad bar."""
    if not np.isfinite(o + h + lo + c + v):  # any NaN/inf makes the sum non-finite
        for i in range(N_FEATURES):
            out[i] = NAN
        return False
    st[0] += 1.0
    out[F_CLOSE] = c
    out[F_VOLUME] = v
    out[F_RSI] = rsi_update(st, off[0], int(p[P_RSI]), c)
    out[F_MACD] = macd_update(st, off[1], int(p[P_MACD_FAST]), int(p[P_MACD_SLOW]), c)
    out[F_ATR] = atr_update(st, off[2], int(p[P_ATR]), h, lo, c)
    out[F_EMA_FAST] = ema_update(st, off[3], int(p[P_EMA_FAST]), c)
    out[F_EMA_SLOW] = ema_update(st, off[4], int(p[P_EMA_SLOW]), c)
    dmi_update(st, off[5], int(p[P_ADX]), h, lo, c)
    out[F_ADX] = st[off[5] + 7]
    out[F_PLUS_DI] = st[off[5] + 8]
    out[F_MINUS_DI] = st[off[5] + 9]

    bb_n = int(p[P_BB])
    if window_push(st, off[6], bb_n, c):
        mid = window_mean(st, off[6], bb_n)
        width = 2.0 * p[P_BB_STD] * window_std(st, off[6], bb_n)
        out[F_BB_POS] = 0.5 if width <= 0.0 else (c - (mid - 0.5 * width)) / width
    else:
        out[F_BB_POS] = NAN

    vr_n = int(p[P_VR])
    if window_push(st, off[7], vr_n, v):
        avg = window_mean(st, off[7], vr_n)
        out[F_VOL_RATIO] = v / avg if avg > 0.0 else NAN
    else:
        out[F_VOL_RATIO] = NAN

    dc_n = int(p[P_DC])
    full_h = window_push(st, off[8], dc_n, h)
    full_l = window_push(st, off[9], dc_n, lo)
    if full_h and full_l:
        upper = window_max(st, off[8])
        lower = window_min(st, off[9])
        out[F_DC_HIGH] = upper
        out[F_DC_LOW] = lower
        out[F_CH_POS] = 0.5 if upper <= lower else (c - lower) / (upper - lower)
    else:
        out[F_DC_HIGH] = NAN
        out[F_DC_LOW] = NAN
        out[F_CH_POS] = NAN
    return True


@njit(cache=True)
def features_batch(
    st: np.ndarray,
    p: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
) -> np.ndarray:
    """Run `features_step` over history from state `st` (updated in place); returns (n, 15)."""
    off = feature_layout(p)
    n = c.shape[0]
    out = np.empty((n, N_FEATURES), dtype=np.float64)
    for i in range(n):
        features_step(st, p, off, o[i], h[i], lo[i], c[i], v[i], out[i])
    return out
