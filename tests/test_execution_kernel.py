"""The execution kernel's declaration (derived sizes, packing, digest, docs, refusal of another layout) and its
drivers over one core: batch = step bit for bit on every shipped file and in hypothesis tests, save → restore
mid-series included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptobot.config import Config
from cryptobot.data import read_csv, timeframe_to_ms, timestamps_ms
from cryptobot.data.validate import infer_timeframe
from cryptobot.execution import (
    LAYOUT_DIGEST,
    REASONS,
    Reason,
    check_layout,
    event_records,
    execution_params,
    skips_frame,
    trades_frame,
)
from cryptobot.features import layout_digest
from cryptobot.kernels import execution as ex
from cryptobot.live.engine import Engine
from cryptobot.live.state import KernelStates
from cryptobot.strategies import compute_signals

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "data" / "sample").glob("*.csv.gz"))
HOUR = 3_600_000


def test_derived_layout_follows_an_added_state_field() -> None:
    base = ex.derive(ex.PARAMS, ex.STATE, ex.BUFFERS)
    grown = ex.derive(ex.PARAMS, ex.STATE[:3] + (("extra", 2.5, "a new value"),) + ex.STATE[3:], ex.BUFFERS)
    p = execution_params(Config(), HOUR)
    assert grown.n_state == base.n_state + 1 == ex.N_STATE + 1
    assert grown.state._fields.index("extra") == 3 and grown.state._fields.index("entry_bar") == 4
    assert grown.init[3] == 2.5 and grown.init_param[grown.state._fields.index("peak")] == ex.EP.init_cash
    off = ex.execution_layout(p)
    grown_off = ex._layout(grown.n_state, grown.buf_param, grown.buf_width, p)
    assert np.array_equal(grown_off, off + 1)  # every buffer moves by one, the total grows by one
    assert layout_digest(grown.shape) != layout_digest(base.shape) == LAYOUT_DIGEST
    assert "| 3 | `extra` | 2.5 | a new value |" in grown.table


def test_derived_layout_follows_an_added_parameter_and_buffer() -> None:
    params = ex.PARAMS + (("spread_lookback", "a new window"),)
    grown = ex.derive(params, ex.STATE, ex.BUFFERS + (("spreads", "spread_lookback", 2, "a new ring"),))
    p = np.r_[execution_params(Config(), HOUR), 12.0]
    off = ex._layout(grown.n_state, grown.buf_param, grown.buf_width, p)
    assert grown.n_params == ex.N_PARAMS + 1 and grown.params._fields[-1] == "spread_lookback"
    assert np.array_equal(off[:-1], ex.execution_layout(p[:-1]))  # old buffers in place, the new one last
    assert off[-1] == off[-2] + 24 and layout_digest(grown.shape) != LAYOUT_DIGEST


def test_layout_and_initial_state_match_the_declaration() -> None:
    cfg = Config.model_validate({"execution": {"initial_capital": 123_456.0},
                                 "risk": {"price_jump_lookback": 7, "kelly": {"lookback_trades": 5}}})
    p = execution_params(cfg, HOUR)
    off = ex.execution_layout(p)
    assert list(off) == [ex.N_STATE, ex.N_STATE + 5, ex.N_STATE + 10, ex.N_STATE + 17]
    st0 = ex.execution_init(p)
    assert st0.size == off[-1] == ex.execution_state_size(p)
    for field in ("cash", "peak", "equity"):
        assert st0[getattr(ex.ES, field)] == 123_456.0
    assert np.isnan(st0[ex.ES.stop_loss]) and np.isnan(st0[ex.ES.prev_close]) and st0[ex.ES.next_day] == -np.inf
    assert (ex.S_POS, ex.S_EQUITY, ex.P_SLIP, ex.EV_PRICE) == (ex.ES.position, ex.ES.equity, ex.EP.slippage,
                                                               ex.EV.price)


def test_config_packing_is_the_declaration() -> None:
    cfg = Config.model_validate({
        "costs": {"taker_fee": 0.0011, "maker_fee": 0.0003, "slippage_bps": 7.0, "order_type": "post_only"},
        "execution": {"initial_capital": 2e6, "fixed_stake": 5e4, "allow_short": False},
        "risk": {"cooldown_hours": 3.0, "kelly": {"window_days": 2.0}},
    })
    p = execution_params(cfg, 900_000, gated=True)
    assert p.shape == (ex.N_PARAMS,)
    expect = {"init_cash": 2e6, "taker_fee": 0.0011, "maker_fee": 0.0003, "slippage": 7.0 / 10_000, "post_only": 1.0,
              "allow_short": 0.0, "fixed_stake": 5e4, "bar_ms": 900_000, "cooldown_ms": 3 * HOUR,
              "kelly_window_ms": 2 * 86_400_000, "ml_gated": 1.0}
    for name, value in expect.items():
        assert p[getattr(ex.EP, name)] == value, name


def test_docs_show_the_declared_layout() -> None:
    text = (ROOT / "docs" / "backtest.md").read_text()
    for table in (ex.PARAMS_TABLE, ex.LAYOUT_TABLE, ex.EVENT_TABLE):
        assert table in text


def test_reason_codes_are_a_named_enum() -> None:
    assert Reason.STOP_LOSS == ex.R.stop_loss == ex.R_STOP_LOSS == 2
    assert [REASONS[int(r)] for r in Reason] == list(ex.REASON_NAMES)
    assert REASONS[ex.R.capped_by_capital] == "capped_by_capital"


def test_state_of_another_layout_is_refused() -> None:
    check_layout(LAYOUT_DIGEST)
    with pytest.raises(ValueError, match="rebuild the state from history"):
        check_layout("0123456789abcdef")
    engine = Engine(Config(), "1h")
    saved = ex.execution_init(engine.params)
    sig = engine.stepper.get_state()
    fst, sst, flay, slay = sig["feature_state"], sig["strategy_state"], str(sig["layout"]), str(sig["strategy_layout"])
    engine.restore(KernelStates(0, 0, fst, sst, saved, LAYOUT_DIGEST, flay, slay))
    for bad in ((LAYOUT_DIGEST, "0123456789abcdef", slay), (LAYOUT_DIGEST, flay, "0123456789abcdef"),
                ("0123456789abcdef", flay, slay)):
        with pytest.raises(ValueError, match="rebuild the state from history"):
            engine.restore(KernelStates(0, 0, fst, sst, saved, *bad))


def test_state_array_of_the_wrong_size_is_refused_by_the_kernel() -> None:
    p = execution_params(Config(), HOUR)
    ev = np.empty(ex.EV_MAX, dtype=ex.EVENT_DTYPE).view(np.float64)
    with pytest.raises(ValueError, match="does not match the layout"):
        ex.execution_step(ex.execution_init(p)[:-1], p, 0, 0, 1.0, 1.0, 1.0, 1.0, 0.0, np.nan, np.nan, 0.0, np.nan, ev)
    with pytest.raises(ValueError, match="parameter vector"):
        ex.execution_step(ex.execution_init(p), p[:-1], 0, 0, 1.0, 1.0, 1.0, 1.0, 0.0, np.nan, np.nan, 0.0, np.nan, ev)


def stepped(p: np.ndarray, ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
            signals: tuple[np.ndarray, ...], restore_at: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             np.ndarray]:
    """`execution_step` bar by bar (the live path), then `execution_end`; at `restore_at` the state is saved
    as bytes and continued from a fresh copy, as a restarted bot does."""
    action, sl, tp, voters, ml = signals
    state = ex.execution_init(p)
    buf = np.empty(ex.EV_MAX, dtype=ex.EVENT_DTYPE)
    rows = []
    n = len(c)
    equity, position = np.empty(n), np.empty(n)
    for i in range(n):
        if i == restore_at:
            state = np.frombuffer(state.tobytes(), dtype=np.float64).copy()
        k = ex.execution_step(state, p, i, int(ts[i]), o[i], h[i], lo[i], c[i], action[i], sl[i], tp[i], voters[i],
                              ml[i], buf.view(np.float64))
        rows.append(buf[:k].copy())
        equity[i], position[i] = state[ex.ES.equity], state[ex.ES.position]
    if n:
        k = ex.execution_end(state, p, n - 1, int(ts[-1]), c[-1], buf.view(np.float64))
        rows.append(buf[:k].copy())
        equity[-1], position[-1] = state[ex.ES.equity], state[ex.ES.position]
    return np.concatenate(rows) if rows else np.empty(0, ex.EVENT_DTYPE), equity, position, state


def assert_same(batch: tuple[np.ndarray, ...], step: tuple[np.ndarray, ...]) -> None:
    for a, b in zip(batch, step, strict=True):
        assert a.tobytes() == b.tobytes()  # bit for bit, NaNs included


CONFIGS = {
    "default": {},
    "reverse_gated_slippage": {"execution": {"reverse_on_opposite": True}, "costs": {"slippage_bps": 3.0}},
    "post_only_fixed_stake_tight_risk": {"costs": {"order_type": "post_only"},
                                         "execution": {"fixed_stake": 3e6, "stops_on_fill_bar": True},
                                         "risk": {"max_drawdown": 0.05, "price_jump_zscore": 1.5,
                                                  "price_jump_lookback": 5, "consecutive_loss_limit": 2}},
}


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_batch_equals_step_on_shipped_data_with_save_and_restore(path: Path) -> None:
    df = read_csv(path)
    ts = timestamps_ms(df)
    tf = infer_timeframe(ts)
    assert tf is not None
    o, h, lo, c = (np.ascontiguousarray(df[k].to_numpy(np.float64)) for k in ("open", "high", "low", "close"))
    rng = np.random.default_rng(7)
    for name, overrides in CONFIGS.items():
        cfg = Config.model_validate(overrides)
        sig = compute_signals(df, cfg, timeframe=tf)
        gated = name == "reverse_gated_slippage"
        ml = rng.uniform(0.3, 1.0, len(df)) if gated else np.full(len(df), np.nan)
        signals = (*(np.ascontiguousarray(sig[k].to_numpy(np.float64)) for k in ("action", "stop_loss", "take_profit",
                                                                                 "voters")), ml)
        p = execution_params(cfg, timeframe_to_ms(tf), gated=gated)
        batch = ex.execution_batch(p, ts, o, h, lo, c, *signals)
        assert len(trades_frame(batch[0], df.index)) > 0, name
        assert_same(batch, stepped(p, ts, o, h, lo, c, signals, restore_at=len(df) // 3))


bar_moves = st.lists(st.tuples(st.floats(-0.03, 0.03), st.floats(0.0, 0.03), st.floats(0.0, 0.03),
                               st.sampled_from([0.0, 0.0, 0.0, 1.0, -1.0]), st.booleans()), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=bar_moves, restore=st.integers(0, 119), reverse=st.booleans(), post_only=st.booleans(),
       risk=st.booleans(), kelly=st.booleans(), interest=st.sampled_from([0.0, 0.0004]))
def test_batch_equals_step_on_random_bars(moves: list[tuple[float, float, float, float, bool]], restore: int,
                                          reverse: bool, post_only: bool, risk: bool, kelly: bool,
                                          interest: float) -> None:
    """Random walks with gaps, stops and take-profits inside bars, bad bars and reversals: the batch driver and
    the step driver (restarted from saved bytes at a random bar) agree bit for bit."""
    cfg = Config.model_validate({
        "costs": {"order_type": "post_only" if post_only else "market", "margin_interest_daily": interest,
                  "slippage_bps": 2.0},
        "execution": {"reverse_on_opposite": reverse, "fixed_amount": 0.0 if kelly else 0.01},
        "risk": {"enabled": risk, "max_drawdown": 0.03, "price_jump_zscore": 1.0, "price_jump_lookback": 5,
                 "consecutive_loss_limit": 2, "kelly": {"min_trades": 3, "lookback_trades": 4}},
    })
    n = len(moves)
    close = 5e6 * np.exp(np.cumsum([m[0] for m in moves]))
    o = np.r_[5e6, close[:-1]]
    h = np.maximum(o, close) * (1.0 + np.array([m[1] for m in moves]))
    lo = np.minimum(o, close) * (1.0 - np.array([m[2] for m in moves]))
    bad = np.array([m[4] and i % 7 == 3 for i, m in enumerate(moves)])
    o[bad] = np.nan
    action = np.array([m[3] for m in moves])
    sl = np.where(action != 0, close * (1.0 - action * 0.01), np.nan)
    tp = np.where(action != 0, close * (1.0 + action * 0.015), np.nan)
    signals = (action, sl, tp, np.ones(n), np.full(n, np.nan))
    ts = 1_704_067_200_000 + np.arange(n, dtype=np.int64) * HOUR
    p = execution_params(cfg, HOUR)
    assert_same(ex.execution_batch(p, ts, o, h, lo, close, *signals),
                stepped(p, ts, o, h, lo, close, signals, restore_at=restore))


def test_event_buffer_grows_for_histories_with_many_events() -> None:
    """Alternating signals every bar with reversal (two fills a bar) overflow the first event buffer."""
    n = 3000
    c = 5e6 + 1e4 * np.sin(np.arange(n))
    ts = 1_704_067_200_000 + np.arange(n, dtype=np.int64) * HOUR
    action = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    p = execution_params(Config.model_validate({"execution": {"reverse_on_opposite": True, "fixed_amount": 0.01},
                                                "risk": {"enabled": False}}), HOUR)
    signals = (action, np.full(n, np.nan), np.full(n, np.nan), np.ones(n), np.full(n, np.nan))
    batch = ex.execution_batch(p, ts, c, c * 1.001, c * 0.999, c, *signals)
    assert len(batch[0]) > n  # more than the n // 8 records the first buffer holds
    assert_same(batch, stepped(p, ts, c, c * 1.001, c * 0.999, c, signals))
    rows = batch[0].view(np.float64).reshape(-1, ex.EV_WIDTH)  # records are rows of floats, as the state stores them
    assert event_records(rows).tobytes() == batch[0].tobytes() and event_records(rows).dtype == ex.EVENT_DTYPE
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    assert trades_frame(rows, index).equals(trades_frame(batch[0], index))
    assert skips_frame(batch[0], index).empty
