"""Sizing at the backtest level: the default config keeps trading on every shipped file, fixed sizes are capped
by capital, a missing ML probability closes the gate, and the EMA-crossover example trades without a stop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptobot.config import Config
from cryptobot.data import read_csv
from cryptobot.strategies import compute_signals
from research.backtest import run

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
SHIPPED = ["bitbank_BTC-JPY_15m_2018.csv.gz", "bitbank_BTC-JPY_1h_2018.csv.gz", "bitbank_BTC-JPY_4h_2018.csv.gz",
           "bitbank_BTC-JPY_1h_2026-08_sample.csv.gz", "binance_BTC-USDT_1h_2017-08_2025-05.csv.gz"]
SEED = ("atr_based", "mochipoy_alert", "multi_timeframe", "donchian_channel", "adx_trend_strength")


def quarters(times: pd.Series | pd.DatetimeIndex) -> set[str]:
    return {f"{t.year}Q{(t.month - 1) // 3 + 1}" for t in pd.DatetimeIndex(times)}


@pytest.mark.parametrize("name", SHIPPED)
def test_default_config_enters_in_every_quarter_that_has_signals(name: str) -> None:
    """Real Kelly sizing as shipped: a losing record must not lock the bot out for the rest of the data."""
    df = read_csv(SAMPLE / name)
    cfg = Config()
    signals = compute_signals(df, cfg, timeframe=name.split("_")[2])
    with_signals = quarters(signals.index[signals["action"] != 0])
    assert with_signals
    result = run(df, cfg)
    entered = quarters(result.trades["entry_time"])
    assert with_signals - entered == set(), f"no entries in {sorted(with_signals - entered)}"


def assert_at_the_cap(result: object, df: pd.DataFrame) -> None:
    """Every entry is capped_by_capital and sized at equity × leverage (1) at the signal close, rounded down."""
    trades = result.trades  # type: ignore[attr-defined]
    assert len(trades) >= 5 and (trades["entry_reason"] == "capped_by_capital").all()  # all-in: soon halted
    signal_bar = trades["entry_bar"].to_numpy() - 1
    equity = result.equity.to_numpy()[signal_bar]  # type: ignore[attr-defined]
    close = df["close"].to_numpy()[signal_bar]
    np.testing.assert_allclose(trades["size"], np.floor(equity / close / 0.0001 + 1e-9) * 0.0001)


def test_a_fixed_stake_is_capped_by_capital_and_says_so() -> None:
    df = read_csv(SAMPLE / "bitbank_BTC-JPY_4h_2018.csv.gz")
    small = run(df, Config.model_validate({"execution": {"fixed_stake": 100_000.0}})).trades
    assert len(small) > 20 and (small["entry_reason"] == "signal").all()
    signal_close = df["close"].to_numpy()[small["entry_bar"].to_numpy() - 1]
    np.testing.assert_allclose(small["size"], np.floor(100_000.0 / signal_close / 0.0001 + 1e-9) * 0.0001)
    assert_at_the_cap(run(df, Config.model_validate({"execution": {"fixed_stake": 5_000_000.0}})), df)


def test_fixed_amount_is_capped_by_capital() -> None:
    df = read_csv(SAMPLE / "bitbank_BTC-JPY_4h_2018.csv.gz")  # BTC at 0.4–2 M JPY: 10 BTC is far above 1 M JPY
    assert_at_the_cap(run(df, Config.model_validate({"execution": {"fixed_amount": 10.0}})), df)


def test_a_gate_without_probabilities_takes_no_entry() -> None:
    df = read_csv(SAMPLE / "bitbank_BTC-JPY_4h_2018.csv.gz")
    ungated = run(df, Config())
    assert len(ungated.trades) > 20
    gated = run(df, Config(), ml_gate=np.full(len(df), np.nan))
    assert gated.trades.empty
    reasons = gated.skipped["reason"].value_counts()
    assert reasons["ml_gate"] > 1000 and set(reasons.index) == {"ml_gate", "anomaly"}  # anomaly is checked first


def ema_only(**ema: float) -> Config:
    return Config.model_validate({"strategies": {**{n: {"enabled": False} for n in SEED},
                                                 "ema_cross": {"enabled": True, **ema}}})


def test_ema_cross_without_a_stop() -> None:
    df = read_csv(SAMPLE / "bitbank_BTC-JPY_1h_2018.csv.gz")
    cfg = ema_only(sl_pct=0.0, tp_pct=0.0)
    signals = compute_signals(df, cfg, timeframe="1h")
    acted = signals[signals["action"] != 0]
    assert len(acted) > 50 and acted["stop_loss"].isna().all() and acted["take_profit"].isna().all()
    trades = run(df, cfg).trades
    assert len(trades) > 50 and (trades["side"] == "long").any() and (trades["side"] == "short").any()
    assert not trades["exit_reason"].isin(["stop_loss", "take_profit"]).any()


def test_ema_cross_stop_of_100_percent_still_trades_longs() -> None:
    """sl_pct 1.0 puts a long's stop at 0 — no stop; a short's at twice the price."""
    df = read_csv(SAMPLE / "bitbank_BTC-JPY_1h_2018.csv.gz")
    cfg = ema_only(sl_pct=1.0)
    signals = compute_signals(df, cfg, timeframe="1h")
    longs = signals[signals["action"] > 0]
    shorts = signals[signals["action"] < 0]
    assert len(longs) > 20 and longs["stop_loss"].isna().all()
    np.testing.assert_allclose(shorts["stop_loss"], 2.0 * df.loc[shorts.index, "close"])
    trades = run(df, cfg).trades
    assert (trades["side"] == "long").sum() > 20
