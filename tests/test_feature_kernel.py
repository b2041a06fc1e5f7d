"""The features kernel's declaration (derived sizes, offsets, digest, docs) and its two drivers over one core."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from cryptobot.config import FeaturesConfig
from cryptobot.data import make_frame, read_csv
from cryptobot.features import LAYOUT_DIGEST, FeatureStepper, compute_features, feature_params, layout_digest
from cryptobot.kernels import features as nb

ROOT = Path(__file__).resolve().parent.parent


def test_derived_layout_follows_an_added_state_field() -> None:
    base = nb.derive(nb.PARAMS, nb.STATE, nb.BUFFERS)
    grown = nb.derive(nb.PARAMS, nb.STATE[:5] + (("extra", 1.5, "a new value"),) + nb.STATE[5:], nb.BUFFERS)
    p = feature_params(FeaturesConfig(bb_period=7, donchian_period=9))
    assert grown.n_state == base.n_state + 1 == nb.N_STATE + 1
    assert grown.state._fields.index("extra") == 5 and grown.state._fields.index("rsi_loss") == 6
    assert grown.init[5] == 1.5 and len(grown.init) == grown.n_state
    off, grown_off = nb.feature_layout(p), nb._layout(grown.n_state, grown.buf_param, grown.buf_width, p)
    assert np.array_equal(grown_off, off + 1)  # every buffer moves by one, the total grows by one
    assert layout_digest(grown.shape) != layout_digest(base.shape) == LAYOUT_DIGEST
    assert "| 5 | `extra` | 1.5 | a new value |" in grown.table


def test_derived_layout_follows_an_added_parameter_and_buffer() -> None:
    params = nb.PARAMS + (("spread_period", "a new window"),)
    grown = nb.derive(params, nb.STATE, nb.BUFFERS + (("spreads", "spread_period", 1, "a new ring"),))
    p = np.r_[feature_params(), 12.0]
    off = nb._layout(grown.n_state, grown.buf_param, grown.buf_width, p)
    assert grown.n_params == nb.N_PARAMS + 1 and grown.params._fields[-1] == "spread_period"
    assert np.array_equal(off[:-1], nb.feature_layout(feature_params()))  # old buffers in place, new one last
    assert off[-1] == off[-2] + 12 and layout_digest(grown.shape) != LAYOUT_DIGEST


def test_layout_matches_the_declaration() -> None:
    cfg = FeaturesConfig(bb_period=7, volume_ratio_period=3, donchian_period=9)
    off = nb.feature_layout(feature_params(cfg))
    assert list(off) == [nb.N_STATE, nb.N_STATE + 7, nb.N_STATE + 10, nb.N_STATE + 28, nb.N_STATE + 46]
    init = nb.features_init(feature_params(cfg))
    assert init.size == off[-1] and np.isnan(init[nb.FS.adx]) and init[nb.FS.bars] == 0.0
    assert nb.FS.bars == 0  # FeatureStepper.bars_seen and callers read the bar counter first


def test_config_packing_is_the_declaration() -> None:
    """Every declared parameter is a FeaturesConfig field packed at its index, and no field is left out."""
    cfg = FeaturesConfig(rsi_period=3, macd_fast=4, macd_slow=9, atr_period=5, bb_period=6, bb_std=1.25,
                         ema_fast=7, ema_slow=8, volume_ratio_period=10, donchian_period=11, adx_period=12)
    p = feature_params(cfg)
    assert [name for name, _ in nb.PARAMS] == list(FeaturesConfig.model_fields)
    for name, value in cfg.model_dump().items():
        assert p[getattr(nb.FP, name)] == value


def test_docs_show_the_declared_layout() -> None:
    assert nb.LAYOUT_TABLE in (ROOT / "docs" / "features.md").read_text()


def test_state_of_another_layout_is_refused() -> None:
    stepper = FeatureStepper()
    saved = stepper.get_state()
    assert str(saved["layout"]) == LAYOUT_DIGEST
    with pytest.raises(ValueError, match="rebuild the state from history"):
        FeatureStepper().set_state(saved | {"layout": np.array("0123456789abcdef")})
    with pytest.raises(ValueError, match="rebuild the state from history"):
        FeatureStepper().set_state({k: v for k, v in saved.items() if k != "layout"})


def test_state_array_of_the_wrong_size_is_refused_by_the_kernel() -> None:
    p = feature_params()
    st_short = nb.features_init(p)[:-1]
    ones = np.ones(3)
    with pytest.raises(ValueError, match="does not match the layout"):
        nb.features_batch(st_short, p, ones, ones, ones, ones, ones)


def test_donchian_windows_on_monotone_and_repeating_series() -> None:
    """Falling and rising runs, ties and block boundaries against a plain sliding max/min."""
    n, d = 300, 7
    ramp = np.r_[np.linspace(200.0, 100.0, n // 3), np.linspace(100.0, 200.0, n // 3), np.full(n - 2 * (n // 3), 150.0)]
    ts = np.arange(n, dtype=np.int64) * 60_000
    df = make_frame(ts, {"open": ramp, "high": ramp + np.arange(n) % 3, "low": ramp - np.arange(n) % 2,
                         "close": ramp, "volume": np.ones(n)})
    feats = compute_features(df, FeaturesConfig(donchian_period=d))
    assert np.array_equal(feats["donchian_high_20"].to_numpy()[d - 1 :],
                          sliding_window_view(df["high"].to_numpy(), d).max(axis=1))
    assert np.array_equal(feats["donchian_low_20"].to_numpy()[d - 1 :],
                          sliding_window_view(df["low"].to_numpy(), d).min(axis=1))


@st.composite
def small_periods(draw: st.DrawFn) -> FeaturesConfig:
    fast = draw(st.integers(1, 6))
    return FeaturesConfig(
        rsi_period=draw(st.integers(1, 6)), macd_fast=fast, macd_slow=fast + draw(st.integers(1, 6)),
        atr_period=draw(st.integers(1, 6)), bb_period=draw(st.integers(2, 6)), bb_std=2.0,
        ema_fast=draw(st.integers(1, 5)), ema_slow=draw(st.integers(5, 9)),
        volume_ratio_period=draw(st.integers(1, 6)), donchian_period=draw(st.integers(1, 6)),
        adx_period=draw(st.integers(1, 6)),
    )


@st.composite
def bars(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 90))
    steps = np.array(draw(st.lists(st.sampled_from([-0.05, -0.01, 0.0, 0.0, 0.01, 0.03]), min_size=n, max_size=n)))
    close = 5e6 * np.exp(np.cumsum(steps))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(steps))
    low = np.minimum(open_, close) * (1 - np.abs(steps))
    volume = np.abs(steps) * 10
    for i in draw(st.lists(st.integers(0, n - 1), max_size=3)):
        close[i] = np.nan  # skipped bars: the windows count accepted bars, not rows
    return make_frame(np.arange(n, dtype=np.int64) * 60_000,
                      {"open": open_, "high": high, "low": low, "close": close, "volume": volume})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=bars(), cfg=small_periods(), cut=st.floats(0.0, 1.0))
def test_property_batch_equals_step_with_restore_mid_series(df: pd.DataFrame, cfg: FeaturesConfig, cut: float) -> None:
    """Batch (steady core once warm) = step bit for bit, also across a save → restore and a split batch."""
    rows = list(zip(*(df[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")), strict=True))
    k = int(cut * len(rows))
    batch = compute_features(df, cfg).to_numpy()
    first = FeatureStepper(cfg)
    head = [first.update(*r).copy() for r in rows[:k]]
    second = FeatureStepper(cfg)
    second.set_state({key: np.array(v.tolist()) for key, v in first.get_state().items()})
    tail = [second.update(*r).copy() for r in rows[k:]]
    stepped = np.array(head + tail).reshape(len(rows), nb.N_FEATURES)
    assert np.array_equal(batch, stepped, equal_nan=True)
    p = feature_params(cfg)
    st_split = nb.features_init(p)
    arrs = [df[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")]
    part1 = nb.features_batch(st_split, p, *(a[:k] for a in arrs))
    part2 = nb.features_batch(st_split, p, *(a[k:] for a in arrs))
    assert np.array_equal(np.vstack([part1, part2]), batch, equal_nan=True)
    assert np.array_equal(st_split, second.get_state()["state"], equal_nan=True)  # same final state


def test_shipped_file_final_state_equal_in_batch_and_step() -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz")
    p = feature_params()
    st_batch = nb.features_init(p)
    arrs = [df[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")]
    nb.features_batch(st_batch, p, *arrs)
    stepper = FeatureStepper()
    for row in zip(*arrs, strict=True):
        stepper.update(*row)
    assert np.array_equal(st_batch, stepper.get_state()["state"], equal_nan=True)
