"""Statistics: hand-calculated cases, an independent re-computation on a real backtest, one implementation
for stats.json and sweeps, strict JSON, the quote currency."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot.config import Config
from cryptobot.data import make_frame, read_csv
from cryptobot.jsonio import dumps, strict_loads
from cryptobot.strategies import registered
from research.backtest import run
from research.stats import compute_stats, covered_bars, metrics, quote_currency
from research.sweep import apply, parse_grid, run_sweep

ROOT = Path(__file__).resolve().parent.parent
DAY_MS = 86_400_000
SEED = ("atr_based", "mochipoy_alert", "multi_timeframe", "donchian_channel", "adx_trend_strength")
EMA_LONG_ONLY = Config.model_validate({
    "strategies": {**{n: {"enabled": False} for n in SEED}, "ema_cross": {"enabled": True, "sl_pct": 0.2}},
    "execution": {"fixed_amount": 0.01, "allow_short": False}, "risk": {"enabled": False},
})


def hand_case() -> dict[str, object]:
    """Daily bars, initial capital 100, equity 110, 99, 99, 118.8: returns +10 %, −10 %, 0, +20 %.

    Three one-bar trades: +10 on bar 0, −11 on bar 1, +19.8 on bar 3 (bar 2 flat)."""
    index = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    equity = pd.Series([110.0, 99.0, 99.0, 118.8], index=index)
    names = registered()
    trades = pd.DataFrame({"entry_bar": [0, 1, 3], "exit_bar": [0, 1, 3], "pnl": [10.0, -11.0, 19.8],
                           "fees": [0.5, 0.5, 0.5], "interest": [0.0, 0.1, 0.0], "voters": [1, 1, 2],
                           "exit_reason": ["signal", "stop_loss", "signal"]})
    signals = pd.DataFrame({"action": [1, 1, 0, 1], **{f"{n}_action": [0, 0, 0, 0] for n in names}}, index=index)
    skipped = pd.DataFrame({"reason": ["no_edge"]})
    cfg = Config.model_validate({"execution": {"initial_capital": 100.0}})
    return compute_stats(equity, trades, skipped, signals, cfg, DAY_MS)


def test_stats_against_a_hand_calculation() -> None:
    s = hand_case()
    b = 365.25  # daily bars per year
    # mean 0.05; deviations ±0.05, ±0.15 → sample variance (0.0025·2 + 0.0225·2) / 3 = 0.05 / 3
    assert s["sharpe"] == pytest.approx(0.05 / math.sqrt(0.05 / 3) * math.sqrt(b), rel=1e-12)
    # downside deviation over all 4 returns: √(0.1² / 4) = 0.05 → Sortino = 0.05 / 0.05 · √B
    assert s["sortino"] == pytest.approx(math.sqrt(b), rel=1e-12)
    assert s["total_return"] == pytest.approx(0.188, rel=1e-12)
    cagr = 1.188 ** (b / 4) - 1  # 4 days of a 365.25-day year
    assert s["cagr"] == pytest.approx(cagr, rel=1e-9)
    assert s["max_drawdown"] == pytest.approx(0.1, rel=1e-12)  # 110 → 99
    assert s["calmar"] == pytest.approx(cagr / 0.1, rel=1e-9)
    assert s["max_drawdown_duration_bars"] == 2 and s["max_drawdown_duration"] == pytest.approx(2.0)  # days
    assert s["exposure"] == pytest.approx(0.75)  # bars 0, 1 and 3 in a position
    assert s["expectancy"] == pytest.approx((10 - 11 + 19.8) / 3)
    assert s["profit_factor"] == pytest.approx(29.8 / 11)
    assert s["win_rate"] == pytest.approx(2 / 3)
    assert s["avg_trade_duration"] == pytest.approx(24.0)  # hours
    assert s["fees_paid"] == pytest.approx(1.5) and s["interest_paid"] == pytest.approx(0.1)
    assert s["skipped_entries"] == {"no_edge": 1} and s["exit_reasons"] == {"signal": 2, "stop_loss": 1}


def test_initial_capital_is_the_first_peak_of_the_drawdown() -> None:
    m = metrics(np.array([90.0, 95.0, 100.0, 120.0]), 100.0, np.zeros(0), 365.25)
    assert m["max_drawdown"] == pytest.approx(0.1) and m["max_drawdown_duration_bars"] == 2  # bars 0 and 1; 100 regained at bar 2


def test_profit_factor_is_undefined_without_a_losing_trade() -> None:
    eq = np.array([101.0, 103.0])
    assert math.isnan(metrics(eq, 100.0, np.array([1.0, 2.0]), 365.25)["profit_factor"])
    assert math.isnan(metrics(eq, 100.0, np.zeros(0), 365.25)["profit_factor"])
    assert metrics(eq, 100.0, np.array([3.0, -1.0, 0.0]), 365.25)["profit_factor"] == pytest.approx(3.0)
    assert strict_loads(dumps({"profit_factor": float("nan"), "cagr": float("inf")})) == {"profit_factor": None,
                                                                                         "cagr": None}


@pytest.mark.parametrize("name", ["bitbank_BTC-JPY_1h_2018.csv.gz", "binance_BTC-USDT_1h_2017-08_2025-05.csv.gz"])
def test_backtest_stats_equal_an_independent_computation(name: str) -> None:
    """The same definitions written again with pandas on a real backtest (the second implementation)."""
    df = read_csv(ROOT / "data" / "sample" / name).iloc[:6000]
    cfg = Config()
    result = run(df, cfg)
    s, t = result.stats, result.trades
    init = cfg.execution.initial_capital
    eq = result.equity
    rets = eq.pct_change().fillna(eq.iloc[0] / init - 1)
    b = 365.25 * 24  # hourly bars
    assert s["sharpe"] == pytest.approx(rets.mean() / rets.std() * np.sqrt(b), rel=1e-9)
    assert s["sortino"] == pytest.approx(rets.mean() / np.sqrt((rets.clip(upper=0) ** 2).mean()) * np.sqrt(b), rel=1e-9)
    peak = pd.concat([pd.Series([init]), eq.reset_index(drop=True)]).cummax().iloc[1:].to_numpy()
    dd = 1 - eq.to_numpy() / peak
    assert s["max_drawdown"] == pytest.approx(dd.max(), rel=1e-12)
    runs = pd.Series(dd > 0).astype(int).groupby((dd <= 0).cumsum()).sum()
    assert s["max_drawdown_duration_bars"] == runs.max()
    cagr = (eq.iloc[-1] / init) ** (b / len(eq)) - 1
    assert s["cagr"] == pytest.approx(cagr, rel=1e-9) and s["calmar"] == pytest.approx(cagr / dd.max(), rel=1e-9)
    held = np.zeros(len(eq), dtype=bool)
    for a, z in zip(t["entry_bar"], t["exit_bar"], strict=True):
        held[a : z + 1] = True
    assert s["exposure"] == pytest.approx(held.mean())
    assert s["expectancy"] == pytest.approx(t["pnl"].mean(), rel=1e-12)
    assert s["profit_factor"] == pytest.approx(t.loc[t["pnl"] > 0, "pnl"].sum() / -t.loc[t["pnl"] < 0, "pnl"].sum())
    assert s["win_rate"] == pytest.approx((t["pnl"] > 0).mean())


def v_shaped() -> pd.DataFrame:
    """Hourly closes falling 150 bars then rising 150 bars: a long-only EMA crossover wins its one trade."""
    close = np.concatenate([np.linspace(200.0, 100.0, 150), np.linspace(100.5, 300.0, 150)])
    ts = (np.arange(close.size, dtype=np.int64) + 480_000) * 3_600_000
    return make_frame(ts, {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close,
                           "volume": np.ones(close.size)})


def test_sweep_and_backtest_give_the_same_undefined_profit_factor(tmp_path: Path) -> None:
    df = v_shaped()
    grid = parse_grid("strategies.ema_cross.fast=[5,10],strategies.ema_cross.slow=[30]")
    sweep = run_sweep(df, EMA_LONG_ONLY, grid, tmp_path, progress=False)
    stats = run(df, apply(EMA_LONG_ONLY, {"strategies.ema_cross.fast": 5})).stats
    assert stats["trade_count"] >= 1 and (stats["win_rate"] == 1.0)
    assert math.isnan(stats["profit_factor"])
    results = pd.read_parquet(tmp_path / "results.parquet")
    assert results["profit_factor"].isna().all()
    assert strict_loads(dumps(sweep.summary))["best"]["profit_factor"] is None


@pytest.mark.parametrize(("source", "quote"), [
    ("data/sample/binance_BTC-USDT_1h_2017-08_2025-05.csv.gz", "USDT"),
    ("data/sample/bitbank_BTC-JPY_15m_2018.csv.gz", "JPY"),
    ("binance/BTC-USDT/1h", "USDT"),
    ("kraken/ETH/EUR/4h", "EUR"),
    ("/somewhere/prices.csv", "JPY"),  # names no symbol: exchange.symbol
])
def test_quote_currency_comes_from_the_data_source(source: str, quote: str) -> None:
    assert quote_currency(source, Config()) == quote
    assert quote_currency(None, Config.model_validate({"exchange": {"symbol": "ETH/USDC"}})) == "USDC"


def test_config_show_json_is_strict() -> None:
    result = subprocess.run([sys.executable, "-m", "cryptobot.config", "show", "--json"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    body = result.stdout.rsplit("\n# config hash:", 1)[0]
    assert strict_loads(body)["exchange"]["symbol"] == "BTC/JPY"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)), max_size=40))
def test_covered_bars_counts_the_union_of_trades(spans: list[tuple[int, int]]) -> None:
    """Against a bar-by-bar mask (trades entry to exit inclusive; overlapping and shared bars count once)."""
    entry = np.array([a for a, _ in spans], dtype=np.int64)
    exit_ = np.array([a + d for a, d in spans], dtype=np.int64)
    mask = np.zeros(240, dtype=bool)
    for a, b in zip(entry.tolist(), exit_.tolist(), strict=True):
        mask[a : b + 1] = True
    assert covered_bars(entry, exit_) == int(mask.sum())
