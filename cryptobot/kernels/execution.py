"""Position, fills and risk gates as one numba core per closed bar (design §3), shared by backtest, sweep and live.

**One declaration.** `PARAMS`, `STATE`, `BUFFERS`, `EVENT_FIELDS` and `REASON_NAMES` below name every
parameter, scalar state value, ring buffer, event field and reason code once. The numba-visible named
tuples (`ExecutionParams`, `ExecutionState`), the index tuples (`EP`, `ES`, `EV`, `R`), the sizes, the
event record dtype (`EVENT_DTYPE`), the config packing (`cryptobot.execution.execution_params`, by name),
the reason enum (`cryptobot.execution.Reason`), the docs tables and the layout digest saved with every live
state (`cryptobot.execution.LAYOUT_DIGEST`) are derived from it.

**State in registers.** The blocks (`close_trade`, `entry_gate`, `entry_size`, `price_jump`, `write_event`)
are pure `inline="always"` functions: scalars in, new scalars out. `_core` composes them for one bar and is
the only implementation (`execution_core`: one bar; `end_of_data`: the same core with `final=True`, closing
what is still open after the last bar). `execution_step` (live) unpacks the float64 state array into an
`ExecutionState`, calls the core and packs it back (`execution_end` likewise for `end_of_data`);
`execution_batch_into` (research) and the sweep's fused evaluator carry the state in locals over the whole
history and call `end_of_data` after it. The Kelly trade record and the price-jump window are the only
array state: ring buffers after the scalars, reached through a raw data pointer (the size is checked first).

The core processes bar i in this order:
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
Every fill and every skipped entry is written to the event buffer (records of `EVENT_DTYPE`) with a reason.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit
from numba.np.unsafe.ndarray import to_fixed_tuple

from cryptobot.kernels.features import _data_pointer, _layout, ring_sums_push
from cryptobot.kernels.inputs import frozen
from cryptobot.kernels.risk import kelly_fraction_at, round_amount

NAN = np.nan
DAY_MS = 86_400_000

# ------------------------------------------------------------------------------------- the declaration
# Parameters: (name, meaning). Packed in this order into a float64 vector (cryptobot.execution packs by name).
PARAMS: tuple[tuple[str, str], ...] = (
    ("init_cash", "initial capital (quote currency)"),
    ("taker_fee", "taker fee rate per side"),
    ("maker_fee", "maker fee rate per side"),
    ("slippage", "slippage as a fraction of the price (bps / 10,000)"),
    ("interest_daily", "margin interest per day on the entry notional"),
    ("post_only", "1: entries are post-only limits at the signal close"),
    ("stops_on_fill_bar", "1: stops are checked on the fill bar already"),
    ("reverse_on_opposite", "1: an opposite signal also opens the opposite side"),
    ("allow_short", "0: short entries are skipped"),
    ("amount_step", "exchange amount step (sizes round down to it)"),
    ("min_amount", "exchange minimum amount (smaller entries are skipped)"),
    ("leverage", "buying power = equity × leverage"),
    ("bar_ms", "bar length (ms)"),
    ("fixed_amount", "fixed entry size in base units (0: not used)"),
    ("risk_on", "1: drawdown halt, loss pause, daily limit and anomaly skips apply"),
    ("kelly_safety", "fractional Kelly safety factor"),
    ("kelly_cap", "maximum fraction of equity per trade"),
    ("kelly_min_trades", "trades in the window before Kelly applies"),
    ("kelly_fallback", "fraction of equity before Kelly applies"),
    ("kelly_lookback", "trades kept in the Kelly record (ring length)"),
    ("max_drawdown", "drawdown that halts trading"),
    ("drawdown_scaling", "1: size scales down linearly with drawdown"),
    ("loss_limit", "consecutive losses that pause entries"),
    ("cooldown_ms", "length of the loss pause (ms)"),
    ("daily_loss_limit", "loss since the UTC day's start that stops entries for the day"),
    ("jump_zscore", "|z| of a bar return that marks an anomaly"),
    ("jump_lookback", "bar returns in the price-jump window (ring length)"),
    ("ml_threshold", "entries need an ML probability at or above this"),
    ("ml_scale_size", "1: Kelly size × ML probability"),
    ("ml_gated", "1: ML probabilities are given; a missing one closes the gate"),
    ("fixed_stake", "fixed entry stake in quote currency (0: not used)"),
    ("kelly_window_ms", "only trades closed within this window count for Kelly (ms)"),
)
# Scalar state: (name, initial value or the parameter it starts at, meaning). The head of the state array.
STATE: tuple[tuple[str, float | str, str], ...] = (
    ("cash", "init_cash", "cash (quote currency)"),
    ("position", 0.0, "signed position (base units)"),
    ("entry_price", 0.0, "fill price of the open position"),
    ("entry_bar", 0.0, "bar index of the open position's fill"),
    ("entry_fee", 0.0, "fee paid on the open position's fill"),
    ("stop_loss", NAN, "stop-loss level of the open position (NaN: none)"),
    ("take_profit", NAN, "take-profit level of the open position (NaN: none)"),
    ("interest", 0.0, "interest accrued on the open position"),
    ("voters", 0.0, "bit mask of the strategies behind the open position"),
    ("pending_exit", 0.0, "reason code of an exit to fill at the next open (0: none)"),
    ("pending_side", 0.0, "side of an entry to fill at the next open (0: none)"),
    ("pending_amount", 0.0, "size of the pending entry"),
    ("pending_stop_loss", 0.0, "stop-loss level of the pending entry"),
    ("pending_take_profit", 0.0, "take-profit level of the pending entry"),
    ("pending_limit", 0.0, "limit price of the pending entry (the signal close)"),
    ("pending_voters", 0.0, "voters of the pending entry"),
    ("peak", "init_cash", "highest equity marked (drawdown reference)"),
    ("halted", 0.0, "1: drawdown halt (until an operator resumes)"),
    ("losses", 0.0, "consecutive losing trades"),
    ("pause_until", 0.0, "bar time (ms) before which entries are paused"),
    ("next_day", -np.inf, "next UTC midnight (ms): the daily reference resets at it"),
    ("day_start_equity", 0.0, "equity at the start of the UTC day"),
    ("day_halted", 0.0, "1: daily loss limit reached"),
    ("prev_close", NAN, "previous bar's close (price-jump returns)"),
    ("equity", "init_cash", "equity marked at the last close"),
    ("anomaly", 0.0, "1: this bar's return was a price jump"),
    ("kelly_count", 0.0, "trades in the Kelly record (saturates at kelly_lookback)"),
    ("kelly_pos", 0.0, "Kelly record: next write position"),
    ("bars", 0.0, "finite bars processed"),
    ("pending_reason", 0.0, "reason code of the pending entry"),
    ("jump_count", 0.0, "price-jump window: returns pushed (saturates at jump_lookback)"),
    ("jump_pos", 0.0, "price-jump window: next write position"),
    ("jump_centre", 0.0, "price-jump window: centre K of the sums"),
    ("jump_sum", 0.0, "price-jump window: Σ(r − K)"),
    ("jump_sum_sq", 0.0, "price-jump window: Σ(r − K)²"),
)
# Ring buffers after the scalars: (name, parameter giving the length, floats per slot, meaning).
BUFFERS: tuple[tuple[str, str, int, str], ...] = (
    ("kelly_returns", "kelly_lookback", 1, "returns of the recent closed trades"),
    ("kelly_closed_ms", "kelly_lookback", 1, "bar time (ms) each of those trades closed on"),
    ("jump_returns", "jump_lookback", 1, "recent bar returns (price-jump window)"),
)
# Event records (all float64, so a record is also a row of EV_WIDTH floats): (name, meaning).
EVENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("kind", "1 entry, 2 exit, 3 skipped entry"),
    ("bar", "bar index of the fill or skip"),
    ("side", "+1 long, −1 short"),
    ("amount", "size (base units)"),
    ("price", "fill price (skip: the signal close or limit)"),
    ("fee", "fee paid on this fill"),
    ("interest", "exit: interest paid over the trade"),
    ("pnl", "exit: net P&L of the trade"),
    ("trade_return", "exit: pnl / entry notional"),
    ("reason", "reason code (cryptobot.execution.Reason)"),
    ("voters", "bit mask of the strategies behind it"),
    ("entry_bar", "exit: the trade's entry bar"),
    ("entry_price", "exit: the trade's entry price"),
    ("fee_rate", "fill: the fee rate applied"),
)
# Reason codes: code = position + 1 (0 = none).
REASON_NAMES: tuple[str, ...] = (
    "signal", "stop_loss", "take_profit", "risk_halt", "loss_pause", "daily_limit", "anomaly", "below_min_size",
    "ml_gate", "end_of_data", "short_disabled", "not_filled", "no_edge", "capped_by_capital",
)
EVENT_KINDS: tuple[str, ...] = ("entry", "exit", "skip")  # kind = position + 1


class Derived(NamedTuple):
    """Everything the kernel needs from a declaration: named tuple types, sizes, initial values, digest input."""

    params: Any  # namedtuple type ExecutionParams
    state: Any  # namedtuple type ExecutionState
    n_params: int
    n_state: int
    init: tuple[float, ...]  # initial state values (those starting at a parameter: 0, see init_param)
    init_param: tuple[int, ...]  # per state value: index of the parameter it starts at, or −1
    buf_param: tuple[int, ...]
    buf_width: tuple[int, ...]
    shape: str  # what the layout digest hashes (cryptobot.execution.LAYOUT_DIGEST)
    table: str


def derive(params: tuple[tuple[str, str], ...], state: tuple[tuple[str, float | str, str], ...],
           buffers: tuple[tuple[str, str, int, str], ...]) -> Derived:
    """Index tuples, sizes, initial state, buffer table and digest input of a declaration (tests use copies)."""
    param_t = NamedTuple("ExecutionParams", [(n, float) for n, _ in params])  # type: ignore[misc]
    state_t = NamedTuple("ExecutionState", [(n, float) for n, _, _ in state])  # type: ignore[misc]
    pnames = [n for n, _ in params]
    init = tuple(0.0 if isinstance(v, str) else float(v) for _, v, _ in state)
    init_param = tuple(pnames.index(v) if isinstance(v, str) else -1 for _, v, _ in state)
    buf_param = tuple(pnames.index(p) for _, p, _, _ in buffers)
    buf_width = tuple(w for _, _, w, _ in buffers)
    shape = repr((pnames, [(n, v) for n, v, _ in state], [(n, p, w) for n, p, w, _ in buffers]))
    rows = ["| index | state value | initial | meaning |", "|---|---|---|---|"]
    rows += [f"| {i} | `{n}` | {f'`{v}`' if isinstance(v, str) else repr(v)} | {m} |" for i, (n, v, m) in enumerate(state)]
    rows += [f"| then | `{n}` | {w} × `{p}` floats | {m} |" for n, p, w, m in buffers]
    return Derived(param_t, state_t, len(params), len(state), init, init_param, buf_param, buf_width, shape,
                   "\n".join(rows))


_D = derive(PARAMS, STATE, BUFFERS)
ExecutionParams = _D.params
ExecutionState = _D.state
EP = ExecutionParams(*range(_D.n_params))  # parameter indices by name: EP.init_cash == 0
ES = ExecutionState(*range(_D.n_state))  # state indices by name: ES.cash == 0
N_PARAMS: int = _D.n_params
N_STATE: int = _D.n_state
STATE_INIT: tuple[float, ...] = _D.init
STATE_INIT_PARAM: tuple[int, ...] = _D.init_param
BUF_PARAM: tuple[int, ...] = _D.buf_param
BUF_WIDTH: tuple[int, ...] = _D.buf_width
N_BUFFERS = len(BUFFERS)
N_OFFSETS = N_BUFFERS + 1  # execution_layout: each buffer's offset, then the total size
LAYOUT_TABLE: str = _D.table  # the state layout as docs/backtest.md shows it (a test keeps them equal)
PARAMS_TABLE: str = "\n".join(["| index | parameter | meaning |", "|---|---|---|"]
                              + [f"| {i} | `{n}` | {m} |" for i, (n, m) in enumerate(PARAMS)])



def _numbered(type_name: str, names: list[str] | tuple[str, ...], first: int = 0) -> Any:
    """A named tuple `type_name` of consecutive integers from `first`, by name (a constant inside numba)."""
    numbered = NamedTuple(type_name, [(n, int) for n in names])  # type: ignore[misc]
    return numbered(*range(first, first + len(names)))


BF = _numbered("BufferIndex", [n for n, _, _, _ in BUFFERS])  # buffer positions in execution_layout by name

EV = _numbered("EventFields", [n for n, _ in EVENT_FIELDS])  # field positions by name: EV.price == 4
EV_WIDTH = len(EVENT_FIELDS)
EV_MAX = 4  # events one bar can write (exit, entry, same-bar stop exit, skip)
EVENT_DTYPE = np.dtype([(n, np.float64) for n, _ in EVENT_FIELDS])
EVENT_TABLE: str = "\n".join(["| field | meaning |", "|---|---|"] + [f"| `{n}` | {m} |" for n, m in EVENT_FIELDS])

R = _numbered("ReasonCodes", REASON_NAMES, 1)  # codes by name: R.stop_loss == 2
KIND = _numbered("EventKinds", EVENT_KINDS, 1)  # event kinds by name: KIND.exit == 2

# Positional aliases (older callers, tests and notebooks index with these).
R_SIGNAL, R_STOP_LOSS, R_TAKE_PROFIT, R_RISK_HALT, R_LOSS_PAUSE, R_DAILY_LIMIT = R[:6]
R_ANOMALY, R_BELOW_MIN, R_ML_GATE, R_END_OF_DATA, R_SHORT_DISABLED, R_NOT_FILLED, R_NO_EDGE, R_CAPPED = R[6:]
EV_ENTRY, EV_EXIT, EV_SKIP = KIND
(EV_KIND, EV_BAR, EV_SIDE, EV_AMOUNT, EV_PRICE, EV_FEE, EV_INTEREST, EV_PNL, EV_RETURN, EV_REASON, EV_VOTERS,
 EV_ENTRY_BAR, EV_ENTRY_PRICE, EV_FEE_RATE) = EV
(P_INIT_CASH, P_TAKER, P_MAKER, P_SLIP, P_INTEREST, P_POST_ONLY, P_STOPS_ON_FILL, P_REVERSE, P_ALLOW_SHORT,
 P_STEP, P_MIN_AMOUNT, P_LEVERAGE, P_BAR_MS, P_FIXED_AMOUNT, P_RISK_ON, P_SAFETY, P_MAX_POS, P_MIN_TRADES,
 P_FALLBACK, P_LOOKBACK, P_MAX_DD, P_DD_SCALING, P_LOSS_LIMIT, P_COOLDOWN_MS, P_DAILY_LIMIT, P_JUMP_Z,
 P_JUMP_LB, P_ML_THRESHOLD, P_ML_SCALE, P_ML_ON, P_FIXED_STAKE, P_KELLY_WINDOW_MS) = EP
(S_CASH, S_POS, S_ENTRY_PRICE, S_ENTRY_BAR, S_ENTRY_FEE, S_SL, S_TP, S_INTEREST, S_VOTERS, S_PEND_EXIT,
 S_PEND_SIDE, S_PEND_AMOUNT, S_PEND_SL, S_PEND_TP, S_PEND_LIMIT, S_PEND_VOTERS, S_PEAK, S_HALTED, S_LOSSES,
 S_PAUSE_UNTIL, S_DAY, S_DAY_START_EQ, S_DAY_HALT, S_PREV_CLOSE, S_EQUITY, S_ANOMALY, S_KELLY_N, S_KELLY_POS,
 S_BARS, S_PEND_REASON) = ES[:30]


# ------------------------------------------------------------------------------------------- blocks
@njit(cache=True, inline="always")
def write_event(evp: Any, n: int, kind: int, bar: int, side: float, amount: float, price: float, fee: float,
                interest: float, pnl: float, ret: float, reason: float, voters: float, entry_bar: float,
                entry_price: float, fee_rate: float) -> int:
    """Record n of the event buffer (raw pointer to float64, EV_WIDTH per record); returns n + 1."""
    b = n * EV_WIDTH
    (evp[b + EV.kind], evp[b + EV.bar], evp[b + EV.side], evp[b + EV.amount], evp[b + EV.price], evp[b + EV.fee],
     evp[b + EV.interest], evp[b + EV.pnl], evp[b + EV.trade_return], evp[b + EV.reason], evp[b + EV.voters],
     evp[b + EV.entry_bar], evp[b + EV.entry_price], evp[b + EV.fee_rate]) = (
        float(kind), float(bar), side, amount, price, fee, interest, pnl, ret, reason, voters, entry_bar, entry_price,
        fee_rate)
    return n + 1


@njit(cache=True, inline="always")
def close_trade(q: Any, buf: Any, rets: int, closed: int, evp: Any, n: int, bar: int, ts: int, price: float, fee_rate: float,
                reason: float, cash: float, pos: float, entry_price: float, entry_bar: float, entry_fee: float,
                interest: float, voters: float, kelly_count: float, kelly_pos: float, losses: float,
                pause_until: float) -> tuple[float, float, float, float, float, int]:
    """Close the whole position at `price`: the exit event, the trade into the Kelly record (return and the bar
    time it closed on: rings at buf[rets:] and buf[closed:]), the consecutive-loss pause (bar time).

    Returns (cash, kelly_count, kelly_pos, losses, pause_until, n); the position is flat afterwards.
    """
    side = 1.0 if pos > 0.0 else -1.0
    amount = abs(pos)
    fee = fee_rate * price * amount
    pnl = side * amount * (price - entry_price) - entry_fee - fee - interest
    ret = pnl / (amount * entry_price)
    cash += side * amount * price - fee - interest
    n = write_event(evp, n, KIND.exit, bar, side, amount, price, fee, interest, pnl, ret, reason, voters, entry_bar,
                    entry_price, fee_rate)
    lookback = int(q.kelly_lookback)
    at = int(kelly_pos)
    buf[rets + at] = ret
    buf[closed + at] = ts
    kelly_pos = float((at + 1) % lookback)
    kelly_count = min(kelly_count + 1.0, lookback)
    if pnl < 0.0:
        losses += 1.0
        if q.risk_on > 0.0 and losses >= q.loss_limit:
            pause_until = ts + q.bar_ms + q.cooldown_ms
            losses = 0.0
    else:
        losses = 0.0
    return cash, kelly_count, kelly_pos, losses, pause_until, n


@njit(cache=True, inline="always")
def entry_gate(q: Any, ts: int, side: float, ml_p: float, halted: float, pause_until: float, day_halted: float,
               anomaly: float) -> int:
    """0 when a new entry may be taken now, else the reason code of the skip."""
    if side < 0.0 and q.allow_short == 0.0:
        return R.short_disabled
    if q.risk_on > 0.0:
        if halted > 0.0:
            return R.risk_halt
        if ts < pause_until:
            return R.loss_pause
        if day_halted > 0.0:
            return R.daily_limit
        if anomaly > 0.0:
            return R.anomaly
    if q.ml_gated > 0.0 and not (ml_p >= q.ml_threshold):  # a missing (NaN) probability closes the gate
        return R.ml_gate
    return 0


@njit(cache=True, inline="always")
def entry_size(q: Any, buf: Any, rets: int, closed: int, ts: int, close: float, ml_p: float, equity: float, peak: float,
               kelly_count: float) -> tuple[float, int]:
    """(amount, reason) of an entry decided at `close`.

    A fixed amount (base units) or stake (quote currency) is capped at equity × leverage: above it the entry
    trades at the cap with reason `capped_by_capital`. Otherwise equity × leverage × Kelly fraction (trades
    closed within the Kelly window) × drawdown scale × ML probability; Kelly f ≤ 0 → (0, no_edge).
    """
    buying_power = equity * q.leverage
    if q.fixed_amount > 0.0 or q.fixed_stake > 0.0:
        if q.fixed_amount > 0.0:
            amount = q.fixed_amount
        else:
            amount = round_amount(q.fixed_stake / close, q.amount_step)
        if amount * close > buying_power:
            return round_amount(buying_power / close, q.amount_step), R.capped_by_capital
        return amount, R.signal
    frac = kelly_fraction_at(buf, rets, closed, int(kelly_count), float(ts), q.kelly_window_ms,
                             int(q.kelly_min_trades), q.kelly_safety, q.kelly_cap, q.kelly_fallback)
    if frac <= 0.0:
        return 0.0, R.no_edge
    if q.risk_on > 0.0 and q.drawdown_scaling > 0.0:
        dd = 1.0 - equity / peak
        frac *= max(0.0, 1.0 - dd / q.max_drawdown)
    if q.ml_gated > 0.0 and q.ml_scale_size > 0.0:
        frac *= ml_p
    return round_amount(buying_power * frac / close, q.amount_step), R.signal


@njit(cache=True, inline="always")
def price_jump(q: Any, buf: Any, jump: int, prev: float, c: float, count: float, pos: float, centre: float,
               s1: float, s2: float) -> tuple[float, float, float, float, float, float]:
    """Anomaly flag of this close's return against the window of the last `jump_lookback` returns, then
    push the return. Returns (anomaly, count, pos, centre, s1, s2)."""
    anomaly = 0.0
    if not (np.isfinite(prev) and prev > 0.0):
        return anomaly, count, pos, centre, s1, s2
    ret = c / prev - 1.0
    lb = int(q.jump_lookback)
    if int(count) >= lb:
        m = s1 / lb
        var = s2 / lb - m * m
        sd = np.sqrt(var) if var > 0.0 else 0.0
        if sd > 0.0 and abs(ret - (centre + s1 / lb)) > q.jump_zscore * sd:
            anomaly = 1.0
    p, centre, s1, s2 = ring_sums_push(buf, jump, lb, int(count), int(pos), centre, s1, s2, ret, True, False)
    return anomaly, float(min(int(count) + 1, lb)), float(p), centre, s1, s2


# -------------------------------------------------------------------------------------- the core
@njit(cache=True, inline="always")
def _core(q: Any, s: Any, buf: Any, off: Any, evp: Any, n: int, bar: int, ts: int, o: float, h: float, lo: float,
          c: float, action: float, sl: float, tp: float, voters: float, ml_p: float, final: bool
          ) -> tuple[Any, int]:
    """One finite bar (or, with the literal `final`, the end-of-data close at `c`): new state and the event
    count. The only implementation of the execution rules."""
    rets, closed, jump = off[BF.kelly_returns], off[BF.kelly_closed_ms], off[BF.jump_returns]
    cash, pos, entry_price, entry_bar, entry_fee = s.cash, s.position, s.entry_price, s.entry_bar, s.entry_fee
    stop, take, interest, held, pend_exit = s.stop_loss, s.take_profit, s.interest, s.voters, s.pending_exit
    pend_side, pend_amount, pend_sl, pend_tp = s.pending_side, s.pending_amount, s.pending_stop_loss, \
        s.pending_take_profit
    pend_limit, pend_voters, peak, halted, losses = s.pending_limit, s.pending_voters, s.peak, s.halted, s.losses
    pause_until, next_day, day_eq, day_halted = s.pause_until, s.next_day, s.day_start_equity, s.day_halted
    prev_close, equity, anomaly, kelly_count, kelly_pos = s.prev_close, s.equity, s.anomaly, s.kelly_count, \
        s.kelly_pos
    bars, pend_reason = s.bars, s.pending_reason
    j_count, j_pos, j_centre, j_s1, j_s2 = s.jump_count, s.jump_pos, s.jump_centre, s.jump_sum, s.jump_sum_sq

    if final:  # end of data: close what is open at the last close (market), equity is the cash
        if pos != 0.0:
            side = 1.0 if pos > 0.0 else -1.0
            cash, kelly_count, kelly_pos, losses, pause_until, n = close_trade(
                q, buf, rets, closed, evp, n, bar, ts, c * (1.0 - side * q.slippage), q.taker_fee, R.end_of_data, cash, pos,
                entry_price, entry_bar, entry_fee, interest, held, kelly_count, kelly_pos, losses, pause_until)
            pos, interest, stop, take, pend_exit = 0.0, 0.0, NAN, NAN, 0.0
            equity = cash
    else:
        slip = q.slippage
        if ts >= next_day:  # next_day holds the next UTC midnight (ms): one division per day, not per bar
            next_day = float((ts // DAY_MS + 1) * DAY_MS)
            day_eq = equity
            day_halted = 0.0

        # 2. orders from the previous close fill at this open
        if pend_exit > 0.0 and pos != 0.0:
            side = 1.0 if pos > 0.0 else -1.0
            cash, kelly_count, kelly_pos, losses, pause_until, n = close_trade(
                q, buf, rets, closed, evp, n, bar, ts, o * (1.0 - side * slip), q.taker_fee, pend_exit, cash, pos,
                entry_price, entry_bar, entry_fee, interest, held, kelly_count, kelly_pos, losses, pause_until)
            pos, interest, stop, take = 0.0, 0.0, NAN, NAN
        pend_exit = 0.0
        if pend_side != 0.0 and pos == 0.0:
            fill = NAN
            fee_rate = q.taker_fee
            if q.post_only > 0.0:
                fee_rate = q.maker_fee
                if pend_side > 0.0 and (o <= pend_limit or lo < pend_limit):
                    fill = min(o, pend_limit)
                elif pend_side < 0.0 and (o >= pend_limit or h > pend_limit):
                    fill = max(o, pend_limit)
                else:
                    n = write_event(evp, n, KIND.skip, bar, pend_side, pend_amount, pend_limit, 0.0, NAN, NAN, NAN,
                                    R.not_filled, pend_voters, NAN, NAN, NAN)
            else:
                fill = o * (1.0 + pend_side * slip)
            if fill == fill:
                entry_fee = fee_rate * fill * pend_amount
                pos = pend_side * pend_amount
                entry_price, entry_bar, interest = fill, float(bar), 0.0
                stop, take, held = pend_sl, pend_tp, pend_voters
                cash -= pend_side * pend_amount * fill + entry_fee
                n = write_event(evp, n, KIND.entry, bar, pend_side, pend_amount, fill, entry_fee, NAN, NAN, NAN,
                                pend_reason, held, NAN, NAN, fee_rate)
        pend_side = 0.0

        # 3. interest, then stops on this bar's range
        if pos != 0.0:
            if q.interest_daily != 0.0:  # without interest the accrual is + 0.0 exactly: skip its division
                interest += abs(pos) * entry_price * q.interest_daily * q.bar_ms / DAY_MS
            if entry_bar < bar or q.stops_on_fill_bar > 0.0:
                long = pos > 0.0
                price = NAN
                fee_rate = q.taker_fee
                why = R.stop_loss
                if long and lo <= stop:
                    price = min(o, stop) * (1.0 - slip)
                elif not long and h >= stop:
                    price = max(o, stop) * (1.0 + slip)
                elif long and h >= take:
                    price, fee_rate, why = max(o, take), q.maker_fee, R.take_profit
                elif not long and lo <= take:
                    price, fee_rate, why = min(o, take), q.maker_fee, R.take_profit
                if price == price:
                    cash, kelly_count, kelly_pos, losses, pause_until, n = close_trade(
                        q, buf, rets, closed, evp, n, bar, ts, price, fee_rate, why, cash, pos, entry_price, entry_bar,
                        entry_fee, interest, held, kelly_count, kelly_pos, losses, pause_until)
                    pos, interest, stop, take = 0.0, 0.0, NAN, NAN

        # 4. mark to market and risk state
        equity = cash + pos * c - interest
        if equity > peak:
            peak = equity
        bars += 1.0
        prev = prev_close
        prev_close = c
        anomaly = 0.0
        if q.risk_on > 0.0:
            if halted == 0.0 and 1.0 - equity / peak >= q.max_drawdown:
                halted = 1.0
            if equity <= day_eq * (1.0 - q.daily_loss_limit):
                day_halted = 1.0
            anomaly, j_count, j_pos, j_centre, j_s1, j_s2 = price_jump(q, buf, jump, prev, c, j_count, j_pos,
                                                                       j_centre, j_s1, j_s2)
            if halted > 0.0 and pos != 0.0:
                pend_exit = R.risk_halt  # flatten at the next open; no new entries until resumed

        # 5. the signal of this close
        if action != 0.0 and np.isfinite(action):
            enter = pos == 0.0
            if pos != 0.0 and (pos > 0.0) != (action > 0.0):
                if pend_exit == 0.0:
                    pend_exit = R.signal
                enter = q.reverse_on_opposite > 0.0
            if enter:
                reason = entry_gate(q, ts, action, ml_p, halted, pause_until, day_halted, anomaly)
                amount = 0.0
                why = R.signal
                if reason == 0:
                    amount, why = entry_size(q, buf, rets, closed, ts, c, ml_p, equity, peak, kelly_count)
                    if why == R.no_edge:
                        reason = R.no_edge
                    elif amount < q.min_amount:
                        reason = R.below_min_size
                if reason != 0:
                    n = write_event(evp, n, KIND.skip, bar, action, amount, c, 0.0, NAN, NAN, NAN, reason, voters,
                                    NAN, NAN, NAN)
                else:
                    pend_reason, pend_side, pend_amount = float(why), action, amount
                    pend_sl, pend_tp, pend_limit, pend_voters = sl, tp, c, voters

    new = ExecutionState(
        cash=cash, position=pos, entry_price=entry_price, entry_bar=entry_bar, entry_fee=entry_fee, stop_loss=stop,
        take_profit=take, interest=interest, voters=held, pending_exit=float(pend_exit), pending_side=pend_side,
        pending_amount=pend_amount, pending_stop_loss=pend_sl, pending_take_profit=pend_tp,
        pending_limit=pend_limit, pending_voters=pend_voters, peak=peak, halted=halted, losses=losses,
        pause_until=float(pause_until), next_day=next_day, day_start_equity=day_eq, day_halted=day_halted,
        prev_close=prev_close, equity=equity, anomaly=anomaly, kelly_count=float(kelly_count),
        kelly_pos=kelly_pos, bars=bars, pending_reason=pend_reason, jump_count=j_count, jump_pos=j_pos,
        jump_centre=j_centre, jump_sum=j_s1, jump_sum_sq=j_s2,
    )
    return new, n


@njit(cache=True, inline="always")
def execution_core(q: Any, s: Any, buf: Any, off: Any, evp: Any, n: int, bar: int, ts: int, o: float, h: float,
                   lo: float, c: float, action: float, sl: float, tp: float, voters: float, ml_p: float
                   ) -> tuple[Any, int]:
    """One closed bar: (new state, event count). A bar with a non-finite price changes nothing."""
    if not np.isfinite(o + h + lo + c):
        return s, n  # a bad bar: nothing fills, nothing is decided; state untouched
    return _core(q, s, buf, off, evp, n, bar, ts, o, h, lo, c, action, sl, tp, voters, ml_p, False)


@njit(cache=True)
def end_of_data(q: Any, s: Any, buf: Any, off: Any, evp: Any, n: int, bar: int, ts: int, c: float
                ) -> tuple[Any, int]:
    """After the last bar: an open position is closed at that bar's close (market, reason end_of_data) and
    equity becomes the cash. Used by the batch driver and the sweep's fused evaluator.

    A real call, not inlined: it runs once per history, and a second inlined copy of the core doubled the
    compile time of every driver that uses it; compiled once, it is shared by all of them.
    """
    return _core(q, s, buf, off, evp, n, bar, ts, c, c, c, c, 0.0, NAN, NAN, 0.0, NAN, True)


# ------------------------------------------------------------------------------------- the drivers
@njit(cache=True)
def execution_layout(p: np.ndarray) -> np.ndarray:
    """Offsets of each ring buffer (in BUFFERS order) in the state array; the last entry is the total size."""
    return _layout(N_STATE, BUF_PARAM, BUF_WIDTH, p)


@njit(cache=True)
def execution_state_size(p: np.ndarray) -> int:
    return int(execution_layout(p)[N_BUFFERS])


@njit(cache=True)
def execution_init(p: np.ndarray) -> np.ndarray:
    st = np.zeros(execution_state_size(p), dtype=np.float64)
    for i in range(N_STATE):
        k = STATE_INIT_PARAM[i]
        st[i] = p[k] if k >= 0 else STATE_INIT[i]
    return st


@njit(cache=True, inline="always")
def load_state(st: np.ndarray) -> Any:
    return ExecutionState(*to_fixed_tuple(st, N_STATE))  # type: ignore[call-arg]


@njit(cache=True, inline="always")
def store_state(st: np.ndarray, s: Any) -> None:
    for i in range(N_STATE):
        st[i] = s[i]


@njit(cache=True, inline="always")
def load_params(p: np.ndarray) -> Any:
    return ExecutionParams(*to_fixed_tuple(p, N_PARAMS))  # type: ignore[call-arg]


@njit(cache=True, inline="always")
def buffer_offsets(off: np.ndarray) -> Any:
    """`execution_layout` as a tuple of ints for the core: an array handed to an inlined core costs a
    reference-count increment and decrement (two calls with atomics) every bar; a tuple costs nothing."""
    return to_fixed_tuple(off, N_OFFSETS)  # type: ignore[call-arg]


@njit(cache=True, inline="always")
def check_state(st: np.ndarray, p: np.ndarray) -> Any:
    """The layout of `p` (`buffer_offsets`); the buffers are reached through a raw pointer, so a state of
    another size (or a parameter vector of another length) must never get that far."""
    if p.shape[0] != N_PARAMS:
        raise ValueError("execution parameter vector does not match the kernel's declaration; rebuild it")
    off = execution_layout(p)
    if st.shape[0] != off[N_BUFFERS]:
        raise ValueError("execution state array does not match the layout of these parameters; rebuild it")
    return buffer_offsets(off)


@njit(cache=True)
def execution_step(st: np.ndarray, p: np.ndarray, bar: int, ts: int, o: float, h: float, lo: float, c: float,
                   action: float, sl: float, tp: float, voters: float, ml_p: float, ev: np.ndarray) -> int:
    """Process one closed bar; returns the number of events written to `ev` (a float64 view of at least
    EV_MAX records of EVENT_DTYPE: `events.view(np.float64)`)."""
    off = check_state(st, p)
    if ev.shape[0] < EV_MAX * EV_WIDTH:
        raise ValueError("event buffer holds fewer than EV_MAX records")
    s, n = execution_core(load_params(p), load_state(st), _data_pointer(st), off,  # type: ignore[call-arg]
                          _data_pointer(ev), 0, bar, ts, o, h, lo, c, action, sl, tp, voters, ml_p)  # type: ignore[call-arg]
    store_state(st, s)
    return n


@njit(cache=True)
def execution_batch_into(st: np.ndarray, p: np.ndarray, ts: np.ndarray, o: np.ndarray, h: np.ndarray,
                         lo: np.ndarray, c: np.ndarray, action: np.ndarray, sl: np.ndarray, tp: np.ndarray,
                         voters: np.ndarray, ml_p: np.ndarray, start: int, ev: np.ndarray, equity: np.ndarray,
                         position: np.ndarray) -> tuple[int, int]:
    """The same core as `execution_step` over bars start.., state carried in locals; after the last bar,
    `end_of_data`. Stops early when the event buffer (float64 view of records) might overflow.

    Returns (events written, next bar); next bar == len(c) + 1 once end of data is done.
    """
    off = check_state(st, p)
    q = load_params(p)
    s = load_state(st)
    buf: Any = _data_pointer(st)  # type: ignore[call-arg]
    evp: Any = _data_pointer(ev)
    cap = ev.shape[0] // EV_WIDTH
    n_bars = c.shape[0]
    k = 0
    i = start
    while i < n_bars and k + 2 * EV_MAX <= cap:
        s, k = execution_core(q, s, buf, off, evp, k, i, ts[i], o[i], h[i], lo[i], c[i], action[i], sl[i], tp[i],
                              voters[i], ml_p[i])
        equity[i] = s.equity
        position[i] = s.position
        i += 1
    if i == n_bars and k + EV_MAX <= cap:
        if n_bars > 0:
            last = n_bars - 1
            s, k = end_of_data(q, s, buf, off, evp, k, last, ts[last], c[last])
            equity[last] = s.equity
            position[last] = s.position
        i += 1
    store_state(st, s)
    return k, i


def execution_batch(p: np.ndarray, ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                    action: np.ndarray, sl: np.ndarray, tp: np.ndarray, voters: np.ndarray, ml_p: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`execution_batch_into` over the whole history; an open position is closed at the last close.

    Returns (events (records of EVENT_DTYPE), equity per bar, signed position per bar, final state). Outputs
    are allocated here by NumPy; the event buffer grows when a history has more events than it holds. Inputs
    go in read-only (`frozen`): one compiled signature whoever calls.
    """
    ts = frozen(ts, np.int64)
    o, h, lo, c, action, sl, tp, voters, ml_p = (frozen(x) for x in (o, h, lo, c, action, sl, tp, voters, ml_p))
    n_bars = c.shape[0]
    st = execution_init(p)
    equity = np.empty(n_bars)
    position = np.empty(n_bars)
    chunks = []
    start = 0
    size = max(64, n_bars // 8)
    while start <= n_bars:
        ev = np.empty(size, dtype=EVENT_DTYPE)
        k, start = execution_batch_into(st, p, ts, o, h, lo, c, action, sl, tp, voters, ml_p, start,
                                        ev.view(np.float64), equity, position)
        chunks.append(ev[:k])
        size *= 2
    events = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return events, equity, position, st


@njit(cache=True)
def execution_end(st: np.ndarray, p: np.ndarray, bar: int, ts: int, c: float, ev: np.ndarray) -> int:
    """`end_of_data` on a state array (the step form of what the batch driver does after the last bar)."""
    off = check_state(st, p)
    s, n = end_of_data(load_params(p), load_state(st), _data_pointer(st), off,  # type: ignore[call-arg]
                       _data_pointer(ev), 0, bar, ts, c)  # type: ignore[call-arg]
    store_state(st, s)
    return n
