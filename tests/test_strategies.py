"""Strategies and combiner: seed-spec rule tables, batch ↔ step parity, state, lookahead, registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from cryptobot.config import Config, CustomStrategyConfig, load_config
from cryptobot.data import read_csv, timestamps_ms
from cryptobot.kernels import combiner as cb
from cryptobot.kernels import features as fk
from cryptobot.kernels import strategies as sk
from cryptobot.strategies import (
    Pipeline,
    SignalStepper,
    compute_signals,
    register_strategy,
    registered,
    unregister_strategy,
)
from cryptobot.strategies.registry import specs
from tests.test_features import ohlcv_series

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "data" / "sample").glob("*.csv.gz"))
CFG = load_config(environ={})


def feat(**values: float) -> np.ndarray:
    f = np.full(fk.N_FEATURES, np.nan)
    names = {"close": fk.F_CLOSE, "atr": fk.F_ATR, "bb": fk.F_BB_POS, "rsi": fk.F_RSI, "ema_f": fk.F_EMA_FAST,
             "ema_s": fk.F_EMA_SLOW, "macd": fk.F_MACD, "ch": fk.F_CH_POS, "vr": fk.F_VOL_RATIO,
             "dc_hi": fk.F_DC_HIGH, "dc_lo": fk.F_DC_LOW, "adx": fk.F_ADX, "pdi": fk.F_PLUS_DI, "mdi": fk.F_MINUS_DI}
    for k, v in values.items():
        f[names[k]] = v
    return f


def params(name: str, cfg: Config = CFG, base_ms: int = 900_000) -> np.ndarray:
    return Pipeline.build(cfg, base_ms).params_of(name)


def run_step(step, p: np.ndarray, f: np.ndarray, state: np.ndarray, ts: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.empty(4)
    bar = np.array([f[fk.F_CLOSE]] * 4 + [1.0])
    step(state, p, ts, bar, f, out)
    return out


# ------------------------------------------------------------------------------------ ATRBased (§4.3)
ATR_CASES = [
    # bb, rsi → action, confidence (hand-computed from seed §4.3 with its thresholds)
    (0.75, 70.0, -1, (0.3 + 0.4 * 0.25) + (0.2 + 0.3 * 5 / 30)),  # both legs sell
    (0.20, 25.0, 1, (0.3 + 0.4 * 0.5) + (0.2 + 0.3 * 10 / 30)),  # both legs buy
    (0.90, 30.0, -1, (0.3 + 0.4 * 1.0) * 0.8),  # opposite legs: larger (BB 0.7 vs RSI 0.25) × 0.8
    (0.25, 50.0, 1, (0.3 + 0.4 * 0.25) * 0.7),  # BB only × 0.7 = 0.28 < 0.3 → hold
    (0.50, 80.0, -1, (0.2 + 0.3 * 0.5) * 0.7),  # RSI only: 0.245 → hold
    (0.55, 52.0, 0, 0.0),  # neither, deviation t = 0.045 ≤ 0.1 → hold
]


@pytest.mark.parametrize("bb,rsi,action,conf", ATR_CASES)
def test_atr_based_rules(bb: float, rsi: float, action: int, conf: float) -> None:
    p = params("atr_based")
    out = run_step(sk.atr_based_step, p, feat(close=1000.0, atr=10.0, bb=bb, rsi=rsi), np.zeros(sk.atr_based_state_size(p)))
    expected = action if conf >= 0.3 else 0
    assert out[0] == expected
    if expected:
        assert out[1] == pytest.approx(min(conf, 1.0))
        assert out[2] == pytest.approx(1000.0 - expected * 1.5 * 10.0)  # SL 1.5 ATR
        assert out[3] == pytest.approx(1000.0 + expected * 3.0 * 10.0)  # TP 3 ATR


def test_atr_based_volatility_regime_scales_confidence() -> None:
    p = params("atr_based")
    state = np.zeros(sk.atr_based_state_size(p))
    for _ in range(20):  # fill the 20-bar ATR/price window at 1 %
        run_step(sk.atr_based_step, p, feat(close=1000.0, atr=10.0, bb=0.5, rsi=50.0), state)
    high = run_step(sk.atr_based_step, p, feat(close=1000.0, atr=40.0, bb=0.75, rsi=70.0), state.copy())
    base = (0.3 + 0.4 * 0.25) + (0.2 + 0.3 * 5 / 30)
    assert high[1] == pytest.approx(min(base * 1.2, 1.0))  # m = 4/1.15 > 1.5: high regime × 1.2


# ------------------------------------------------------------------------------- MochipoyAlert (§4.4)
def rising_rci_state(p: np.ndarray, direction: float) -> np.ndarray:
    """13 closes before the bar: steadily rising/falling, or (direction 0) a zig-zag with RCI near 0."""
    state = np.zeros(sk.mochipoy_state_size(p))
    n = int(p[sk.MP_P_RCI_N])
    window = np.zeros(fk.window_size(n))  # the same closes in an array window, to check the fixture's RCI
    for i in range(13):
        x = 1000.0 + (direction * i if direction else (-1) ** i * i)
        run_step(sk.mochipoy_alert_step, p, feat(close=x), state)  # no EMAs yet: holds, the close enters the window
        fk.window_push(window, 0, n, x)
    if direction == 0.0:
        fk.window_push(window, 0, n, 1000.0)
        assert -80.0 < sk.rci(window, 0, n) < 80.0
    return state


@pytest.mark.parametrize(
    "ema_f,ema_s,macd,rci_dir,action,conf",
    [
        (101.0, 100.0, 5.0, 0.0, 1, 0.725),  # EMA + MACD buy, flat window RCI ~0 → 2 votes
        (101.0, 100.0, 5.0, -1.0, 1, 0.875),  # + RCI ≤ −80 (falling window) → 3 buy votes
        (99.0, 100.0, -5.0, 1.0, -1, 0.875),  # EMA, MACD sell + RCI ≥ 80 → 3 sells
        (101.0, 100.0, 0.0, 0.0, 1, 0.425),  # exactly one buy vote
        (101.0, 100.0, -5.0, 0.0, 0, 0.0),  # one buy, one sell → hold
    ],
)
def test_mochipoy_votes(ema_f: float, ema_s: float, macd: float, rci_dir: float, action: int, conf: float) -> None:
    p = params("mochipoy_alert")
    state = rising_rci_state(p, rci_dir)
    close = 1000.0 + rci_dir * 13
    out = run_step(sk.mochipoy_alert_step, p, feat(close=close, atr=10.0, ema_f=ema_f, ema_s=ema_s, macd=macd), state)
    assert out[0] == action
    if action:
        assert out[1] == pytest.approx(conf)
        assert out[2] == pytest.approx(close - action * 20.0) and out[3] == pytest.approx(close + action * 40.0)


def test_rci_of_a_steadily_rising_window_is_plus_100() -> None:
    state = np.zeros(sk.WIN_HEADER + 14)
    for i in range(20):
        fk.window_push(state, 0, 14, 100.0 + i)
    assert sk.rci(state, 0, 14) == pytest.approx(100.0)
    for i in range(14):
        fk.window_push(state, 0, 14, 50.0 - i)
    assert sk.rci(state, 0, 14) == pytest.approx(-100.0)


# ----------------------------------------------------------------------------- DonchianChannel (§4.6)
@pytest.mark.parametrize(
    "close,ch,vr,action,conf",
    [
        (1002.5, 1.0, 1.3, 1, 0.75),  # close above the PREVIOUS channel high ×1.002 with volume: breakout fires
        (997.5, 0.0, 1.3, -1, 0.75),  # lower breakout
        (1002.5, 1.0, 1.0, -1, 0.3 + 0.3 * 1.0 + 0.1),  # no volume: top of channel → reversal sell
        (950.0, 0.02, 1.0, 1, 0.3 + 0.3 * 0.98 + 0.1),  # reversal buy zone
        (960.0, 0.30, 1.0, 1, 0.35 + 0.2 * (0.4 - 0.3) / 0.15 + 0.1),  # weak buy zone
        (980.0, 0.50, 1.0, 0, 0.0),  # middle zone → hold
        (990.0, 0.85, 1.0, 0, 0.0),  # 0.75 < p ≤ 0.95 → hold
    ],
)
def test_donchian_rules(close: float, ch: float, vr: float, action: int, conf: float) -> None:
    p = params("donchian_channel")
    state = np.array([1000.0, 900.0])  # previous bar's channel: high 1000, low 900 → breakouts at 1002 / 898.2
    if close < 1000 and action == -1:
        state = np.array([1100.0, 1000.0])
    out = run_step(sk.donchian_channel_step, p, feat(close=close, atr=15.0, ch=ch, vr=vr, dc_hi=1010, dc_lo=900), state)
    assert out[0] == action
    if action:
        assert out[1] == pytest.approx(min(conf, 0.9))
        assert out[2] == pytest.approx(close - action * 30.0) and out[3] == pytest.approx(close + action * 45.0)


def test_donchian_breakout_fires_on_real_data() -> None:
    """The seed's breakout could never fire (it compared with a channel including the current bar)."""
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_1h_2018.csv.gz")
    sig = compute_signals(df, CFG, timeframe="1h")
    f = compute_signals(df, CFG, timeframe="1h", with_features=True)
    prev_hi = f["donchian_high_20"].shift(1)
    breakout = (df["close"] > prev_hi * 1.002) & (f["volume_ratio"] > 1.2)
    assert breakout.sum() > 10
    assert (sig.loc[breakout, "donchian_channel_action"] == 1).all()
    assert (sig.loc[breakout, "donchian_channel_confidence"] == 0.75).all()


# ---------------------------------------------------------------------------- ADXTrendStrength (§4.7)
def adx_case(adx: float, pdi: float, mdi: float, prev_adx: float, prev_diff: float, vr: float,
             cfg: Config = CFG) -> np.ndarray:
    p = params("adx_trend_strength", cfg)
    return run_step(sk.adx_trend_strength_step, p, feat(close=1000.0, atr=10.0, adx=adx, pdi=pdi, mdi=mdi, vr=vr),
                    np.array([prev_adx, prev_diff]))


def test_adx_strong_rising_crossover() -> None:
    out = adx_case(30.0, 25.0, 20.0, 29.0, -1.0, 1.0)
    # 0.3 + min(0.3, 0.015·5) + 0.1 rising + min(0.2, 0.02·5) + 0.15 crossover
    assert out[0] == 1 and out[1] == pytest.approx(0.3 + 0.075 + 0.1 + 0.1 + 0.15)
    assert out[2] == pytest.approx(1000 - 2 * 10 * 1.5) and out[3] == pytest.approx(1000 + 3 * 10 * 1.5)
    assert adx_case(30.0, 25.0, 20.0, 31.0, -1.0, 1.0)[0] == 0  # falling ADX: no signal


def test_adx_moderate_and_weak_branches() -> None:
    moderate = adx_case(20.0, 23.0, 20.0, 21.0, 3.0, 1.2)
    assert moderate[0] == 1 and moderate[1] == pytest.approx(0.3 + 0.1 + 0.02 * 3)  # not rising, vr 1.2 earns no bonus
    weak = adx_case(10.0, 18.0, 20.0, 11.0, -2.0, 1.0)
    assert weak[0] == -1 and weak[1] == pytest.approx(0.35 + 0.08)
    no_weak = Config.model_validate({"strategies": {"adx_trend_strength": {"trade_weak_trend": False}}})
    assert adx_case(10.0, 18.0, 20.0, 11.0, -2.0, 1.0, no_weak)[0] == 0


# ----------------------------------------------------------------------------- MultiTimeframe (§4.5)
def test_higher_timeframe_bar_used_only_after_it_closes() -> None:
    """The HTF EMA advances exactly at the close of each 4h bucket's last 1h bar, or, when that bar is
    missing, when the next bucket's first bar arrives — never earlier."""
    base, htf = 3_600_000, 14_400_000
    p = params("multi_timeframe", base_ms=base)
    st = np.zeros(sk.multi_timeframe_state_size(p))
    hours = [h for h in range(40) if h not in (11, 22, 23)]  # 11: last hour of a bucket; 22-23: two more
    seen_before = 0.0
    for h in hours:
        run_step(sk.multi_timeframe_step, p, feat(close=1000.0 + h), st, ts=h * base)
        closed = st[sk.MT_S_EMA] - seen_before
        seen_before = st[sk.MT_S_EMA]
        bucket_end_now = (h + 1) * base % htf == 0
        late_close = h in (12, 24)  # first bar after a bucket whose last bar(s) are missing
        assert closed == (1.0 if bucket_end_now or late_close else 0.0), h
    assert st[sk.MT_S_EMA] == sum(1 for b in range(10) if any(4 * b <= h < 4 * b + 4 for h in hours))


def test_multi_timeframe_really_uses_the_higher_timeframe() -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz")
    four_h = compute_signals(df, CFG)["multi_timeframe_action"]
    same = Config.model_validate({"data": {"higher_timeframe": "15m"}})
    single = compute_signals(df, same)["multi_timeframe_action"]
    assert (four_h != single).mean() > 0.05


# ----------------------------------------------------------------------------------- combiner (§4.8)
def combine(votes: list[tuple[float, float]], method: str = "weighted_sum", weights: list[float] | None = None,
            enabled: list[bool] | None = None, min_score: float = 0.1) -> np.ndarray:
    v = np.array([[a, c, 100.0 - 10 * a * i, 100.0 + 10 * a * i] for i, (a, c) in enumerate(votes)])
    w = np.array(weights or [1.0] * len(votes))
    e = np.array(enabled or [True] * len(votes))
    c = np.array([cb.METHOD_WEIGHTED_SUM if method == "weighted_sum" else cb.METHOD_AVERAGE_CONFIDENCE, 0.1, min_score])
    out = np.empty(cb.N_OUT)
    cb.combine(v, w, e, c, out)
    return out


def test_two_buys_beat_one_sell_in_weighted_sum() -> None:
    """The seed's SELL-only week: 2 BUYs at 0.30/0.70 vs 1 SELL at 0.50 (plus two holds)."""
    votes = [(1, 0.30), (1, 0.70), (-1, 0.50), (0, 0.2), (0, 0.2)]
    out = combine(votes)
    assert out[0] == 1 and out[1] == pytest.approx((0.3 + 0.7 - 0.5) / 5)
    assert int(out[4]) == 0b00011
    assert out[2] == 100.0 - 10 * 1  # SL of the most confident buyer (strategy 1)
    seed = combine(votes, "average_confidence")  # the seed's averaging: 0.50 mean vs 0.50 → conflict < 0.1
    assert seed[0] == 0


def test_average_confidence_seed_rule_cases() -> None:
    assert combine([(1, 0.3), (1, 0.7), (-1, 0.8)], "average_confidence")[0] == -1  # 0.8 vs mean 0.5
    assert combine([(1, 0.6), (0, 0.2), (0, 0.2), (0, 0.2), (-1, 0.45)], "average_confidence")[0] == 1
    assert combine([(1, 0.6), (1, 0.6), (0, 0.2), (0, 0.2), (0, 0.2)], "average_confidence")[0] == 0  # 2 vs 3 holds
    tie = combine([(1, 0.6), (1, 0.6), (0, 0.2), (0, 0.2)], "average_confidence")
    assert tie[0] == 1  # tie broken by registration order: the first strategy votes buy
    assert combine([(0, 0.2), (0, 0.2), (1, 0.6), (1, 0.6)], "average_confidence")[0] == 0


def test_weights_and_enable_flags_apply() -> None:
    votes = [(1, 0.8), (-1, 0.6)]
    assert combine(votes)[0] == 1
    assert combine(votes, weights=[1.0, 3.0])[0] == -1
    assert combine(votes, enabled=[False, True])[0] == -1 and int(combine(votes, enabled=[False, True])[4]) == 0b10
    assert combine(votes, enabled=[False, False])[0] == 0
    assert combine([(1, 0.5), (0, 0.0), (0, 0.0), (0, 0.0), (0, 0.0), (0, 0.0)], min_score=0.1)[0] == 0  # 0.083 < 0.1
    assert combine([(-1, 0.5), (1, 0.5)])[0] == 0  # exact tie


def test_config_weights_reach_the_combiner() -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz")
    only_adx = Config.model_validate({"strategies": {n: {"enabled": n == "adx_trend_strength"}
                                                     for n in ("atr_based", "mochipoy_alert", "multi_timeframe",
                                                               "donchian_channel", "adx_trend_strength")}})
    sig = compute_signals(df, only_adx, timeframe="4h")
    adx_bit = 1 << registered().index("adx_trend_strength")
    acting = sig["action"] != 0
    assert acting.any() and (sig.loc[acting, "voters"] == adx_bit).all()
    assert (sig["action"] == sig["adx_trend_strength_action"]).all()


# ------------------------------------------------------------------------- parity, state, bad bars
def step_all(df: pd.DataFrame, cfg: Config, timeframe: str) -> np.ndarray:
    stepper = SignalStepper(cfg, timeframe=timeframe)
    rows = []
    for ts, o, h, lo, c, v in zip(timestamps_ms(df), *(df[k].to_numpy() for k in ("open", "high", "low", "close", "volume")), strict=True):
        r = stepper.update(int(ts), o, h, lo, c, v)
        rows.append([r.action, r.confidence, r.stop_loss, r.take_profit, r.voters, *r.votes[:, :2].ravel()])
    return np.array(rows, dtype=np.float64)


def batch_matrix(sig: pd.DataFrame) -> np.ndarray:
    cols = ["action", "confidence", "stop_loss", "take_profit", "voters"]
    for n in registered():
        cols += [f"{n}_action", f"{n}_confidence"]
    return sig[cols].to_numpy(dtype=np.float64)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_batch_and_step_identical_on_shipped_data(path: Path) -> None:
    """Bit-for-bit: the stepper calls the same generated pipeline step as the batch driver."""
    df = read_csv(path)
    if len(df) > 20_000:
        df = df.iloc[-20_000:]
    tf = "15m" if "15m" in path.name else ("4h" if "4h" in path.name else "1h")
    cfg = Config.model_validate({"strategies": {"ema_cross": {"enabled": True}}})
    assert np.array_equal(batch_matrix(compute_signals(df, cfg, timeframe=tf)), step_all(df, cfg, tf), equal_nan=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=ohlcv_series(regular=True))
def test_property_batch_equals_step(df: pd.DataFrame) -> None:
    assert np.array_equal(batch_matrix(compute_signals(df, CFG, timeframe="15m")), step_all(df, CFG, "15m"), equal_nan=True)


def test_save_restore_mid_series() -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_1h_2018.csv.gz").iloc[:3000]
    full = batch_matrix(compute_signals(df, CFG, timeframe="1h"))
    first = SignalStepper(CFG, timeframe="1h")
    ts = timestamps_ms(df)
    cols = [df[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]
    for i in range(1700):
        first.step(int(ts[i]), *(c[i] for c in cols))
    saved = {k: np.array(v.tolist()) for k, v in first.get_state().items()}
    second = SignalStepper(CFG, timeframe="1h")
    second.set_state(saved)
    rest = []
    for i in range(1700, len(df)):
        r = second.update(int(ts[i]), *(c[i] for c in cols))
        rest.append([r.action, r.confidence, r.stop_loss, r.take_profit, r.voters, *r.votes[:, :2].ravel()])
    assert np.array_equal(np.array(rest), full[1700:], equal_nan=True)
    other = Config.model_validate({"strategies": {"atr_based": {"sl_atr": 2.5}}})
    with pytest.raises(ValueError, match="other strategy params"):
        SignalStepper(other, timeframe="1h").set_state(saved)


def test_nan_bars_give_no_signal_and_do_not_poison() -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_1h_2018.csv.gz").iloc[:2500]
    bad = df.copy()
    bad.iloc[1500, bad.columns.get_loc("close")] = np.nan
    bad.iloc[1800, bad.columns.get_loc("volume")] = np.inf
    sig = compute_signals(bad, CFG, timeframe="1h")
    assert (sig.iloc[[1500, 1800]]["action"] == 0).all()
    clean = compute_signals(df.drop(df.index[[1500, 1800]]), CFG, timeframe="1h")
    assert np.array_equal(batch_matrix(sig.drop(sig.index[[1500, 1800]])), batch_matrix(clean), equal_nan=True)


@pytest.mark.parametrize("path", SHIPPED[:3], ids=lambda p: p.name)
def test_no_lookahead_when_data_is_cut(path: Path) -> None:
    """Recomputing on data cut at a point (mid higher-timeframe bar included) changes nothing before it."""
    df = read_csv(path).iloc[:6000]
    tf = path.name.split("_")[2]
    full = batch_matrix(compute_signals(df, CFG, timeframe=tf))
    for cut in (777, 1501, 2999, 4444, 5999):
        part = batch_matrix(compute_signals(df.iloc[:cut], CFG, timeframe=tf))
        assert np.array_equal(part, full[:cut], equal_nan=True), cut


# ------------------------------------------------------------------------------------- registry
@njit(cache=True)
def always_long_after(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    st[0] += 1.0
    if st[0] > p[0] and np.isfinite(f[fk.F_ATR]):
        sk.emit(out, 1.0, 0.9, bar[3], p[1] * f[fk.F_ATR], 0.0)
    else:
        sk.hold(out)


def test_custom_strategy_registration_end_to_end() -> None:
    register_strategy("test_long", always_long_after, defaults={"after": 30.0, "sl_atr": 2.0}, state_size=1, warmup=30)
    try:
        assert registered()[-1] == "test_long"
        df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_1h_2026-08_sample.csv.gz")
        cfg = Config.model_validate({"strategies": {"custom": {"test_long": {"params": {"after": 100}, "weight": 50}}}})
        sig = compute_signals(df, cfg, timeframe="1h")
        assert (sig["test_long_action"].iloc[:100] == 0).all() and (sig["test_long_action"].iloc[101:] == 1).all()
        assert (sig["action"].iloc[101:] == 1).all()  # weight 50 dominates the combiner
        stop = df["close"].iloc[150] - 2.0 * compute_signals(df, cfg, timeframe="1h", with_features=True)["atr_14"].iloc[150]
        assert sig["stop_loss"].iloc[150] == pytest.approx(stop)
        assert np.array_equal(batch_matrix(sig), step_all(df, cfg, "1h"), equal_nan=True)
        bad = Config.model_validate({"strategies": {"custom": {"test_long": CustomStrategyConfig(params={"nope": 1})}}})
        with pytest.raises(ValueError, match="unknown parameter"):
            compute_signals(df, bad, timeframe="1h")
    finally:
        unregister_strategy("test_long")
    assert "test_long" not in registered()


# ------------------------------------------------------------------------------ compiled pipeline freshness
PROBE_MODULE = '''
from numba import njit

from cryptobot.kernels import strategies as sk
from probe_helpers import stop_distance

LEVEL = 0.9


@njit(cache=True)
def _level():
    return LEVEL


@njit(cache=True)
def probe_step(st, p, ts, bar, f, out):
    sk.emit(out, 1.0, _level(), bar[3], stop_distance(bar[3]), 0.0)
'''
PROBE_HELPERS = '''
from numba import njit


@njit(cache=True)
def stop_distance(price):
    return price * 0.01
'''
PROBE_DRIVER = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import probe_strategy
from cryptobot.config import load_config
from cryptobot.data import read_csv
from cryptobot.strategies import compute_signals, register_strategy
register_strategy("probe", probe_strategy.probe_step, defaults={}, state_size=1, warmup=0)
df = read_csv(sys.argv[2]).iloc[:200]
seeds = ("atr_based", "mochipoy_alert", "multi_timeframe", "donchian_channel", "adx_trend_strength")
sig = compute_signals(df, load_config(environ={}, overrides={f"strategies.{n}.enabled": False for n in seeds}),
                      timeframe="1h")
last = sig.iloc[-1]
print(json.dumps({"confidence": float(last["probe_confidence"]),
                  "stop_fraction": float(1.0 - last["stop_loss"] / df["close"].iloc[-1])}))
'''


def test_edited_constant_or_helper_of_a_custom_strategy_recompiles(tmp_path: Path) -> None:
    """The compiled pipeline and numba's own cache must follow edits to a step's constants and helpers."""
    import json
    import os
    import subprocess
    import sys

    src = tmp_path / "src"
    src.mkdir()
    (src / "probe_strategy.py").write_text(PROBE_MODULE)
    (src / "probe_helpers.py").write_text(PROBE_HELPERS)
    (tmp_path / "driver.py").write_text(PROBE_DRIVER)
    env = {**os.environ, "CRYPTOBOT_PIPELINE_DIR": str(tmp_path / "pipelines")}
    data = ROOT / "data/sample/bitbank_BTC-JPY_1h_2026-08_sample.csv.gz"

    def run() -> dict[str, float]:
        proc = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(src), str(data)], env=env,
                              capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    first = run()
    assert first["confidence"] == pytest.approx(0.9)
    assert first["stop_fraction"] == pytest.approx(0.01)
    assert run() == first  # warm start from both caches: same numbers
    (src / "probe_strategy.py").write_text(PROBE_MODULE.replace("LEVEL = 0.9", "LEVEL = 0.3"))
    assert run()["confidence"] == pytest.approx(0.3)
    (src / "probe_helpers.py").write_text(PROBE_HELPERS.replace("0.01", "0.02"))
    after = run()
    assert after["confidence"] == pytest.approx(0.3)
    assert after["stop_fraction"] == pytest.approx(0.02)


def test_signal_stepper_counts_bars_and_reports_ready() -> None:
    df = read_csv(SHIPPED[0])
    stepper = SignalStepper(CFG, timeframe="1h")
    assert stepper.bars_seen == 0 and not stepper.ready
    for i, (t, *bar) in enumerate(zip(timestamps_ms(df), *(df[c] for c in ("open", "high", "low", "close", "volume")),
                                      strict=True)):
        stepper.update(int(t), *bar)
        assert stepper.bars_seen == i + 1
        assert stepper.ready == (i + 1 > stepper.warmup)
        if i > stepper.warmup + 2:
            break


# ------------------------------------------------------------------------------------- one timeframe rule
HOURLY = ROOT / "data/sample/bitbank_BTC-JPY_1h_2018.csv.gz"


def test_signals_refuse_data_on_another_timeframe_than_the_rule_says() -> None:
    df = read_csv(HOURLY).iloc[:2000]
    with pytest.raises(ValueError, match=r"spaced 1h but the timeframe is 15m.*timeframe='1h'"):
        compute_signals(df, CFG)
    hourly = load_config(environ={}, overrides={"data.timeframe": "1h"})
    assert np.array_equal(batch_matrix(compute_signals(df, hourly)), batch_matrix(compute_signals(df, CFG, "1h")),
                          equal_nan=True)


def test_batch_and_stepper_follow_the_same_rule_without_a_timeframe_argument() -> None:
    """Config says 1h, neither call names a timeframe: the same decisions on every bar of the shipped file."""
    df = read_csv(HOURLY)
    hourly = load_config(environ={}, overrides={"data.timeframe": "1h"})
    stepper = SignalStepper(hourly)
    rows = []
    for t, *bar in zip(timestamps_ms(df), *(df[c] for c in ("open", "high", "low", "close", "volume")), strict=True):
        out = stepper.step(int(t), *bar)
        rows.append(out.copy())
    stepped = np.array(rows)[:, [cb.OUT_ACTION, cb.OUT_CONF, cb.OUT_SL, cb.OUT_TP, cb.OUT_VOTERS]]
    sig = compute_signals(df, hourly)
    assert np.array_equal(stepped, sig[["action", "confidence", "stop_loss", "take_profit", "voters"]].to_numpy(),
                          equal_nan=True)


def _feed(stepper: SignalStepper, ts: list[int]) -> None:
    for t in ts:
        stepper.update(t, 100.0, 101.0, 99.0, 100.5, 1.0)


def test_stepper_refuses_bars_whose_spacing_contradicts_its_timeframe() -> None:
    df = read_csv(HOURLY)
    hourly_ts = [int(t) for t in timestamps_ms(df)[:10]]
    with pytest.raises(ValueError, match=r"last 3 bars are 60 minutes apart.*timeframe is 15m"):
        _feed(SignalStepper(CFG), hourly_ts)  # a 1h feed into a 15m stepper
    quarter = 900_000
    start = hourly_ts[0]
    with pytest.raises(ValueError, match="not on the 1h grid"):
        _feed(SignalStepper(CFG, "1h"), [start, start + quarter])  # a 15m feed into a 1h stepper
    with pytest.raises(ValueError, match="does not follow the previous bar"):
        _feed(SignalStepper(CFG), [start, start + quarter, start + quarter])  # the same bar twice
    gappy = SignalStepper(CFG)  # single gaps (a maintenance window, a lost bar) are normal
    _feed(gappy, [start, start + 4 * quarter, start + 5 * quarter, start + 9 * quarter, start + 10 * quarter])
    assert gappy.bars_seen == 5


def test_stepper_spacing_check_survives_save_and_restore() -> None:
    first = SignalStepper(CFG)
    start = 1_514_764_800_000
    _feed(first, [start, start + 900_000])
    second = SignalStepper(CFG)
    second.set_state(first.get_state())
    with pytest.raises(ValueError, match="does not follow the previous bar"):
        _feed(second, [start + 900_000])


def test_saved_signal_state_carries_the_feature_layout() -> None:
    stepper = SignalStepper(CFG)
    saved = stepper.get_state()
    with pytest.raises(ValueError, match="feature layout"):
        SignalStepper(CFG).set_state({**saved, "layout": np.array("other")})


def test_no_config_means_built_in_defaults_for_signals_and_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """`config=None` reads neither the environment nor files, like `compute_features(params=None)`."""
    from cryptobot.features import compute_features

    df = read_csv(HOURLY).iloc[:3000]
    monkeypatch.setenv("CRYPTOBOT__STRATEGIES__ATR_BASED__ENABLED", "false")
    monkeypatch.setenv("CRYPTOBOT__FEATURES__RSI_PERIOD", "5")
    monkeypatch.setenv("CRYPTOBOT__DATA__TIMEFRAME", "1h")
    defaults = Config()
    assert load_config().strategies.atr_based.enabled is False  # the environment does reach load_config
    sig = compute_signals(df, timeframe="1h", with_features=True)
    assert np.array_equal(batch_matrix(sig), batch_matrix(compute_signals(df, defaults, "1h")), equal_nan=True)
    assert np.array_equal(compute_features(df).to_numpy(), compute_features(df, defaults.features).to_numpy(),
                          equal_nan=True)
    assert SignalStepper().timeframe == defaults.data.timeframe == "15m"


# ------------------------------------------------------------------------- declarations, drivers, RCI
def test_declared_layouts_give_the_kernels_sizes_and_grow_with_a_field() -> None:
    """Each built-in's size follows from its declaration; a copy with one more state field grows by one."""
    for layout, _core, _step, size in sk.BUILTINS:
        p = params(layout.name, base_ms=3_600_000)
        assert layout.state_size(p) == size(p), layout.name
    mtf = sk.MULTI_TIMEFRAME
    grown = sk.declare(mtf.name, mtf.P._fields, (*zip(mtf.S._fields, mtf.init, strict=True), ("extra", 1.0)),
                       mtf.buffers)
    p = params("multi_timeframe", base_ms=3_600_000)
    assert grown.n_state == mtf.n_state + 1 and grown.state_size(p) == mtf.state_size(p) + 1
    assert grown.S.extra == mtf.n_state and grown.shape != mtf.shape
    assert grown.new_state(p)[grown.S.extra] == 1.0


def test_parameters_are_packed_by_name_from_config() -> None:
    cfg = Config.model_validate({"strategies": {"atr_based": {"sl_atr": 2.5}, "multi_timeframe": {"entry_lookback": 7}}})
    pipe = Pipeline.build(cfg, 3_600_000)
    atr = pipe.params_of("atr_based")
    assert atr[sk.ATR_P.sl_atr] == 2.5 and atr[sk.ATR_P.volatility_lookback] == 20
    mtf = pipe.params_of("multi_timeframe")
    assert mtf[sk.MT_P.entry_lookback] == 7 and mtf[sk.MT_P.base_ms] == 3_600_000
    assert mtf[sk.MT_P.htf_ms] == 14_400_000 and mtf[sk.MT_P.htf_ema_period] == cfg.features.ema_slow


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(0, 6), min_size=40, max_size=120), n=st.integers(3, 20))
def test_incremental_rci_equals_the_definition(values: list[int], n: int) -> None:
    """`rci_push` (O(n) per bar) gives `rci_block`'s RCI bit for bit, ties included."""
    vals = np.zeros(2 * n)
    ring = np.zeros(n)
    pos = 0
    for count, x in enumerate(values):
        if count + 1 >= n:
            got = rci_push_numpy(vals, pos, n, float(x), count >= n)
            ring[pos] = x
            assert got == sk.rci_block(ring, 0, (pos + 1) % n, n)
        else:
            vals[pos] = ring[pos] = x
        pos = (pos + 1) % n


@njit(cache=True)
def rci_push_numpy(vals: np.ndarray, pos: int, n: int, x: float, full: bool) -> float:
    return sk.rci_push(vals, 0, n, pos, n, x, full)


@pytest.mark.parametrize("path", SHIPPED[1:3], ids=lambda p: p.name)
def test_batch_continues_from_a_saved_state_bit_for_bit(path: Path) -> None:
    """Batch over the first part, then batch the rest from its state (and from a restored copy) = one batch."""
    df = read_csv(path).iloc[:8000]
    tf = path.name.split("_")[2]
    cfg = Config.model_validate({"strategies": {"ema_cross": {"enabled": True}}})
    pipe = Pipeline.build(cfg, fk_ms(tf))
    cols = [df[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]
    ts = timestamps_ms(df)
    full = pipe.batch(ts, *cols, features=True)
    for cut in (1, 333, 4001):
        state = pipe.new_state()
        head = pipe.batch(ts[:cut], *(c[:cut] for c in cols), features=True, state=state)
        restored = pipe.new_state()
        restored.features, restored.strategies = state.features.copy(), state.strategies.copy()
        tail = pipe.batch(ts[cut:], *(c[cut:] for c in cols), features=True, state=restored)
        for a, b, c in ((full.decisions, head.decisions, tail.decisions), (full.votes, head.votes, tail.votes),
                        (full.features, head.features, tail.features)):
            assert np.array_equal(a, np.concatenate([b, c], axis=-1), equal_nan=True), cut
        stepped = pipe.new_state()
        for i in range(cut):
            pipe.step(stepped, int(ts[i]), *(c[i] for c in cols))
        assert np.array_equal(stepped.features, state.features, equal_nan=True)
        assert np.array_equal(stepped.strategies, state.strategies, equal_nan=True)


def fk_ms(tf: str) -> int:
    from cryptobot.data.frames import timeframe_to_ms

    return timeframe_to_ms(tf)


def test_saved_signal_state_of_another_strategy_layout_is_refused() -> None:
    saved = SignalStepper(CFG).get_state()
    with pytest.raises(ValueError, match="strategy layout"):
        SignalStepper(CFG).set_state({**saved, "strategy_layout": np.array("other")})


DECLARED = sk.declare("test_declared", params=(("after", 30.0), ("sl_atr", 2.0)), state=(("bars", 0.0),))
DP, DS = DECLARED.P, DECLARED.S


@njit(cache=True)
def declared_long_after(st: np.ndarray, p: np.ndarray, ts: int, bar: np.ndarray, f: np.ndarray, out: np.ndarray) -> None:
    st[DS.bars] += 1.0
    if st[DS.bars] > p[DP.after] and np.isfinite(f[fk.F_ATR]):
        sk.emit(out, 1.0, 0.9, bar[3], p[DP.sl_atr] * f[fk.F_ATR], 0.0)
    else:
        sk.hold(out)


def test_custom_strategy_declared_by_name_gives_the_same_signals_as_the_positional_form() -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_1h_2026-08_sample.csv.gz")
    cfg = Config.model_validate({"strategies": {"custom": {"test_declared": {"params": {"after": 100}, "weight": 50},
                                                           "test_long": {"params": {"after": 100}, "weight": 50}}}})
    register_strategy("test_declared", declared_long_after, layout=DECLARED, warmup=30)
    try:
        sig = compute_signals(df, cfg, timeframe="1h")
        assert np.array_equal(batch_matrix(sig), step_all(df, cfg, "1h"), equal_nan=True)
        declared = sig["test_declared_action"].to_numpy()
    finally:
        unregister_strategy("test_declared")
    register_strategy("test_long", always_long_after, defaults={"after": 30.0, "sl_atr": 2.0}, state_size=1, warmup=30)
    try:
        positional = compute_signals(df, cfg, timeframe="1h")["test_long_action"].to_numpy()
    finally:
        unregister_strategy("test_long")
    assert np.array_equal(declared, positional) and (declared[101:] == 1).all()
    with pytest.raises(ValueError, match="declares parameters"):
        register_strategy("test_declared", declared_long_after, layout=DECLARED, state_size=1, warmup=30)


BUILTIN_NAMES = [s.name for s in specs() if s.core is not None]


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_a_strategy_decides_the_same_with_only_the_features_it_declares(name: str) -> None:
    """A fresh batch with one strategy enabled runs only the feature blocks its declaration names
    (`declare(features=...)`): every decision and vote must be what the same batch gives with all 15
    features computed — a strategy reading an undeclared feature would see NaN and vote otherwise."""
    df = read_csv(SHIPPED[1]).iloc[:20_000]
    tf = SHIPPED[1].name.split("_")[2]
    cfg = Config.model_validate({"strategies": {s: {"enabled": s == name} for s in BUILTIN_NAMES}})
    pipe = Pipeline.build(cfg, fk_ms(tf))
    assert pipe.feature_groups != fk.ALL_GROUPS  # every built-in reads only some of the blocks
    cols = [df[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]
    ts = timestamps_ms(df)
    some, every = pipe.batch(ts, *cols), pipe.batch(ts, *cols, features=True)
    assert (some.decisions[0] != 0).sum() > 10  # it trades: the comparison is not of two empty columns
    assert np.array_equal(some.decisions, every.decisions, equal_nan=True)
    assert np.array_equal(some.votes, every.votes, equal_nan=True)


def test_the_feature_blocks_follow_the_enabled_strategies() -> None:
    def groups(**enabled: bool) -> tuple[bool, ...]:
        cfg = Config.model_validate({"strategies": {s: {"enabled": enabled.get(s, False)} for s in BUILTIN_NAMES}})
        return Pipeline.build(cfg, 60_000).feature_groups

    assert Pipeline.build(Config(), 60_000).feature_groups == fk.ALL_GROUPS  # the seed five read every block
    assert groups(ema_cross=True) == (False,) * fk.N_GROUPS
    on = {g for g in range(fk.N_GROUPS) if groups(atr_based=True)[g]}
    assert on == {fk.G_ATR, fk.G_BB, fk.G_RSI}
