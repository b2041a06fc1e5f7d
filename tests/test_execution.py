"""Fill rules and risk stops of the shared execution kernel, each against a hand calculation."""

from __future__ import annotations

import numpy as np
import pytest

from cryptobot.config import Config
from cryptobot.execution import REASONS, execution_params
from cryptobot.kernels import execution as ex
from cryptobot.kernels.risk import kelly_fraction, round_amount

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z


def params(gated: bool = False, **overrides: float) -> np.ndarray:
    cfg = Config.model_validate({
        "costs": {"taker_fee": 0.001, "maker_fee": 0.0, "slippage_bps": 0.0, "margin_interest_daily": 0.0004},
        "execution": {"initial_capital": 1_000_000.0, "fixed_amount": 0.1, "stops_on_fill_bar": True},
        "risk": {"enabled": False},
    })
    p = execution_params(cfg, HOUR, gated=gated)
    for key, value in overrides.items():
        p[getattr(ex, key)] = value
    return p


def simulate(bars: list[tuple[float, float, float, float]], signals: dict[int, tuple[float, float, float]],
             p: np.ndarray, ml: list[float] | None = None) -> tuple[list[dict], np.ndarray]:
    """bars: (open, high, low, close); signals: bar → (action, stop-loss, take-profit) decided at that close."""
    n = len(bars)
    arr = np.array(bars, dtype=np.float64)
    action = np.zeros(n)
    sl = np.full(n, np.nan)
    tp = np.full(n, np.nan)
    for i, (a, s, t) in signals.items():
        action[i], sl[i], tp[i] = a, s, t
    ts = T0 + np.arange(n, dtype=np.int64) * HOUR
    ml_arr = np.full(n, np.nan) if ml is None else np.array(ml, dtype=np.float64)
    events, equity, _, _ = ex.execution_batch(p, ts, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], action, sl, tp,
                                              np.ones(n), ml_arr)
    names = {ex.EV_ENTRY: "entry", ex.EV_EXIT: "exit", ex.EV_SKIP: "skip"}
    out = [{"kind": names[int(e[ex.EV_KIND])], "bar": int(e[ex.EV_BAR]), "side": e[ex.EV_SIDE],
            "amount": e[ex.EV_AMOUNT], "price": e[ex.EV_PRICE], "fee": e[ex.EV_FEE], "interest": e[ex.EV_INTEREST],
            "pnl": e[ex.EV_PNL], "reason": REASONS[int(e[ex.EV_REASON])]} for e in events]
    return out, equity


FLAT = (5_000_000.0, 5_010_000.0, 4_990_000.0, 5_000_000.0)


def test_signal_at_close_fills_at_next_open_with_taker_fee_and_slippage() -> None:
    p = params(P_SLIP=0.0005)
    bars = [FLAT, (5_020_000.0, 5_030_000.0, 5_010_000.0, 5_025_000.0), FLAT]
    events, _ = simulate(bars, {0: (1.0, 4_500_000.0, np.nan)}, p)
    entry = events[0]
    assert entry["kind"] == "entry" and entry["bar"] == 1
    assert entry["price"] == pytest.approx(5_020_000.0 * 1.0005)  # bar 1 open plus 5 bps against us
    assert entry["fee"] == pytest.approx(0.001 * 5_020_000.0 * 1.0005 * 0.1)


def test_stop_loss_taken_first_when_both_levels_are_inside_one_bar() -> None:
    p = params(P_SLIP=0.0001)
    bars = [FLAT, FLAT, (5_000_000.0, 5_600_000.0, 4_400_000.0, 5_000_000.0)]
    events, _ = simulate(bars, {0: (1.0, 4_500_000.0, 5_500_000.0)}, p)
    exit_ = events[1]
    assert exit_["reason"] == "stop_loss" and exit_["bar"] == 2
    assert exit_["price"] == pytest.approx(4_500_000.0 * (1 - 0.0001))  # stop price plus slippage, never better


def test_gap_through_stop_fills_at_the_open() -> None:
    bars = [FLAT, FLAT, (4_300_000.0, 4_400_000.0, 4_200_000.0, 4_350_000.0)]
    events, _ = simulate(bars, {0: (1.0, 4_500_000.0, np.nan)}, params())
    assert events[1]["reason"] == "stop_loss" and events[1]["price"] == 4_300_000.0
    short, _ = simulate([FLAT, FLAT, (5_700_000.0, 5_800_000.0, 5_650_000.0, 5_700_000.0)],
                        {0: (-1.0, 5_500_000.0, np.nan)}, params())
    assert short[1]["reason"] == "stop_loss" and short[1]["price"] == 5_700_000.0


def test_take_profit_is_a_maker_limit_without_slippage_long_and_short() -> None:
    """Maker 0.02 %, taker 0.1 %, slippage 5 bps: the entry pays taker fee and slippage, the take-profit
    fills exactly at its level with the maker fee."""
    p = params(P_MAKER=0.0002, P_SLIP=0.0005)
    bars = [FLAT, FLAT, (5_050_000.0, 5_600_000.0, 5_040_000.0, 5_550_000.0)]
    events, _ = simulate(bars, {0: (1.0, 4_500_000.0, 5_500_000.0)}, p)
    entry, exit_ = events
    assert entry["price"] == pytest.approx(5_000_000.0 * 1.0005)
    assert exit_["reason"] == "take_profit" and exit_["price"] == 5_500_000.0
    assert exit_["fee"] == pytest.approx(0.0002 * 5_500_000.0 * 0.1)  # 110 JPY, not 0 and not the taker's 550
    assert exit_["pnl"] == pytest.approx(0.1 * (5_500_000.0 - 5_002_500.0) - 0.001 * 5_002_500.0 * 0.1 - 110.0
                                         - exit_["interest"])
    short_bars = [FLAT, FLAT, (4_950_000.0, 4_960_000.0, 4_400_000.0, 4_450_000.0)]
    events, _ = simulate(short_bars, {0: (-1.0, 5_500_000.0, 4_500_000.0)}, p)
    entry, exit_ = events
    assert entry["price"] == pytest.approx(5_000_000.0 * 0.9995)  # a sell fills below the open
    assert exit_["reason"] == "take_profit" and exit_["price"] == 4_500_000.0
    assert exit_["fee"] == pytest.approx(0.0002 * 4_500_000.0 * 0.1)
    gap, _ = simulate([FLAT, FLAT, (5_700_000.0, 5_800_000.0, 5_650_000.0, 5_700_000.0)],
                      {0: (1.0, 4_500_000.0, 5_500_000.0)}, p)
    assert gap[1]["reason"] == "take_profit" and gap[1]["price"] == 5_700_000.0  # gap through: the better open


def test_nan_levels_are_no_stop_and_no_take_profit() -> None:
    crash = (5_000_000.0, 5_010_000.0, 100_000.0, 4_000_000.0)
    spike = (5_000_000.0, 9_000_000.0, 4_990_000.0, 5_000_000.0)
    events, _ = simulate([FLAT, FLAT, crash, spike, FLAT], {0: (1.0, np.nan, np.nan)}, params())
    assert [(e["kind"], e["bar"], e["reason"]) for e in events] == [("entry", 1, "signal"), ("exit", 4, "end_of_data")]
    events, _ = simulate([FLAT, FLAT, spike, crash, FLAT], {0: (-1.0, np.nan, np.nan)}, params())
    assert [(e["kind"], e["bar"], e["reason"]) for e in events] == [("entry", 1, "signal"), ("exit", 4, "end_of_data")]


def test_stops_on_fill_bar_switch() -> None:
    bars = [FLAT, (5_000_000.0, 5_010_000.0, 4_400_000.0, 4_900_000.0), FLAT]
    on, _ = simulate(bars, {0: (1.0, 4_500_000.0, np.nan)}, params())
    assert on[1]["reason"] == "stop_loss" and on[1]["bar"] == 1
    off, _ = simulate(bars, {0: (1.0, 4_500_000.0, np.nan)}, params(P_STOPS_ON_FILL=0.0))
    assert off[1]["reason"] == "end_of_data" and off[1]["bar"] == 2


def test_reversal_closes_then_optionally_opens_opposite() -> None:
    bars = [FLAT] * 5
    sig = {0: (1.0, 4_000_000.0, np.nan), 2: (-1.0, 6_000_000.0, np.nan)}
    plain, _ = simulate(bars, sig, params())
    assert [(e["kind"], e["bar"], e["reason"]) for e in plain] == [("entry", 1, "signal"), ("exit", 3, "signal")]
    reverse, _ = simulate(bars, sig, params(P_REVERSE=1.0))
    assert [(e["kind"], e["bar"], e["side"]) for e in reverse] == [
        ("entry", 1, 1.0), ("exit", 3, 1.0), ("entry", 3, -1.0), ("exit", 4, -1.0)]
    assert reverse[-1]["reason"] == "end_of_data"


def test_one_net_position_same_side_signals_are_ignored() -> None:
    events, _ = simulate([FLAT] * 5, {0: (1.0, 4e6, np.nan), 1: (1.0, 4e6, np.nan), 2: (1.0, 4e6, np.nan)}, params())
    assert [e["kind"] for e in events] == ["entry", "exit"]


def test_fees_and_interest_to_the_yen() -> None:
    """0.1 BTC long at 5,000,000, closed at 5,100,000 after 24 hourly bars; taker 0.1 %, interest 0.04 %/day."""
    bars = [FLAT] + [FLAT] * 24 + [(5_100_000.0, 5_110_000.0, 5_090_000.0, 5_100_000.0)]
    events, equity = simulate(bars, {0: (1.0, 4_000_000.0, np.nan), 24: (-1.0, 6e6, np.nan)}, params())
    entry, exit_ = events
    assert (entry["bar"], exit_["bar"]) == (1, 25)
    assert entry["fee"] == pytest.approx(500.0)  # 0.001 × 5,000,000 × 0.1
    assert exit_["fee"] == pytest.approx(510.0)  # 0.001 × 5,100,000 × 0.1
    assert exit_["interest"] == pytest.approx(200.0)  # 0.1 × 5,000,000 × 0.0004 × 24 bars / 24 per day
    assert exit_["pnl"] == pytest.approx(10_000.0 - 500.0 - 510.0 - 200.0)  # 8,790 JPY
    assert equity[-1] == pytest.approx(1_000_000.0 + 8_790.0)


def test_post_only_fills_only_when_the_next_bar_trades_through() -> None:
    """Maker 0.02 %, slippage 5 bps: a post-only entry fills at its limit (no slippage) with the maker fee."""
    p = params(P_POST_ONLY=1.0, P_MAKER=0.0002, P_SLIP=0.0005)
    through = [FLAT, (5_010_000.0, 5_020_000.0, 4_995_000.0, 5_000_000.0), FLAT]
    events, _ = simulate(through, {0: (1.0, 4e6, np.nan)}, p)
    assert events[0]["kind"] == "entry" and events[0]["price"] == 5_000_000.0
    assert events[0]["fee"] == pytest.approx(0.0002 * 5_000_000.0 * 0.1)  # 100 JPY
    assert events[1]["price"] == pytest.approx(5_000_000.0 * 0.9995)  # the market exit still pays slippage
    away = [FLAT, (5_010_000.0, 5_020_000.0, 5_000_000.0, 5_015_000.0), FLAT]
    missed, _ = simulate(away, {0: (1.0, 4e6, np.nan)}, p)
    assert [(e["kind"], e["reason"]) for e in missed] == [("skip", "not_filled")]
    short_through = [FLAT, (4_990_000.0, 5_005_000.0, 4_980_000.0, 5_000_000.0), FLAT]
    events, _ = simulate(short_through, {0: (-1.0, 6e6, np.nan)}, p)
    assert events[0]["kind"] == "entry" and events[0]["side"] == -1.0 and events[0]["price"] == 5_000_000.0
    assert events[0]["fee"] == pytest.approx(0.0002 * 5_000_000.0 * 0.1)
    opens_above = [FLAT, (5_020_000.0, 5_030_000.0, 5_010_000.0, 5_020_000.0), FLAT]
    events, _ = simulate(opens_above, {0: (-1.0, 6e6, np.nan)}, p)
    assert events[0]["price"] == 5_020_000.0  # opened beyond the limit: filled at the better open
    short_away = [FLAT, (4_990_000.0, 5_000_000.0, 4_980_000.0, 4_985_000.0), FLAT]
    missed, _ = simulate(short_away, {0: (-1.0, 6e6, np.nan)}, p)
    assert [(e["kind"], e["reason"]) for e in missed] == [("skip", "not_filled")]


def test_below_minimum_size_is_skipped_not_rounded_up() -> None:
    p = params(P_FIXED_AMOUNT=0.0, P_INIT_CASH=10_000.0)  # 1 % of 10,000 JPY at 5 M JPY = 0.00002 BTC
    events, _ = simulate([FLAT] * 3, {0: (1.0, 4e6, np.nan)}, p)
    assert [(e["kind"], e["reason"]) for e in events] == [("skip", "below_min_size")]
    assert round_amount(0.00029, 0.0001) == pytest.approx(0.0002)


def test_kelly_against_hand_calculation() -> None:
    returns = np.array([0.02] * 12 + [-0.01] * 8)  # p = 0.6, b = 2 → f = (2·0.6 − 0.4)/2 = 0.4
    day = 86_400_000.0
    closed = np.arange(20) * 3_600_000.0  # closed hourly from t = 0
    now, window = 20 * 3_600_000.0, 30 * day
    assert kelly_fraction(returns, closed, 20, now, window, 20, 0.7, 1.0, 0.01) == pytest.approx(0.28)
    assert kelly_fraction(returns, closed, 20, now, window, 20, 0.7, 0.10, 0.01) == pytest.approx(0.10)  # capped
    assert kelly_fraction(returns, closed, 19, now, window, 20, 0.7, 0.10, 0.01) == pytest.approx(0.01)  # too few
    losing = np.array([-0.01] * 20 + [0.005])
    assert kelly_fraction(losing, np.zeros(21), 21, now, window, 20, 0.7, 0.1, 0.01) == 0.0  # no edge
    # the window: the first trade closed at 0; 30 days later it no longer counts, leaving 19 → fallback
    assert kelly_fraction(returns, closed, 20, window - 1.0, window, 20, 0.7, 1.0, 0.01) == pytest.approx(0.28)
    assert kelly_fraction(returns, closed, 20, window, window, 20, 0.7, 1.0, 0.01) == pytest.approx(0.01)
    assert kelly_fraction(losing, np.zeros(21), 21, window, window, 20, 0.7, 0.1, 0.01) == pytest.approx(0.01)


def test_kelly_sizes_entries_after_min_trades() -> None:
    """Four fallback-sized trades (win +10 %, loss −5 %, win, win; no costs), then the fifth entry is Kelly
    sized: equity × min(f · safety, cap) / price, rounded down to the 0.0001 step."""
    up = (5_000_000.0, 5_600_000.0, 4_990_000.0, 5_000_000.0)  # reaches the +10 % take-profit
    down = (5_000_000.0, 5_010_000.0, 4_700_000.0, 5_000_000.0)  # reaches the −5 % stop
    bars, sig = [FLAT], {}
    for outcome in (up, down, up, up, FLAT):
        sig[len(bars) - 1] = (1.0, 4_750_000.0, 5_500_000.0)
        bars += [FLAT, outcome]
    for cap in (1.0, 0.1):
        p = params(P_FIXED_AMOUNT=0.0, P_MIN_TRADES=4.0, P_MAX_POS=cap, P_TAKER=0.0, P_INTEREST=0.0)
        events, equity = simulate(bars, sig, p)
        exits = [e for e in events if e["kind"] == "exit"]
        entries = [e for e in events if e["kind"] == "entry"]
        assert len(entries) == 5 and [e["reason"] for e in exits[:4]] == ["take_profit", "stop_loss"] + ["take_profit"] * 2
        # fallback 1 % of equity: 0.002 BTC per trade (1,001,000 and 1,000,500 × 1 % / 5 M round down to 0.0020)
        assert [e["amount"] for e in entries[:4]] == pytest.approx([0.002] * 4)
        returns = [0.1, -0.05, 0.1, 0.1]
        assert [e["pnl"] / (e["amount"] * 5_000_000.0) for e in exits[:4]] == pytest.approx(returns)
        wins = [r for r in returns if r > 0]
        losses = [-r for r in returns if r < 0]
        win_rate = len(wins) / len(returns)  # 0.75
        b = (sum(wins) / len(wins)) / (sum(losses) / len(losses))  # 0.10 / 0.05 = 2
        f = (b * win_rate - (1 - win_rate)) / b  # (1.5 − 0.25) / 2 = 0.625
        equity_now = 1_000_000.0 + 1_000.0 - 500.0 + 1_000.0 + 1_000.0  # ± 0.002 BTC × 500,000 / 250,000
        assert equity[8] == pytest.approx(equity_now)
        expected = np.floor(equity_now * min(f * 0.7, cap) / 5_000_000.0 / 0.0001 + 1e-9) * 0.0001
        assert expected == pytest.approx(0.0877 if cap == 1.0 else 0.0200)  # 1,002,500 × 0.4375 or × 0.1 / 5 M
        assert entries[4]["amount"] == pytest.approx(expected)


def test_kelly_window_recovers_from_no_edge() -> None:
    """Win +5 %, loss −10 % (min_trades 2): Kelly f = (0.5·0.5 − 0.5)/0.5 < 0 → entries are skipped as
    no_edge until the first of them is older than the 30-day window; with one trade left (< min_trades) the
    fallback size applies again."""
    p = params(P_FIXED_AMOUNT=0.0, P_MIN_TRADES=2.0, P_TAKER=0.0, P_INTEREST=0.0)
    assert p[ex.P_KELLY_WINDOW_MS] == 30 * 24 * HOUR  # the default window
    up = (5_000_000.0, 5_600_000.0, 4_990_000.0, 5_000_000.0)
    down = (5_000_000.0, 5_010_000.0, 4_400_000.0, 5_000_000.0)
    bars = [FLAT, FLAT, up, FLAT, down] + [FLAT] * 730
    level = (4_500_000.0, 5_250_000.0)
    first_exit = 2  # the winning trade closes on bar 2, the losing one on bar 4
    sig = {0: (1.0, *level), 2: (1.0, *level), 4: (1.0, *level), 100: (1.0, *level),
           first_exit + 719: (1.0, *level), first_exit + 720: (1.0, *level)}
    events, _ = simulate(bars, sig, p)
    kinds = [(e["kind"], e["bar"], e["reason"]) for e in events]
    assert kinds[:4] == [("entry", 1, "signal"), ("exit", 2, "take_profit"), ("entry", 3, "signal"),
                         ("exit", 4, "stop_loss")]
    assert kinds[4:7] == [("skip", 4, "no_edge"), ("skip", 100, "no_edge"), ("skip", 721, "no_edge")]
    assert kinds[7] == ("entry", 723, "signal")  # decided at bar 722: 720 h = 30 days after the first exit
    equity = 1_000_000.0 + 0.002 * 250_000.0 - 0.002 * 500_000.0  # two fallback trades of 0.002 BTC
    assert events[7]["amount"] == pytest.approx(np.floor(equity * 0.01 / 5_000_000.0 / 0.0001 + 1e-9) * 0.0001)
    assert events[7]["amount"] == pytest.approx(0.0019)


def test_drawdown_scaling_shrinks_the_size() -> None:
    """Fallback 50 % (cap 100 %): a −10 % stop on 0.1 BTC costs 50,000 of 1,000,000 → drawdown 0.05, so the
    next size is 950,000 × 0.5 × (1 − 0.05 / 0.2) / 5,000,000 = 0.07125 → 0.0712 BTC (0.0950 unscaled)."""
    down = (5_000_000.0, 5_010_000.0, 4_400_000.0, 5_000_000.0)
    bars = [FLAT, FLAT, down, FLAT, FLAT]
    sig = {0: (1.0, 4_500_000.0, np.nan), 2: (1.0, 4_500_000.0, np.nan)}
    for scaling, expected in ((1.0, 0.0712), (0.0, 0.095)):
        p = risk_params(P_FIXED_AMOUNT=0.0, P_FALLBACK=0.5, P_MAX_POS=1.0, P_TAKER=0.0, P_INTEREST=0.0,
                        P_DAILY_LIMIT=1.0, P_DD_SCALING=scaling)
        events, equity = simulate(bars, sig, p)
        assert events[0]["amount"] == pytest.approx(0.1) and events[1]["reason"] == "stop_loss"
        assert equity[2] == pytest.approx(950_000.0)
        assert events[2]["kind"] == "entry" and events[2]["amount"] == pytest.approx(expected)


def risk_params(**kw: float) -> np.ndarray:
    base = {"P_RISK_ON": 1.0, "P_MAX_DD": 0.2, "P_LOSS_LIMIT": 3.0, "P_COOLDOWN_MS": 24.0 * HOUR, "P_DAILY_LIMIT": 0.05,
            "P_JUMP_Z": 1e9, "P_DD_SCALING": 0.0}
    base.update(kw)
    return params(**base)


def test_drawdown_halt_flattens_and_stays_halted() -> None:
    """0.2 BTC at 5 M JPY on 1 M: the drawdown follows the price. 0.17 (past 0.15) does not halt, 0.22 (short of
    0.25) does, at exactly that close: a max_drawdown off by 0.05 either way fails this test."""
    p = risk_params(P_FIXED_AMOUNT=0.2, P_DAILY_LIMIT=1.0)
    assert p[ex.P_MAX_DD] == Config().risk.max_drawdown == 0.2
    dip = (5_000_000.0, 5_000_000.0, 4_150_000.0, 4_150_000.0)  # −170,000: drawdown 0.171 with fee and interest
    back = (4_150_000.0, 5_000_000.0, 4_150_000.0, 5_000_000.0)
    crash = (5_000_000.0, 5_000_000.0, 3_900_000.0, 3_900_000.0)  # −220,000: drawdown 0.221
    flat_low = (3_900_000.0,) * 4
    bars = [FLAT, FLAT, dip, back, FLAT, crash, flat_low, flat_low, flat_low]
    events, equity = simulate(bars, {0: (1.0, 1_000_000.0, np.nan), 7: (1.0, 1_000_000.0, np.nan)}, p)
    assert 0.15 < 1 - equity[2] / 1_000_000.0 < 0.2 and 0.2 < 1 - equity[5] / 1_000_000.0 < 0.25
    assert [(e["kind"], e["bar"], e["reason"]) for e in events] == [
        ("entry", 1, "signal"), ("exit", 6, "risk_halt"), ("skip", 7, "risk_halt")]


def test_consecutive_losses_pause_in_bar_time_then_resume() -> None:
    p = risk_params(P_LOSS_LIMIT=2.0, P_COOLDOWN_MS=5.0 * HOUR)
    loss = (5_000_000.0, 5_000_000.0, 4_900_000.0, 4_950_000.0)
    bars = [FLAT, FLAT, loss, FLAT, loss] + [FLAT] * 8
    sig = {0: (1.0, 4_950_000.0, np.nan), 2: (1.0, 4_950_000.0, np.nan), 4: (1.0, 4e6, np.nan),
           6: (1.0, 4e6, np.nan), 10: (1.0, 4e6, np.nan)}
    events, _ = simulate(bars, sig, p)
    kinds = [(e["kind"], e["bar"], e["reason"]) for e in events]
    assert kinds[:4] == [("entry", 1, "signal"), ("exit", 2, "stop_loss"), ("entry", 3, "signal"),
                         ("exit", 4, "stop_loss")]
    # second loss at bar 4 → paused until bar 4's close + 5 h = bar 10's open: bars 4 and 6 are skipped
    assert ("skip", 4, "loss_pause") in kinds and ("skip", 6, "loss_pause") in kinds
    assert ("entry", 11, "signal") in kinds


@pytest.mark.parametrize(("low_close", "halted"), [(4_490_000.0, True), (4_540_000.0, False)])
def test_daily_loss_limit_pins_its_threshold(low_close: float, halted: bool) -> None:
    """0.1 BTC bought at 5,000,000 (fee 500, interest 8.33 a bar) on 1,000,000: a close at 4,490,000 loses
    51,517 today (5.15 %, past the 5 % limit), at 4,540,000 46,517 (4.65 %, short of it) — a limit off by 0.005
    either way fails one of the two cases."""
    p = risk_params(P_FIXED_AMOUNT=0.1, P_MAX_DD=0.9)
    assert p[ex.P_DAILY_LIMIT] == Config().risk.daily_loss_limit == 0.05
    drop = (5_000_000.0, 5_000_000.0, low_close, low_close)
    bars = [FLAT, FLAT, drop, (low_close,) * 4, (low_close,) * 4, (low_close,) * 4]
    events, equity = simulate(bars, {0: (1.0, 1e6, np.nan), 2: (-1.0, 6e6, np.nan), 4: (1.0, 1e6, np.nan)}, p)
    loss = 1 - equity[2] / 1_000_000.0
    assert loss == pytest.approx(0.0515167 if halted else 0.0465167, abs=1e-6)
    kinds = [(e["kind"], e["bar"], e["reason"]) for e in events]
    assert kinds[:2] == [("entry", 1, "signal"), ("exit", 3, "signal")]
    assert kinds[2] == (("skip", 4, "daily_limit") if halted else ("entry", 5, "signal"))


def test_daily_loss_limit_until_next_utc_day() -> None:
    p = risk_params(P_FIXED_AMOUNT=0.1, P_MAX_DD=0.9)
    drop = (5_000_000.0, 5_000_000.0, 4_250_000.0, 4_300_000.0)  # −70,000 JPY on 1,000,000: −7 % today
    bars = [FLAT, FLAT, drop] + [(4_300_000.0,) * 4] * 30
    sig = {0: (1.0, 1e6, np.nan), 2: (-1.0, 6e6, np.nan), 5: (1.0, 1e6, np.nan), 25: (1.0, 1e6, np.nan)}
    events, _ = simulate(bars, sig, p)
    kinds = [(e["kind"], e["bar"], e["reason"]) for e in events]
    assert ("skip", 5, "daily_limit") in kinds  # same UTC day (bars are hours from 00:00)
    assert ("entry", 26, "signal") in kinds  # bar 25 is 01:00 of the next day: allowed again


def test_price_jump_anomaly_skips_the_bar() -> None:
    p = risk_params(P_JUMP_Z=3.0, P_JUMP_LB=5.0)
    wiggle = [(5_000_000.0 + d,) * 4 for d in (0, 1000, -1000, 500, -500, 0, 800, -800)]
    spike = (5_600_000.0,) * 4
    events, _ = simulate(wiggle + [spike, spike], {8: (1.0, 4e6, np.nan)}, p)
    assert [(e["kind"], e["reason"]) for e in events] == [("skip", "anomaly")]


def test_ml_gate_skips_and_scales() -> None:
    p = params(gated=True, P_FIXED_AMOUNT=0.0, P_FALLBACK=0.1, P_MAX_POS=0.2, P_ML_THRESHOLD=0.6, P_ML_SCALE=1.0)
    events, _ = simulate([FLAT] * 3, {0: (1.0, 4e6, np.nan)}, p, ml=[0.55, 0.5, 0.5])
    assert [(e["kind"], e["reason"]) for e in events] == [("skip", "ml_gate")]
    events, _ = simulate([FLAT] * 3, {0: (1.0, 4e6, np.nan)}, p, ml=[0.8, 0.5, 0.5])
    assert events[0]["amount"] == pytest.approx(round_amount(1_000_000 * 0.1 * 0.8 / 5_000_000, 0.0001))


def test_a_missing_ml_probability_closes_the_gate() -> None:
    """Gated (a bundle's probabilities are passed): a NaN probability (warm-up, bad feature row) is no entry."""
    gated = params(gated=True, P_ML_THRESHOLD=0.6)
    events, _ = simulate([FLAT] * 3, {0: (1.0, 4e6, np.nan)}, gated, ml=[np.nan, 0.9, 0.9])
    assert [(e["kind"], e["bar"], e["reason"]) for e in events] == [("skip", 0, "ml_gate")]
    ungated = params(P_ML_THRESHOLD=0.6)  # no gate: the kernel gets NaN everywhere and trades
    events, _ = simulate([FLAT] * 3, {0: (1.0, 4e6, np.nan)}, ungated)
    assert [e["kind"] for e in events] == ["entry", "exit"]


@pytest.mark.parametrize(("key", "value", "leverage", "amount", "reason"), [
    ("P_FIXED_AMOUNT", 0.1, 1.0, 0.1, "signal"),  # 500,000 JPY of 1,000,000: as asked
    ("P_FIXED_AMOUNT", 1.0, 1.0, 0.2, "capped_by_capital"),  # 5,000,000 JPY asked, 1,000,000 × 1 allowed
    ("P_FIXED_AMOUNT", 1.0, 2.0, 0.4, "capped_by_capital"),
    ("P_FIXED_STAKE", 300_000.0, 1.0, 0.06, "signal"),  # 300,000 / 5,000,000
    ("P_FIXED_STAKE", 123_456.0, 1.0, 0.0246, "signal"),  # 0.0246912 rounded down to the step
    ("P_FIXED_STAKE", 3_000_000.0, 1.0, 0.2, "capped_by_capital"),
])
def test_fixed_sizes_are_capped_by_equity_times_leverage(key: str, value: float, leverage: float, amount: float,
                                                         reason: str) -> None:
    p = params(**{"P_FIXED_AMOUNT": 0.0, "P_LEVERAGE": leverage, key: value})
    events, _ = simulate([FLAT] * 3, {0: (1.0, 4e6, np.nan)}, p)
    assert [(e["kind"], e["reason"]) for e in events] == [("entry", reason), ("exit", "end_of_data")]
    assert events[0]["amount"] == pytest.approx(amount)


def test_fixed_amount_and_fixed_stake_are_exclusive() -> None:
    with pytest.raises(ValueError, match="fixed_amount .* and fixed_stake .* are both set"):
        Config.model_validate({"execution": {"fixed_amount": 0.01, "fixed_stake": 50_000.0}})
    assert execution_params(Config.model_validate({"execution": {"fixed_stake": 50_000.0}}), HOUR)[ex.P_FIXED_STAKE] == 50_000.0


def test_shorts_can_be_disabled_and_bad_bars_change_nothing() -> None:
    events, _ = simulate([FLAT] * 3, {0: (-1.0, 6e6, np.nan)}, params(P_ALLOW_SHORT=0.0))
    assert [(e["kind"], e["reason"]) for e in events] == [("skip", "short_disabled")]
    nan_bar = (np.nan, np.nan, np.nan, np.nan)
    events, equity = simulate([FLAT, nan_bar, FLAT, FLAT], {0: (1.0, 4e6, np.nan)}, params())
    assert events[0]["bar"] == 2  # the pending entry waits for the next good bar's open
