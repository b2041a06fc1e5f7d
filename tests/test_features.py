"""Features against TA-Lib and independent NumPy formulations, batch ↔ step parity, state, bad bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from cryptobot import prefault
from cryptobot.config import FeaturesConfig
from cryptobot.data import make_frame, read_csv
from cryptobot.features import (
    FEATURE_ORDER,
    FeatureStepper,
    compute_features,
    feature_params,
    feature_warmups,
)
from cryptobot.kernels import features as nb

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "data" / "sample").glob("*.csv.gz"))
RTOL = 1e-9


@pytest.fixture(scope="module", params=SHIPPED, ids=lambda p: p.name)
def shipped(request: pytest.FixtureRequest) -> pd.DataFrame:
    return read_csv(request.param)


def arrays(df: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(df[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume"))


def talib_reference(df: pd.DataFrame, cfg: FeaturesConfig) -> dict[str, np.ndarray]:
    _, h, lo, c, v = arrays(df)
    return {
        "close": c,
        "volume": v,
        "rsi_14": talib.RSI(c, cfg.rsi_period),
        "macd": talib.MACD(c, cfg.macd_fast, cfg.macd_slow, 9)[0],
        "atr_14": talib.ATR(h, lo, c, cfg.atr_period),
        "ema_20": talib.EMA(c, cfg.ema_fast),
        "ema_50": talib.EMA(c, cfg.ema_slow),
        "donchian_high_20": talib.MAX(h, cfg.donchian_period),
        "donchian_low_20": talib.MIN(lo, cfg.donchian_period),
        "adx_14": talib.ADX(h, lo, c, cfg.adx_period),
        "plus_di_14": talib.PLUS_DI(h, lo, c, cfg.adx_period),
        "minus_di_14": talib.MINUS_DI(h, lo, c, cfg.adx_period),
    }


def numpy_reference(df: pd.DataFrame, cfg: FeaturesConfig) -> dict[str, np.ndarray]:
    """Independent formulations of the features TA-Lib lacks (exact two-pass window statistics)."""
    _, h, lo, c, v = arrays(df)
    out = {}
    n = cfg.bb_period
    win = sliding_window_view(c, n)
    mid = win.mean(axis=1)
    sd = win.std(axis=1, ddof=0)
    lower = mid - cfg.bb_std * sd
    width = 2 * cfg.bb_std * sd
    bb = np.full(c.size, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        bb[n - 1 :] = np.where(width > 0, (c[n - 1 :] - lower) / width, 0.5)
    out["bb_position"] = bb
    m = cfg.volume_ratio_period
    avg = sliding_window_view(v, m).mean(axis=1)
    vr = np.full(v.size, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        vr[m - 1 :] = np.where(avg > 0, v[m - 1 :] / avg, np.nan)
    out["volume_ratio"] = vr
    d = cfg.donchian_period
    hi = sliding_window_view(h, d).max(axis=1)
    lw = sliding_window_view(lo, d).min(axis=1)
    cp = np.full(c.size, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        cp[d - 1 :] = np.where(hi > lw, (c[d - 1 :] - lw) / (hi - lw), 0.5)
    out["channel_position"] = cp
    return out


def assert_close_after_warmup(ours: np.ndarray, ref: np.ndarray, name: str, warmup: int, atol: float = 0.0) -> None:
    assert np.isnan(ours[:warmup]).all(), f"{name}: values before its declared warm-up {warmup}"
    ok = ~np.isnan(ref)
    ok[:warmup] = False
    assert np.array_equal(np.isnan(ours[warmup:]) & ~np.isnan(ref[warmup:]), np.zeros(ours.size - warmup, bool)), (
        f"{name}: NaN where the reference has a value"
    )
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=RTOL, atol=atol, err_msg=name)


def test_feature_order_is_the_seeds() -> None:
    assert len(FEATURE_ORDER) == 15 and FEATURE_ORDER[0] == "close" and FEATURE_ORDER[-1] == "minus_di_14"


def test_against_talib_on_shipped_data(shipped: pd.DataFrame) -> None:
    cfg = FeaturesConfig()
    feats = compute_features(shipped)
    assert list(feats.columns) == list(FEATURE_ORDER) and feats.index.equals(shipped.index)
    warm = feature_warmups(cfg)
    for name, ref in talib_reference(shipped, cfg).items():
        assert_close_after_warmup(feats[name].to_numpy(), ref, name, warm[name])


def test_against_numpy_for_features_talib_lacks(shipped: pd.DataFrame) -> None:
    cfg = FeaturesConfig()
    feats = compute_features(shipped)
    warm = feature_warmups(cfg)
    for name, ref in numpy_reference(shipped, cfg).items():
        # bb_position near a band can be ~0 while |c - lower| carries absolute rounding of ~1e-12 of price
        assert_close_after_warmup(feats[name].to_numpy(), ref, name, warm[name], atol=1e-9)


def test_macd_line_uses_talib_alignment_from_slow_seed() -> None:
    """TA-Lib emits MACD from bar slow+signal-2; our line starts at slow-1 with identical later values."""
    df = read_csv(SHIPPED[0])
    macd = compute_features(df)["macd"].to_numpy()
    c = df["close"].to_numpy()
    assert np.isnan(macd[:25]).all() and not np.isnan(macd[25])
    first_fast = c[14:26].mean()
    first_slow = c[:26].mean()
    assert macd[25] == pytest.approx(first_fast - first_slow, rel=1e-12)


def test_non_default_periods_against_talib() -> None:
    cfg = FeaturesConfig(rsi_period=7, macd_fast=5, macd_slow=35, atr_period=21, ema_fast=8, ema_slow=100,
                         adx_period=10, donchian_period=55, bb_period=30, bb_std=1.5, volume_ratio_period=5)
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_1h_2018.csv.gz")
    feats = compute_features(df, cfg)
    warm = feature_warmups(cfg)
    for name, ref in (talib_reference(df, cfg) | numpy_reference(df, cfg)).items():
        assert_close_after_warmup(feats[name].to_numpy(), ref, name, warm[name], atol=1e-9)


def step_all(df: pd.DataFrame, cfg: FeaturesConfig | None = None) -> np.ndarray:
    stepper = FeatureStepper(cfg)
    return np.array([stepper.update(*row).copy() for row in zip(*arrays(df), strict=True)])


def test_batch_and_step_are_bit_identical_on_shipped_data(shipped: pd.DataFrame) -> None:
    """Bit-for-bit: both paths call the same numba step on the same state in the same order."""
    batch = compute_features(shipped).to_numpy()
    stepped = step_all(shipped)
    assert np.array_equal(batch, stepped, equal_nan=True)


def test_save_and_restore_mid_series_continues_identically() -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz")
    rows = list(zip(*arrays(df), strict=True))
    full = compute_features(df).to_numpy()
    first = FeatureStepper()
    for row in rows[:1000]:
        first.update(*row)
    saved = first.get_state()
    second = FeatureStepper()
    second.set_state({k: np.array(v.tolist()) for k, v in saved.items()})  # as if round-tripped through JSON
    rest = np.array([second.update(*row).copy() for row in rows[1000:]])
    assert np.array_equal(rest, full[1000:], equal_nan=True)
    with pytest.raises(ValueError, match="other feature parameters"):
        FeatureStepper(FeaturesConfig(rsi_period=7)).set_state(saved)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_bar_gives_nan_and_does_not_poison_state(bad: float) -> None:
    """'Not poisoned' = every later output equals that of the same series with the bad bar removed."""
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_1h_2026-08_sample.csv.gz")
    broken = df.copy()
    for col, pos in (("close", 120), ("volume", 121), ("high", 30)):
        broken.iloc[pos, broken.columns.get_loc(col)] = bad
    feats = compute_features(broken).to_numpy()
    for pos in (30, 120, 121):
        assert np.isnan(feats[pos]).all()
    clean = compute_features(df.drop(df.index[[30, 120, 121]])).to_numpy()
    kept = np.setdiff1d(np.arange(len(df)), [30, 120, 121])
    assert np.array_equal(feats[kept], clean, equal_nan=True)
    assert np.isfinite(feats[-1]).all()


def test_degenerate_flat_market() -> None:
    ts = np.arange(200, dtype=np.int64) * 3_600_000
    flat = make_frame(ts, {"open": np.full(200, 100.0), "high": np.full(200, 100.0), "low": np.full(200, 100.0),
                           "close": np.full(200, 100.0), "volume": np.zeros(200)})
    last = compute_features(flat).iloc[-1]
    assert last["rsi_14"] == 50.0  # nothing moved: neutral (TA-Lib would say 0)
    assert last["bb_position"] == 0.5 and last["channel_position"] == 0.5
    assert last["atr_14"] == 0.0 and last["macd"] == 0.0
    assert np.isnan(last["volume_ratio"])  # no volume at all in the window: undefined, not a number


@st.composite
def ohlcv_series(draw: st.DrawFn, regular: bool = False) -> pd.DataFrame:
    """Random bars with gaps; `regular`: mostly 15m apart, never two gaps in a row (a feed a stepper accepts)."""
    n = draw(st.integers(min_value=1, max_value=160))
    scale = draw(st.sampled_from([1e-6, 1.0, 5e6, 1e9]))
    steps = draw(st.lists(st.floats(-0.2, 0.2, allow_nan=False), min_size=n, max_size=n))
    flat = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    close = scale * np.exp(np.cumsum([0.0 if f else s for s, f in zip(steps, flat, strict=True)]))
    spike = draw(st.integers(0, n - 1))
    close[spike] *= draw(st.sampled_from([1.0, 3.0, 0.3]))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(np.array(steps)) * close * 0.5
    high = np.maximum(open_, close) + np.where(flat, 0.0, wick)
    low = np.maximum(np.minimum(open_, close) - np.where(flat, 0.0, wick), close * 1e-3)
    low = np.minimum(low, np.minimum(open_, close))
    volume = np.where(flat, 0.0, np.abs(np.array(steps)) * 100)
    gaps = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    if regular:
        gaps = [g if i % 3 == 0 else 1 for i, g in enumerate(gaps)]
    ts = np.cumsum(gaps).astype(np.int64) * 900_000
    return make_frame(ts, {"open": open_, "high": high, "low": low, "close": close, "volume": volume})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=ohlcv_series())
def test_property_batch_equals_step_on_random_series(df: pd.DataFrame) -> None:
    batch = compute_features(df).to_numpy()
    assert np.array_equal(batch, step_all(df), equal_nan=True)
    warm = feature_warmups()
    for i, name in enumerate(FEATURE_ORDER):
        assert np.isnan(batch[: warm[name], i]).all()
        if len(df) > warm[name] and name not in {"volume_ratio"}:
            assert np.isfinite(batch[warm[name] :, i]).all(), name


def test_update_returns_owned_rows_equal_to_batch() -> None:
    df = read_csv(SHIPPED[0]).iloc[:300]
    stepper = FeatureStepper()
    rows = [stepper.update(*bar) for bar in zip(*arrays(df), strict=True)]
    np.testing.assert_array_equal(np.vstack(rows), compute_features(df).to_numpy())


def test_close_and_volume_are_the_inputs_copy_on_write() -> None:
    """Shared without copying, yet changing either frame afterwards leaves the other as it was."""
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz")
    feats = compute_features(df)
    before = df["close"].to_numpy().copy()
    df.iloc[5, df.columns.get_loc("close")] = -1.0
    assert feats["close"].iloc[5] == before[5]
    feats.iloc[6, feats.columns.get_loc("volume")] = -2.0
    assert df["volume"].iloc[6] != -2.0


def test_large_batch_with_pages_mapped_on_another_core_equals_the_plain_kernel() -> None:
    """Big enough for `cryptobot.prefault` to run its thread: the numbers are the unthreaded kernel's, bit for bit."""
    n = 400_000
    rng = np.random.default_rng(3)
    close = 5e6 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    wick = np.abs(rng.normal(0, 0.001, n)) * close
    df = make_frame(np.arange(n, dtype=np.int64) * 60_000, {
        "open": np.r_[close[0], close[:-1]], "high": close + wick, "low": close - wick, "close": close,
        "volume": rng.lognormal(0, 1, n)})
    p = feature_params()
    expected = nb.features_batch(nb.features_init(p), p, *arrays(df))
    assert sum(c.nbytes for c in nb.feature_columns(n)) >= prefault.MIN_BYTES
    assert np.array_equal(compute_features(df).to_numpy(), expected, equal_nan=True)


def test_populating_pages_never_changes_their_contents() -> None:
    """1-D columns and the pipeline's row-major (n, 5) and (n, k, 2) outputs (rows of several floats)."""
    arrays_ = [np.arange(600_000, dtype=np.float64) * k for k in range(1, 4)]
    arrays_ += [np.arange(3_000_000, dtype=np.float64).reshape(600_000, 5),
                np.arange(7_200_000, dtype=np.float64).reshape(600_000, 6, 2)]
    copies = [a.copy() for a in arrays_]
    with prefault.populated(arrays_):
        pass
    for a, b in zip(arrays_, copies, strict=True):
        assert np.array_equal(a, b)
