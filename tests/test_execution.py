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


def params(**overrides: float) -> np.ndarray:
    cfg = Config.model_validate({
        "costs": {"taker_fee": 0.001, "maker_fee": 0.0, "slippage_bps": 0.0, "margin_interest_daily": 0.0004},
        "execution": {"initial_capital": 1_000_000.0, "fixed_amount": 0.1, "stops_on_fill_bar": True},
        "risk": {"enabled": False},
    })
    p = execution_params(cfg, HOUR)
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


def test_take_profit_is_a_maker_limit() -> None:
    bars = [FLAT, FLAT, (5_050_000.0, 5_600_000.0, 5_040_000.0, 5_550_000.0)]
    events, _ = simulate(bars, {0: (1.0, 4_500_000.0, 5_500_000.0)}, params())
    assert events[1]["reason"] == "take_profit" and events[1]["price"] == 5_500_000.0 and events[1]["fee"] == 0.0


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
    p = params(P_POST_ONLY=1.0)
    through = [FLAT, (5_010_000.0, 5_020_000.0, 4_995_000.0, 5_000_000.0), FLAT]
    events, _ = simulate(through, {0: (1.0, 4e6, np.nan)}, p)
    assert events[0]["kind"] == "entry" and events[0]["price"] == 5_000_000.0 and events[0]["fee"] == 0.0
    away = [FLAT, (5_010_000.0, 5_020_000.0, 5_000_000.0, 5_015_000.0), FLAT]
    missed, _ = simulate(away, {0: (1.0, 4e6, np.nan)}, p)
    assert [(e["kind"], e["reason"]) for e in missed] == [("skip", "not_filled")]


def test_below_minimum_size_is_skipped_not_rounded_up() -> None:
    p = params(P_FIXED_AMOUNT=0.0, P_INIT_CASH=10_000.0)  # 1 % of 10,000 JPY at 5 M JPY = 0.00002 BTC
    events, _ = simulate([FLAT] * 3, {0: (1.0, 4e6, np.nan)}, p)
    assert [(e["kind"], e["reason"]) for e in events] == [("skip", "below_min_size")]
    assert round_amount(0.00029, 0.0001) == pytest.approx(0.0002)


def test_kelly_against_hand_calculation() -> None:
    returns = np.array([0.02] * 12 + [-0.01] * 8)  # p = 0.6, b = 2 → f = (2·0.6 − 0.4)/2 = 0.4
    assert kelly_fraction(returns, 20, 20, 0.7, 1.0, 0.01) == pytest.approx(0.28)
    assert kelly_fraction(returns, 20, 20, 0.7, 0.10, 0.01) == pytest.approx(0.10)  # capped
    assert kelly_fraction(returns, 19, 20, 0.7, 0.10, 0.01) == pytest.approx(0.01)  # too few trades: fallback
    assert kelly_fraction(np.array([-0.01] * 20 + [0.005]), 21, 20, 0.7, 0.1, 0.01) == 0.0  # no edge


def test_kelly_sizes_entries_after_min_trades() -> None:
    """Alternating wins: after 4 trades (min_trades 4) size = equity × min(f·safety, cap) / price."""
    p = params(P_FIXED_AMOUNT=0.0, P_RISK_ON=0.0, P_MIN_TRADES=4.0, P_MAX_POS=1.0, P_TAKER=0.0, P_INTEREST=0.0)
    up = (5_000_000.0, 5_600_000.0, 4_990_000.0, 5_000_000.0)
    down = (5_000_000.0, 5_010_000.0, 4_400_000.0, 5_000_000.0)
    bars, sig = [FLAT], {}
    for k in range(5):
        sig[len(bars) - 1] = (1.0, 4_500_000.0, 5_500_000.0)
        bars += [FLAT, up if k % 2 == 0 else down]
    events, equity = simulate(bars, sig, p)
    exits = [e for e in events if e["kind"] == "exit"]
    rets = [e["pnl"] / (e["amount"] * 5_000_000.0) for e in exits[:4]]
    assert rets == pytest.approx([0.1, -0.1, 0.1, -0.1])
    last_entry = [e for e in events if e["kind"] == "entry"][-1]
    f = (1.0 * 0.5 - 0.5) / 1.0  # b = 1, p = 0.5 → f = 0: no edge
    assert f == 0.0 and last_entry["bar"] < 8  # the fifth entry is not taken
    assert [e for e in events if e["kind"] == "skip"][0]["reason"] == "no_edge"


def risk_params(**kw: float) -> np.ndarray:
    base = {"P_RISK_ON": 1.0, "P_MAX_DD": 0.2, "P_LOSS_LIMIT": 3.0, "P_COOLDOWN_MS": 24.0 * HOUR, "P_DAILY_LIMIT": 0.05,
            "P_JUMP_Z": 1e9, "P_DD_SCALING": 0.0}
    base.update(kw)
    return params(**base)


def test_drawdown_halt_flattens_and_stays_halted() -> None:
    p = risk_params(P_FIXED_AMOUNT=1.0, P_DAILY_LIMIT=1.0)  # 1 BTC at 5 M JPY: a 25 % fall costs 25 % of equity
    crash = (5_000_000.0, 5_000_000.0, 3_700_000.0, 3_750_000.0)
    bars = [FLAT, FLAT, crash, (3_750_000.0,) * 4, (3_750_000.0,) * 4, (3_750_000.0,) * 4]
    events, _ = simulate(bars, {0: (1.0, 1_000_000.0, np.nan), 4: (1.0, 1_000_000.0, np.nan)}, p)
    assert [(e["kind"], e["bar"], e["reason"]) for e in events] == [
        ("entry", 1, "signal"), ("exit", 3, "risk_halt"), ("skip", 4, "risk_halt")]


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


def test_daily_loss_limit_until_next_utc_day() -> None:
    p = risk_params(P_FIXED_AMOUNT=1.0, P_MAX_DD=0.9)
    drop = (5_000_000.0, 5_000_000.0, 4_600_000.0, 4_650_000.0)  # −350,000 JPY on 1,000,000: −35 % today
    bars = [FLAT, FLAT, drop] + [(4_650_000.0,) * 4] * 30
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
    p = params(P_FIXED_AMOUNT=0.0, P_FALLBACK=0.1, P_MAX_POS=0.2, P_ML_THRESHOLD=0.6, P_ML_SCALE=1.0)
    events, _ = simulate([FLAT] * 3, {0: (1.0, 4e6, np.nan)}, p, ml=[0.55, 0.5, 0.5])
    assert [(e["kind"], e["reason"]) for e in events] == [("skip", "ml_gate")]
    events, _ = simulate([FLAT] * 3, {0: (1.0, 4e6, np.nan)}, p, ml=[0.8, 0.5, 0.5])
    assert events[0]["amount"] == pytest.approx(round_amount(1_000_000 * 0.1 * 0.8 / 5_000_000, 0.0001))


def test_shorts_can_be_disabled_and_bad_bars_change_nothing() -> None:
    events, _ = simulate([FLAT] * 3, {0: (-1.0, 6e6, np.nan)}, params(P_ALLOW_SHORT=0.0))
    assert [(e["kind"], e["reason"]) for e in events] == [("skip", "short_disabled")]
    nan_bar = (np.nan, np.nan, np.nan, np.nan)
    events, equity = simulate([FLAT, nan_bar, FLAT, FLAT], {0: (1.0, 4e6, np.nan)}, params())
    assert events[0]["bar"] == 2  # the pending entry waits for the next good bar's open
