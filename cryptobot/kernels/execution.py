"""Position, fills and risk gates as one numba step per closed bar (design §3), shared by backtest and live.

`execution_step` processes bar i in this order:
  1. a new UTC day resets the daily-loss reference;
  2. orders decided at the previous close fill at this bar's OPEN: a pending exit (market: taker fee,
     slippage against us), then a pending entry (market, or post-only: a limit at the signal close that
     fills only if this bar trades through it, maker fee);
  3. margin interest accrues on the open position; stop-loss/take-profit are checked against high/low
     (from the fill bar on when `stops_on_fill_bar`): stop-loss first when both are inside the bar; a gap
     through a level fills at the open; stops fill at the stop price plus slippage, never better;
     take-profit is a limit (maker fee, no slippage); a NaN level is none (never triggers);
  4. equity is marked at the close; drawdown halt, daily-loss limit and price-jump anomaly are updated;
  5. the bar's signal is decided: an opposite signal schedules an exit (and, with `reverse_on_opposite`,
     an opposite entry); a new entry passes the risk gates (with a gate given, a missing ML probability
     closes it) and is sized: a fixed amount or quote-currency stake capped at equity × leverage, or
     fractional Kelly from the trades closed within the Kelly window × drawdown scale × ML probability;
     rounded down to the amount step; below the minimum it is skipped.
Every fill and every skipped entry is written to the event buffer with a reason code.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cryptobot.kernels.features import WIN_HEADER, window_mean, window_push, window_std
from cryptobot.kernels.risk import kelly_fraction, round_amount

NAN = np.nan
DAY_MS = 86_400_000

# reason codes (names in cryptobot.execution.REASONS)
R_SIGNAL, R_STOP_LOSS, R_TAKE_PROFIT, R_RISK_HALT, R_LOSS_PAUSE, R_DAILY_LIMIT = 1, 2, 3, 4, 5, 6
R_ANOMALY, R_BELOW_MIN, R_ML_GATE, R_END_OF_DATA, R_SHORT_DISABLED, R_NOT_FILLED = 7, 8, 9, 10, 11, 12
R_NO_EDGE, R_CAPPED = 13, 14

# event kinds and layout: [kind, bar, side, amount, price, fee, interest, pnl, return, reason, voters,
#                          entry bar, entry price, fee rate]
EV_ENTRY, EV_EXIT, EV_SKIP = 1, 2, 3
EV_KIND, EV_BAR, EV_SIDE, EV_AMOUNT, EV_PRICE, EV_FEE, EV_INTEREST, EV_PNL, EV_RETURN = range(9)
EV_REASON, EV_VOTERS, EV_ENTRY_BAR, EV_ENTRY_PRICE, EV_FEE_RATE = range(9, 14)
EV_WIDTH = 14
EV_MAX = 4

# parameter vector
(P_INIT_CASH, P_TAKER, P_MAKER, P_SLIP, P_INTEREST, P_POST_ONLY, P_STOPS_ON_FILL, P_REVERSE, P_ALLOW_SHORT,
 P_STEP, P_MIN_AMOUNT, P_LEVERAGE, P_BAR_MS, P_FIXED_AMOUNT, P_RISK_ON, P_SAFETY, P_MAX_POS, P_MIN_TRADES,
 P_FALLBACK, P_LOOKBACK, P_MAX_DD, P_DD_SCALING, P_LOSS_LIMIT, P_COOLDOWN_MS, P_DAILY_LIMIT, P_JUMP_Z,
 P_JUMP_LB, P_ML_THRESHOLD, P_ML_SCALE, P_ML_ON, P_FIXED_STAKE, P_KELLY_WINDOW_MS) = range(32)
N_PARAMS = 32

# state
(S_CASH, S_POS, S_ENTRY_PRICE, S_ENTRY_BAR, S_ENTRY_FEE, S_SL, S_TP, S_INTEREST, S_VOTERS, S_PEND_EXIT,
 S_PEND_SIDE, S_PEND_AMOUNT, S_PEND_SL, S_PEND_TP, S_PEND_LIMIT, S_PEND_VOTERS, S_PEAK, S_HALTED, S_LOSSES,
 S_PAUSE_UNTIL, S_DAY, S_DAY_START_EQ, S_DAY_HALT, S_PREV_CLOSE, S_EQUITY, S_ANOMALY, S_KELLY_N, S_KELLY_POS,
 S_BARS, S_PEND_REASON) = range(30)
S_HEADER = 30
# after the header: the trade record (lookback returns, then the bar times they closed on), then the
# price-jump window


@njit(cache=True)
def execution_state_size(p: np.ndarray) -> int:
    return S_HEADER + 2 * int(p[P_LOOKBACK]) + WIN_HEADER + int(p[P_JUMP_LB])


@njit(cache=True)
def execution_init(p: np.ndarray) -> np.ndarray:
    st = np.zeros(execution_state_size(p), dtype=np.float64)
    st[S_CASH] = p[P_INIT_CASH]
    st[S_EQUITY] = p[P_INIT_CASH]
    st[S_PEAK] = p[P_INIT_CASH]
    st[S_DAY] = -np.inf
    st[S_SL] = NAN
    st[S_TP] = NAN
    st[S_PREV_CLOSE] = NAN
    return st


@njit(cache=True)
def _event(ev: np.ndarray, n: int, kind: int, bar: int, side: float, amount: float, price: float, fee: float,
           reason: int, voters: float) -> int:
    row = ev[n]
    row[:] = NAN
    row[EV_KIND] = kind
    row[EV_BAR] = bar
    row[EV_SIDE] = side
    row[EV_AMOUNT] = amount
    row[EV_PRICE] = price
    row[EV_FEE] = fee
    row[EV_REASON] = reason
    row[EV_VOTERS] = voters
    return n + 1


@njit(cache=True)
def _close_position(st: np.ndarray, p: np.ndarray, bar: int, ts: int, price: float, fee_rate: float, reason: int,
                    ev: np.ndarray, n: int) -> int:
    side = 1.0 if st[S_POS] > 0.0 else -1.0
    amount = abs(st[S_POS])
    fee = fee_rate * price * amount
    interest = st[S_INTEREST]
    pnl = side * amount * (price - st[S_ENTRY_PRICE]) - st[S_ENTRY_FEE] - fee - interest
    ret = pnl / (amount * st[S_ENTRY_PRICE])
    st[S_CASH] += side * amount * price - fee - interest
    n = _event(ev, n, EV_EXIT, bar, side, amount, price, fee, reason, st[S_VOTERS])
    row = ev[n - 1]
    row[EV_INTEREST] = interest
    row[EV_PNL] = pnl
    row[EV_RETURN] = ret
    row[EV_ENTRY_BAR] = st[S_ENTRY_BAR]
    row[EV_ENTRY_PRICE] = st[S_ENTRY_PRICE]
    row[EV_FEE_RATE] = fee_rate
    st[S_POS] = 0.0
    st[S_INTEREST] = 0.0
    st[S_SL] = NAN
    st[S_TP] = NAN
    st[S_PEND_EXIT] = 0.0
    # trade record for Kelly (return and the bar time it closed on), and the consecutive-loss pause (bar time)
    lookback = int(p[P_LOOKBACK])
    ring = S_HEADER
    pos = int(st[S_KELLY_POS])
    st[ring + pos] = ret
    st[ring + lookback + pos] = ts
    st[S_KELLY_POS] = (pos + 1) % lookback
    st[S_KELLY_N] = min(st[S_KELLY_N] + 1.0, lookback)
    if pnl < 0.0:
        st[S_LOSSES] += 1.0
        if p[P_RISK_ON] > 0.0 and st[S_LOSSES] >= p[P_LOSS_LIMIT]:
            st[S_PAUSE_UNTIL] = ts + p[P_BAR_MS] + p[P_COOLDOWN_MS]
            st[S_LOSSES] = 0.0
    else:
        st[S_LOSSES] = 0.0
    return n


@njit(cache=True)
def _open_position(st: np.ndarray, bar: int, side: float, amount: float, price: float, fee_rate: float,
                   ev: np.ndarray, n: int) -> int:
    fee = fee_rate * price * amount
    st[S_POS] = side * amount
    st[S_ENTRY_PRICE] = price
    st[S_ENTRY_BAR] = bar
    st[S_ENTRY_FEE] = fee
    st[S_INTEREST] = 0.0
    st[S_SL] = st[S_PEND_SL]
    st[S_TP] = st[S_PEND_TP]
    st[S_VOTERS] = st[S_PEND_VOTERS]
    st[S_CASH] -= side * amount * price + fee
    n = _event(ev, n, EV_ENTRY, bar, side, amount, price, fee, int(st[S_PEND_REASON]), st[S_VOTERS])
    ev[n - 1, EV_FEE_RATE] = fee_rate
    return n


@njit(cache=True)
def _entry_gate(st: np.ndarray, p: np.ndarray, ts: int, side: float, ml_p: float) -> int:
    """0 when a new entry may be taken now, else the reason code of the skip."""
    if side < 0.0 and p[P_ALLOW_SHORT] == 0.0:
        return R_SHORT_DISABLED
    if p[P_RISK_ON] > 0.0:
        if st[S_HALTED] > 0.0:
            return R_RISK_HALT
        if ts < st[S_PAUSE_UNTIL]:
            return R_LOSS_PAUSE
        if st[S_DAY_HALT] > 0.0:
            return R_DAILY_LIMIT
        if st[S_ANOMALY] > 0.0:
            return R_ANOMALY
    if p[P_ML_ON] > 0.0 and not (ml_p >= p[P_ML_THRESHOLD]):  # a missing (NaN) probability closes the gate
        return R_ML_GATE
    return 0


@njit(cache=True)
def _size(st: np.ndarray, p: np.ndarray, ts: int, close: float, ml_p: float) -> tuple[float, int]:
    """(amount, reason) of an entry decided at `close`.

    A fixed amount (base units) or stake (quote currency) is capped at equity × leverage: above it the entry
    trades at the cap with reason `capped_by_capital`. Otherwise equity × leverage × Kelly fraction (trades
    closed within the Kelly window) × drawdown scale × ML probability; Kelly f ≤ 0 → (0, no_edge).
    """
    buying_power = st[S_EQUITY] * p[P_LEVERAGE]
    if p[P_FIXED_AMOUNT] > 0.0 or p[P_FIXED_STAKE] > 0.0:
        if p[P_FIXED_AMOUNT] > 0.0:
            amount = p[P_FIXED_AMOUNT]
        else:
            amount = round_amount(p[P_FIXED_STAKE] / close, p[P_STEP])
        if amount * close > buying_power:
            return round_amount(buying_power / close, p[P_STEP]), R_CAPPED
        return amount, R_SIGNAL
    lookback = int(p[P_LOOKBACK])
    record = S_HEADER
    frac = kelly_fraction(st[record : record + lookback], st[record + lookback : record + 2 * lookback],
                          int(st[S_KELLY_N]), float(ts), p[P_KELLY_WINDOW_MS], int(p[P_MIN_TRADES]), p[P_SAFETY],
                          p[P_MAX_POS], p[P_FALLBACK])
    if frac <= 0.0:
        return 0.0, R_NO_EDGE
    if p[P_RISK_ON] > 0.0 and p[P_DD_SCALING] > 0.0:
        dd = 1.0 - st[S_EQUITY] / st[S_PEAK]
        frac *= max(0.0, 1.0 - dd / p[P_MAX_DD])
    if p[P_ML_ON] > 0.0 and p[P_ML_SCALE] > 0.0:
        frac *= ml_p
    return round_amount(buying_power * frac / close, p[P_STEP]), R_SIGNAL


@njit(cache=True)
def _consider_entry(st: np.ndarray, p: np.ndarray, bar: int, ts: int, side: float, close: float, sl: float,
                    tp: float, voters: float, ml_p: float, ev: np.ndarray, n: int) -> int:
    reason = _entry_gate(st, p, ts, side, ml_p)
    amount = 0.0
    why = R_SIGNAL
    if reason == 0:
        amount, why = _size(st, p, ts, close, ml_p)
        if why == R_NO_EDGE:
            reason = R_NO_EDGE
        elif amount < p[P_MIN_AMOUNT]:
            reason = R_BELOW_MIN
    if reason != 0:
        return _event(ev, n, EV_SKIP, bar, side, amount, close, 0.0, reason, voters)
    st[S_PEND_REASON] = why
    st[S_PEND_SIDE] = side
    st[S_PEND_AMOUNT] = amount
    st[S_PEND_SL] = sl
    st[S_PEND_TP] = tp
    st[S_PEND_LIMIT] = close
    st[S_PEND_VOTERS] = voters
    return n


@njit(cache=True)
def execution_step(st: np.ndarray, p: np.ndarray, bar: int, ts: int, o: float, h: float, lo: float, c: float,
                   action: float, sl: float, tp: float, voters: float, ml_p: float, ev: np.ndarray) -> int:
    """Process one closed bar; returns the number of events written to `ev` (at most EV_MAX)."""
    n = 0
    if not np.isfinite(o + h + lo + c):
        return n  # a bad bar: nothing fills, nothing is decided; state untouched
    slip = p[P_SLIP]
    if ts >= st[S_DAY]:  # S_DAY holds the next UTC midnight (ms): one division per day, not per bar
        st[S_DAY] = float((ts // DAY_MS + 1) * DAY_MS)
        st[S_DAY_START_EQ] = st[S_EQUITY]
        st[S_DAY_HALT] = 0.0

    # 2. orders from the previous close fill at this open
    if st[S_PEND_EXIT] > 0.0 and st[S_POS] != 0.0:
        side = 1.0 if st[S_POS] > 0.0 else -1.0
        n = _close_position(st, p, bar, ts, o * (1.0 - side * slip), p[P_TAKER], int(st[S_PEND_EXIT]), ev, n)
    st[S_PEND_EXIT] = 0.0
    pend = st[S_PEND_SIDE]
    if pend != 0.0 and st[S_POS] == 0.0:
        if p[P_POST_ONLY] > 0.0:
            limit = st[S_PEND_LIMIT]
            if pend > 0.0 and (o <= limit or lo < limit):
                n = _open_position(st, bar, pend, st[S_PEND_AMOUNT], min(o, limit), p[P_MAKER], ev, n)
            elif pend < 0.0 and (o >= limit or h > limit):
                n = _open_position(st, bar, pend, st[S_PEND_AMOUNT], max(o, limit), p[P_MAKER], ev, n)
            else:
                n = _event(ev, n, EV_SKIP, bar, pend, st[S_PEND_AMOUNT], limit, 0.0, R_NOT_FILLED, st[S_PEND_VOTERS])
        else:
            n = _open_position(st, bar, pend, st[S_PEND_AMOUNT], o * (1.0 + pend * slip), p[P_TAKER], ev, n)
    st[S_PEND_SIDE] = 0.0

    # 3. interest, then stops on this bar's range
    if st[S_POS] != 0.0:
        st[S_INTEREST] += abs(st[S_POS]) * st[S_ENTRY_PRICE] * p[P_INTEREST] * p[P_BAR_MS] / DAY_MS
        if st[S_ENTRY_BAR] < bar or p[P_STOPS_ON_FILL] > 0.0:
            long = st[S_POS] > 0.0
            stop, take = st[S_SL], st[S_TP]
            if long and lo <= stop:
                n = _close_position(st, p, bar, ts, min(o, stop) * (1.0 - slip), p[P_TAKER], R_STOP_LOSS, ev, n)
            elif not long and h >= stop:
                n = _close_position(st, p, bar, ts, max(o, stop) * (1.0 + slip), p[P_TAKER], R_STOP_LOSS, ev, n)
            elif long and h >= take:
                n = _close_position(st, p, bar, ts, max(o, take), p[P_MAKER], R_TAKE_PROFIT, ev, n)
            elif not long and lo <= take:
                n = _close_position(st, p, bar, ts, min(o, take), p[P_MAKER], R_TAKE_PROFIT, ev, n)

    # 4. mark to market and risk state
    st[S_EQUITY] = st[S_CASH] + st[S_POS] * c - st[S_INTEREST]
    if st[S_EQUITY] > st[S_PEAK]:
        st[S_PEAK] = st[S_EQUITY]
    st[S_BARS] += 1.0
    prev = st[S_PREV_CLOSE]
    st[S_PREV_CLOSE] = c
    st[S_ANOMALY] = 0.0
    if p[P_RISK_ON] > 0.0:
        if st[S_HALTED] == 0.0 and 1.0 - st[S_EQUITY] / st[S_PEAK] >= p[P_MAX_DD]:
            st[S_HALTED] = 1.0
        if st[S_EQUITY] <= st[S_DAY_START_EQ] * (1.0 - p[P_DAILY_LIMIT]):
            st[S_DAY_HALT] = 1.0
        if np.isfinite(prev) and prev > 0.0:
            ret = c / prev - 1.0
            lb = int(p[P_JUMP_LB])
            win = S_HEADER + 2 * int(p[P_LOOKBACK])
            if int(st[win]) >= lb:
                sd = window_std(st, win, lb)
                if sd > 0.0 and abs(ret - window_mean(st, win, lb)) > p[P_JUMP_Z] * sd:
                    st[S_ANOMALY] = 1.0
            window_push(st, win, lb, ret)
        if st[S_HALTED] > 0.0 and st[S_POS] != 0.0:
            st[S_PEND_EXIT] = R_RISK_HALT  # flatten at the next open; no new entries until resumed

    # 5. the signal of this close
    if action != 0.0 and np.isfinite(action):
        pos = st[S_POS]
        if pos != 0.0 and (pos > 0.0) != (action > 0.0):
            if st[S_PEND_EXIT] == 0.0:
                st[S_PEND_EXIT] = R_SIGNAL
            if p[P_REVERSE] > 0.0:
                n = _consider_entry(st, p, bar, ts, action, c, sl, tp, voters, ml_p, ev, n)
        elif pos == 0.0:
            n = _consider_entry(st, p, bar, ts, action, c, sl, tp, voters, ml_p, ev, n)
    return n


@njit(cache=True)
def execution_batch(p: np.ndarray, ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                    action: np.ndarray, sl: np.ndarray, tp: np.ndarray, voters: np.ndarray, ml_p: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run `execution_step` over history; an open position is closed at the last close (end_of_data).

    Returns (events (k, EV_WIDTH), equity per bar, signed position per bar, final state).
    """
    n_bars = c.shape[0]
    st = execution_init(p)
    ev = np.empty((EV_MAX, EV_WIDTH))
    out = np.empty((max(16, 2 * n_bars + 4), EV_WIDTH))
    k = 0
    equity = np.empty(n_bars)
    position = np.empty(n_bars)
    for i in range(n_bars):
        m = execution_step(st, p, i, ts[i], o[i], h[i], lo[i], c[i], action[i], sl[i], tp[i], voters[i], ml_p[i], ev)
        if k + m > out.shape[0]:
            bigger = np.empty((out.shape[0] * 2, EV_WIDTH))
            bigger[:k] = out[:k]
            out = bigger
        out[k : k + m] = ev[:m]
        k += m
        equity[i] = st[S_EQUITY]
        position[i] = st[S_POS]
    if n_bars > 0 and st[S_POS] != 0.0:
        last = n_bars - 1
        side = 1.0 if st[S_POS] > 0.0 else -1.0
        m = _close_position(st, p, last, ts[last], c[last] * (1.0 - side * p[P_SLIP]), p[P_TAKER], R_END_OF_DATA, ev, 0)
        if k + m > out.shape[0]:
            bigger = np.empty((out.shape[0] + 4, EV_WIDTH))
            bigger[:k] = out[:k]
            out = bigger
        out[k : k + m] = ev[:m]
        k += m
        st[S_EQUITY] = st[S_CASH]
        equity[last] = st[S_EQUITY]
        position[last] = 0.0
    return out[:k].copy(), equity, position, st
