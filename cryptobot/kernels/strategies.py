"""The seed's five strategies and the EMA-crossover example as numba step kernels (seed spec §4.3–4.7).

Every strategy has the same signature, which is what the registry and the generated pipeline rely on:

    step(state, params, timestamp_ms, bar, features, out) -> None

`state` is the strategy's own float64 slice (zero-initialised), `params` its parameter vector, `bar` =
(open, high, low, close, volume) of the closed bar, `features` the 15 values in FEATURE_ORDER, and `out` =
(action −1/0/+1, confidence 0..1, stop-loss price, take-profit price). Strategies emit "hold" while any
input they need is NaN (warm-up, bad bar). The seed's random jitter is gone: where it added noise, the
deterministic value is the jitter's mean, set in config.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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
    atr_update,
    ema_update,
    window_max,
    window_mean,
    window_min,
    window_push,
)

NAN = np.nan
O_ACTION, O_CONF, O_SL, O_TP = 0, 1, 2, 3


@njit(cache=True)
def hold(out: np.ndarray, confidence: float = 0.0) -> None:
    out[O_ACTION] = 0.0
    out[O_CONF] = confidence
    out[O_SL] = NAN
    out[O_TP] = NAN


@njit(cache=True)
def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else (hi if x > hi else x)


@njit(cache=True)
def emit(out: np.ndarray, action: float, confidence: float, price: float, sl_dist: float, tp_dist: float) -> None:
    """Buy/sell with SL/TP at fixed distances from the signal price (seed §4.2: SL = P ∓ d, TP = P ± d·ratio)."""
    if action == 0.0 or not (sl_dist > 0.0) or price - sl_dist <= 0.0 and action > 0.0:
        hold(out, confidence)  # no usable stop distance yet (e.g. ATR not ready): no trade
        return
    emit_levels(out, action, confidence, price - action * sl_dist, price + action * tp_dist if tp_dist > 0.0 else NAN)


@njit(cache=True)
def emit_levels(out: np.ndarray, action: float, confidence: float, sl: float, tp: float) -> None:
    """Buy/sell with absolute SL/TP levels; a level that is NaN or ≤ 0 is none (NaN: the execution kernel never
    triggers it), so a percent stop of 0 or of 100 % of a long trades without a stop."""
    out[O_ACTION] = action
    out[O_CONF] = confidence
    out[O_SL] = sl if sl > 0.0 else NAN
    out[O_TP] = tp if tp > 0.0 else NAN


# ----------------------------------------------------------------------------------------- ATRBased
ATR_P_BB_OB, ATR_P_BB_OS, ATR_P_RSI_OB, ATR_P_RSI_OS, ATR_P_BASE, ATR_P_MULT = range(6)
ATR_P_MIN_CONF, ATR_P_LOW_VOL, ATR_P_HIGH_VOL, ATR_P_LOOKBACK, ATR_P_SL, ATR_P_TP = range(6, 12)


@njit(cache=True)
def atr_based_state_size(p: np.ndarray) -> int:
    return WIN_HEADER + int(p[ATR_P_LOOKBACK])


@njit(cache=True)
def atr_based_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Mean reversion on Bollinger position + RSI, scaled by the volatility regime (seed §4.3)."""
    close, atr, bb, rsi = f[F_CLOSE], f[F_ATR], f[F_BB_POS], f[F_RSI]
    if not (np.isfinite(atr) and np.isfinite(bb) and np.isfinite(rsi)) or close <= 0.0:
        hold(out)
        return
    lookback = int(p[ATR_P_LOOKBACK])
    full = window_push(st, 0, lookback, atr / close)
    regime = 1.0
    if full:
        mean_ratio = window_mean(st, 0, lookback)
        m = (atr / close) / mean_ratio if mean_ratio > 0.0 else 1.0
        regime = 0.8 if m < p[ATR_P_LOW_VOL] else (1.2 if m > p[ATR_P_HIGH_VOL] else 1.0)
    bb_side = 0.0
    bb_conf = 0.0
    bb_strength = 0.0
    if bb >= p[ATR_P_BB_OB]:
        bb_side, bb_strength = -1.0, min((bb - p[ATR_P_BB_OB]) / 0.2, 1.0)
    elif bb <= p[ATR_P_BB_OS]:
        bb_side, bb_strength = 1.0, min((p[ATR_P_BB_OS] - bb) / 0.2, 1.0)
    if bb_side != 0.0:
        bb_conf = p[ATR_P_BASE] + p[ATR_P_MULT] * bb_strength
    rsi_side = 0.0
    rsi_conf = 0.0
    if rsi >= p[ATR_P_RSI_OB]:
        rsi_side = -1.0
        rsi_conf = 0.2 + 0.3 * min((rsi - p[ATR_P_RSI_OB]) / 30.0, 1.0)
    elif rsi <= p[ATR_P_RSI_OS]:
        rsi_side = 1.0
        rsi_conf = 0.2 + 0.3 * min((p[ATR_P_RSI_OS] - rsi) / 30.0, 1.0)
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
    if side == 0.0 or conf < p[ATR_P_MIN_CONF]:
        hold(out, conf if side == 0.0 else 0.0)
        return
    emit(out, side, conf, close, atr * p[ATR_P_SL], atr * p[ATR_P_TP])


# ------------------------------------------------------------------------------------ MochipoyAlert
MP_P_RCI_N, MP_P_RCI_OB, MP_P_RCI_OS, MP_P_STRONG, MP_P_STEP, MP_P_WEAK = range(6)
MP_P_MAX, MP_P_MIN_CONF, MP_P_SL, MP_P_TP = range(6, 10)


@njit(cache=True)
def mochipoy_state_size(p: np.ndarray) -> int:
    return WIN_HEADER + int(p[MP_P_RCI_N])


@njit(cache=True)
def rci(st: np.ndarray, o: int, n: int) -> float:
    """Rank correlation index of the last n closes held in the window block at `o` (seed §4.4).

    Price ranks descending (highest = 1, ties share the lowest rank), time ranks descending from n (oldest)
    to 1 (newest); RCI = (1 − 6·Σd² / (n(n²−1))) · 100, so a steadily rising window gives +100.
    """
    buf = o + WIN_HEADER
    pos = int(st[o + 1])  # index of the oldest value
    d2 = 0.0
    for age in range(n):  # age 0 = oldest
        x = st[buf + (pos + age) % n]
        rank = 1
        for j in range(n):
            if st[buf + j] > x:
                rank += 1
        time_rank = n - age
        d = rank - time_rank
        d2 += d * d
    return (1.0 - 6.0 * d2 / (n * (n * n - 1.0))) * 100.0


@njit(cache=True)
def mochipoy_alert_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Vote of EMA trend, MACD sign and RCI reversal (seed §4.4), without the seed's clock-seeded jitter."""
    close, atr = f[F_CLOSE], f[F_ATR]
    n = int(p[MP_P_RCI_N])
    full = window_push(st, 0, n, close)
    ema_f, ema_s, macd = f[F_EMA_FAST], f[F_EMA_SLOW], f[F_MACD]
    if not (full and np.isfinite(ema_f) and np.isfinite(ema_s) and np.isfinite(macd) and np.isfinite(atr)):
        hold(out)
        return
    r = rci(st, 0, n)
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
    if r >= p[MP_P_RCI_OB]:
        sells += 1
    elif r <= p[MP_P_RCI_OS]:
        buys += 1
    side = 0.0
    conf = 0.0
    if buys >= 2:
        side, conf = 1.0, min(p[MP_P_MAX], p[MP_P_STRONG] + p[MP_P_STEP] * (buys - 2))
    elif sells >= 2:
        side, conf = -1.0, min(p[MP_P_MAX], p[MP_P_STRONG] + p[MP_P_STEP] * (sells - 2))
    elif buys == 1 and sells == 0:
        side, conf = 1.0, p[MP_P_WEAK]
    elif sells == 1 and buys == 0:
        side, conf = -1.0, p[MP_P_WEAK]
    if side == 0.0 or conf < p[MP_P_MIN_CONF]:
        hold(out)
        return
    emit(out, side, conf, close, atr * p[MP_P_SL], atr * p[MP_P_TP])


# ----------------------------------------------------------------------------------- MultiTimeframe
MT_P_TREND_LB, MT_P_TREND_MIN, MT_P_MIN_VOL, MT_P_ENTRY_LB, MT_P_RSI_OB, MT_P_RSI_OS = range(6)
MT_P_W_TREND, MT_P_W_ENTRY, MT_P_MIN_CONF, MT_P_SL, MT_P_TP = range(6, 11)
MT_P_BASE_MS, MT_P_HTF_MS, MT_P_HTF_EMA, MT_P_HTF_ATR = range(11, 15)
# state: [open bucket start, bucket o, h, l, c, has bucket, prev close, prev ema_fast,
#         HTF EMA block, HTF ATR block, window of HTF EMA values, window of lows, window of highs]
MT_S_BUCKET, MT_S_O, MT_S_H, MT_S_L, MT_S_C, MT_S_OPEN, MT_S_PREV_C, MT_S_PREV_E = range(8)
MT_S_EMA = 8
MT_S_ATR = MT_S_EMA + EMA_SIZE
MT_S_HTF_LAST = MT_S_ATR + 3  # last HTF ATR value
MT_S_WIN = MT_S_HTF_LAST + 1


@njit(cache=True)
def mtf_offsets(p: np.ndarray) -> tuple[int, int, int, int]:
    ema_win = MT_S_WIN
    low_win = ema_win + WIN_HEADER + int(p[MT_P_TREND_LB]) + 1
    high_win = low_win + WIN_HEADER + int(p[MT_P_ENTRY_LB])
    return ema_win, low_win, high_win, high_win + WIN_HEADER + int(p[MT_P_ENTRY_LB])


@njit(cache=True)
def multi_timeframe_state_size(p: np.ndarray) -> int:
    return mtf_offsets(p)[3]


@njit(cache=True)
def _mtf_close_bucket(st: np.ndarray, p: np.ndarray) -> None:
    """A higher-timeframe bar is complete: feed its close to the HTF EMA/ATR and the slope window."""
    ema = ema_update(st, MT_S_EMA, int(p[MT_P_HTF_EMA]), st[MT_S_C])
    st[MT_S_HTF_LAST] = atr_update(st, MT_S_ATR, int(p[MT_P_HTF_ATR]), st[MT_S_H], st[MT_S_L], st[MT_S_C])
    if np.isfinite(ema):
        window_push(st, MT_S_WIN, int(p[MT_P_TREND_LB]) + 1, ema)
    st[MT_S_OPEN] = 0.0


@njit(cache=True)
def multi_timeframe_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Higher-timeframe trend + base-timeframe entry (seed §4.5), with a real higher timeframe.

    Higher bars are aggregated on the clock from the bar open times; one is used only once it has closed:
    at the close of the base bar whose close time reaches the bucket end, or — when that bar is missing —
    as soon as a bar of a later bucket arrives. Batch and live call this same code, so there is no lookahead.
    """
    base_ms = int(p[MT_P_BASE_MS])
    htf_ms = int(p[MT_P_HTF_MS])
    bucket = (ts // htf_ms) * htf_ms
    if st[MT_S_OPEN] == 1.0 and bucket != int(st[MT_S_BUCKET]):
        _mtf_close_bucket(st, p)
    if st[MT_S_OPEN] == 0.0:
        st[MT_S_BUCKET] = bucket
        st[MT_S_O], st[MT_S_H], st[MT_S_L], st[MT_S_C] = bar[0], bar[1], bar[2], bar[3]
        st[MT_S_OPEN] = 1.0
    else:
        st[MT_S_H] = max(st[MT_S_H], bar[1])
        st[MT_S_L] = min(st[MT_S_L], bar[2])
        st[MT_S_C] = bar[3]
    if ts + base_ms >= bucket + htf_ms:
        _mtf_close_bucket(st, p)

    ema_win, low_win, high_win, _ = mtf_offsets(p)
    entry_lb = int(p[MT_P_ENTRY_LB])
    window_push(st, low_win, entry_lb, bar[2])
    full = window_push(st, high_win, entry_lb, bar[1])
    close, ema_f, rsi, atr = f[F_CLOSE], f[F_EMA_FAST], f[F_RSI], f[F_ATR]
    prev_c, prev_e = st[MT_S_PREV_C], st[MT_S_PREV_E]
    st[MT_S_PREV_C] = close
    st[MT_S_PREV_E] = ema_f
    trend_n = int(p[MT_P_TREND_LB]) + 1
    if not (full and int(st[ema_win]) >= trend_n and np.isfinite(ema_f) and np.isfinite(rsi)
            and np.isfinite(atr) and np.isfinite(prev_e) and prev_c > 0.0):
        hold(out)
        return
    oldest = st[ema_win + WIN_HEADER + int(st[ema_win + 1])]
    newest = st[ema_win + WIN_HEADER + (int(st[ema_win + 1]) - 1) % trend_n]
    htf_atr = st[MT_S_HTF_LAST]
    trend = 0.0
    if np.isfinite(htf_atr) and htf_atr / close > p[MT_P_MIN_VOL]:
        g = newest / oldest - 1.0
        if g > p[MT_P_TREND_MIN] and close > newest:
            trend = 1.0
        elif g < -p[MT_P_TREND_MIN] and close < newest:
            trend = -1.0
    cross = 0.0
    if prev_c <= prev_e and close > ema_f:
        cross = 1.0
    elif prev_c >= prev_e and close < ema_f:
        cross = -1.0
    rsi_vote = 1.0 if rsi <= p[MT_P_RSI_OS] else (-1.0 if rsi >= p[MT_P_RSI_OB] else 0.0)
    pullback = 0.0
    if cross == 1.0 and close > window_min(st, low_win) * 1.005:
        pullback = 1.0
    elif cross == -1.0 and close < window_max(st, high_win) * 0.995:
        pullback = -1.0
    ups = (cross == 1.0) + (rsi_vote == 1.0) + (pullback == 1.0)
    downs = (cross == -1.0) + (rsi_vote == -1.0) + (pullback == -1.0)
    entry = 1.0 if ups >= 2 else (-1.0 if downs >= 2 else 0.0)
    score = p[MT_P_W_TREND] * trend + p[MT_P_W_ENTRY] * entry
    conf = clamp(abs(score), 0.0, 1.0)
    if conf < p[MT_P_MIN_CONF] or score == 0.0:
        hold(out)
        return
    emit(out, 1.0 if score > 0.0 else -1.0, conf, close, atr * p[MT_P_SL], atr * p[MT_P_TP])


# ---------------------------------------------------------------------------------- DonchianChannel
DC_P_BREAK, DC_P_BREAK_VR, DC_P_BREAK_CONF, DC_P_REV, DC_P_WEAK_LO, DC_P_WEAK_HI = range(6)
DC_P_MID_LO, DC_P_MID_HI, DC_P_WEAK_CONF, DC_P_MIN_CONF, DC_P_SL, DC_P_TP = range(6, 12)


@njit(cache=True)
def donchian_state_size(p: np.ndarray) -> int:
    return 2  # previous bar's channel high and low


@njit(cache=True)
def donchian_channel_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Channel breakout/reversal zones (seed §4.6). Breakouts compare the close with the PREVIOUS bar's
    channel: the current bar is inside its own channel, which is why the seed's breakout could never fire."""
    close, atr, pos, vr = f[F_CLOSE], f[F_ATR], f[F_CH_POS], f[F_VOL_RATIO]
    prev_hi, prev_lo = st[0], st[1]
    st[0], st[1] = f[F_DC_HIGH], f[F_DC_LOW]
    if not (np.isfinite(atr) and np.isfinite(pos) and np.isfinite(vr) and prev_hi > 0.0) or close <= 0.0:
        hold(out)
        return
    v = atr / close
    vol_bonus = 0.1 if 0.01 <= v <= 0.03 else 0.0
    volume_bonus = min(0.1, 0.2 * (vr - 1.0)) if vr > 1.0 else 0.0
    side = 0.0
    conf = 0.0
    if close > prev_hi * (1.0 + p[DC_P_BREAK]) and vr > p[DC_P_BREAK_VR]:
        side, conf = 1.0, p[DC_P_BREAK_CONF]
    elif close < prev_lo * (1.0 - p[DC_P_BREAK]) and vr > p[DC_P_BREAK_VR]:
        side, conf = -1.0, p[DC_P_BREAK_CONF]
    elif pos < p[DC_P_REV]:
        side, conf = 1.0, clamp(0.3 + 0.3 * (1.0 - pos) + vol_bonus + volume_bonus, 0.2, 0.9)
    elif pos > 1.0 - p[DC_P_REV]:
        side, conf = -1.0, clamp(0.3 + 0.3 * pos + vol_bonus + volume_bonus, 0.2, 0.9)
    elif p[DC_P_WEAK_LO] <= pos < p[DC_P_MID_LO]:
        span = p[DC_P_MID_LO] - p[DC_P_WEAK_LO]
        side = 1.0
        conf = clamp(p[DC_P_WEAK_CONF] + 0.2 * (p[DC_P_MID_LO] - pos) / span + vol_bonus + volume_bonus, 0.25, 0.6)
    elif p[DC_P_MID_HI] < pos <= p[DC_P_WEAK_HI]:
        span = p[DC_P_WEAK_HI] - p[DC_P_MID_HI]
        side = -1.0
        conf = clamp(p[DC_P_WEAK_CONF] + 0.2 * (pos - p[DC_P_MID_HI]) / span + vol_bonus + volume_bonus, 0.25, 0.6)
    if side == 0.0 or conf < p[DC_P_MIN_CONF]:
        hold(out)
        return
    emit(out, side, conf, close, atr * p[DC_P_SL], atr * p[DC_P_TP])


# --------------------------------------------------------------------------------- ADXTrendStrength
AD_P_STRONG, AD_P_WEAK, AD_P_CROSS, AD_P_WEAK_DI, AD_P_MOD_DI, AD_P_WEAK_CONF = range(6)
AD_P_MIN_CONF, AD_P_SL, AD_P_TP, AD_P_STRONG_MULT, AD_P_TRADE_WEAK = range(6, 11)


@njit(cache=True)
def adx_state_size(p: np.ndarray) -> int:
    return 2  # previous ADX, previous +DI − −DI


@njit(cache=True)
def adx_trend_strength_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Trend strength and DI crossovers (seed §4.7). The seed's weak-trend branch — trading the DI side
    when there is *no* trend — is kept (it is the seed's rule) but can be switched off in config."""
    close, atr, adx, vr = f[F_CLOSE], f[F_ATR], f[F_ADX], f[F_VOL_RATIO]
    diff = f[F_PLUS_DI] - f[F_MINUS_DI]
    prev_adx, prev_diff = st[0], st[1]
    st[0], st[1] = adx, diff
    if not (np.isfinite(adx) and np.isfinite(diff) and np.isfinite(atr) and np.isfinite(vr)
            and np.isfinite(prev_adx) and np.isfinite(prev_diff) and prev_adx > 0.0):
        hold(out)
        return
    strong = adx >= p[AD_P_STRONG]
    weak = adx < p[AD_P_WEAK]
    rising = 1.0 if adx > prev_adx else 0.0
    bull_cross = diff > 0.0 and prev_diff <= 0.0 and abs(diff) >= p[AD_P_CROSS]
    bear_cross = diff < 0.0 and prev_diff >= 0.0 and abs(diff) >= p[AD_P_CROSS]
    adx_bonus = min(0.3, 0.015 * (adx - p[AD_P_STRONG])) if strong else (0.0 if weak else 0.1)
    volume_bonus = min(0.1, 0.2 * (vr - 1.0)) if vr > 1.2 else 0.0
    k = p[AD_P_STRONG_MULT] if strong else 1.0
    side = 0.0
    conf = 0.0
    if strong and rising == 1.0 and (bull_cross or bear_cross):
        side = 1.0 if bull_cross else -1.0
        conf = clamp(0.3 + adx_bonus + 0.1 * rising + min(0.2, 0.02 * abs(diff)) + 0.15 + volume_bonus, 0.2, 0.9)
    elif not strong and not weak and abs(diff) >= p[AD_P_MOD_DI] and vr > 1.1:
        side = 1.0 if diff > 0.0 else -1.0
        cross_bonus = 0.15 if (bull_cross and side > 0.0) or (bear_cross and side < 0.0) else 0.0
        conf = clamp(0.3 + adx_bonus + 0.1 * rising + min(0.2, 0.02 * abs(diff)) + cross_bonus + volume_bonus, 0.2, 0.9)
    elif weak and p[AD_P_TRADE_WEAK] > 0.0 and abs(diff) >= p[AD_P_WEAK_DI]:
        side = 1.0 if diff > 0.0 else -1.0
        weak_volume = min(0.1, 0.2 * (vr - 1.0)) if vr > 1.1 else 0.0
        conf = clamp(p[AD_P_WEAK_CONF] + min(0.2, 0.04 * abs(diff)) + 0.05 * rising + weak_volume, 0.25, 0.6)
    if side == 0.0 or conf < p[AD_P_MIN_CONF]:
        hold(out)
        return
    emit(out, side, conf, close, atr * p[AD_P_SL] * k, atr * p[AD_P_TP] * k)


# ------------------------------------------------------------------------- EMA crossover (the example)
EC_P_FAST, EC_P_SLOW, EC_P_SL_PCT, EC_P_TP_PCT = range(4)


@njit(cache=True)
def ema_cross_state_size(p: np.ndarray) -> int:
    return 2 * EMA_SIZE + 1  # two EMA blocks and the previous fast − slow difference


@njit(cache=True)
def ema_cross_step(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    """Long when EMA(fast) crosses above EMA(slow), short/exit on the opposite cross; percent stops
    (`sl_pct` / `tp_pct` of the close, 0 = none)."""
    close = bar[3]
    fast = ema_update(st, 0, int(p[EC_P_FAST]), close)
    slow = ema_update(st, EMA_SIZE, int(p[EC_P_SLOW]), close)
    diff = fast - slow
    prev = st[2 * EMA_SIZE]
    st[2 * EMA_SIZE] = diff
    if not (np.isfinite(diff) and np.isfinite(prev)):
        hold(out)
        return
    side = 1.0 if (prev <= 0.0 < diff) else (-1.0 if (prev >= 0.0 > diff) else 0.0)
    if side == 0.0:
        hold(out)
        return
    sl_pct, tp_pct = p[EC_P_SL_PCT], p[EC_P_TP_PCT]
    emit_levels(out, side, 1.0, close * (1.0 - side * sl_pct) if sl_pct > 0.0 else NAN,
                close * (1.0 + side * tp_pct) if tp_pct > 0.0 else NAN)
