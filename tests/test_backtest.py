"""research.backtest: vectorbt records exactly the kernel's orders; determinism; CLI report; bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot.config import Config
from cryptobot.data import DataValidationError, read_csv
from cryptobot.execution import fingerprint, significant_digits
from cryptobot.jsonio import strict_loads
from research.backtest import run
from tests.conftest import shipped_files

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = shipped_files()
SEED_STRATEGIES = ("atr_based", "mochipoy_alert", "multi_timeframe", "donchian_channel", "adx_trend_strength")
ACTIVE = Config()  # the default config as it ships: Kelly sizing over its time window


@pytest.fixture(scope="module")
def result_15m() -> object:
    return run(read_csv(ROOT / "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz"), ACTIVE)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_vectorbt_portfolio_matches_the_kernel(path: Path) -> None:
    df = read_csv(path)
    result = run(df, ACTIVE)
    pf = result.portfolio
    assert len(result.trades) > 0
    flat = result.position.to_numpy() == 0.0  # while open, the kernel accrues interest that vectorbt books at exit
    assert flat.sum() > 100
    np.testing.assert_allclose(pf.value().to_numpy()[flat], result.equity.to_numpy()[flat], rtol=1e-9)
    assert pf.final_value() == pytest.approx(result.equity.iloc[-1], rel=1e-12)
    assert pf.orders.count() == len(result.orders)
    vbt_fees = pf.orders.records_readable["Fees"].sum()
    assert vbt_fees == pytest.approx(result.trades["fees"].sum() + result.trades["interest"].sum(), rel=1e-9)


def test_trades_frame_is_consistent(result_15m: object) -> None:
    r = result_15m
    t = r.trades  # type: ignore[attr-defined]
    assert list(t.columns[:12]) == ["entry_time", "exit_time", "side", "size", "entry_price", "exit_price", "fees",
                                    "interest", "pnl", "return", "exit_reason", "strategies"]
    sign = np.where(t["side"] == "long", 1.0, -1.0)
    gross = sign * t["size"] * (t["exit_price"] - t["entry_price"])
    np.testing.assert_allclose(t["pnl"], gross - t["fees"] - t["interest"], rtol=1e-9, atol=1e-6)
    assert (t["exit_time"] >= t["entry_time"]).all()
    assert (t["strategies"] != "").all()
    stats = r.stats  # type: ignore[attr-defined]  # the values themselves: tests/test_stats.py (hand calculations)
    assert stats["trade_count"] == len(t)
    assert sum(stats["exit_reasons"].values()) == len(t)
    ps = stats["performance_stats"]
    assert ps["executed_trades"] == len(t) and ps["session_pnl"] == pytest.approx(t["pnl"].sum())


def test_fingerprint_is_deterministic_across_runs_and_thread_counts(result_15m: object) -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz")
    assert run(df, ACTIVE).fingerprint == result_15m.fingerprint  # type: ignore[attr-defined]
    code = (
        "from cryptobot.config import Config; from cryptobot.data import read_csv; from research.backtest import run;"
        "cfg = Config();"
        "print(run(read_csv('data/sample/bitbank_BTC-JPY_15m_2018.csv.gz'), cfg).fingerprint)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == result_15m.fingerprint  # type: ignore[attr-defined]


def test_fingerprint_moves_when_a_fill_changes(result_15m: object) -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz")
    other = Config.model_validate({"costs": {"slippage_bps": 3.0}})
    assert run(df, other).fingerprint != result_15m.fingerprint  # type: ignore[attr-defined]


def test_fingerprint_ignores_last_bit_noise_and_sees_any_real_change(result_15m: object) -> None:
    """The numbers enter at 10 significant digits: a one-ulp difference (another machine's FMA or libm) keeps
    the hash; a change in the 9th digit of one P&L, or one exit reason, moves it."""
    trades = result_15m.trades  # type: ignore[attr-defined]
    base = fingerprint(trades)
    assert base == result_15m.fingerprint  # type: ignore[attr-defined]
    noisy = trades.copy()
    for c in ("size", "entry_price", "exit_price", "fees", "pnl"):
        noisy[c] = np.nextafter(noisy[c].to_numpy(), np.inf)
    assert fingerprint(noisy) == base
    moved = trades.copy()
    moved.loc[moved.index[100], "pnl"] *= 1 + 3e-9
    assert fingerprint(moved) != base
    other = trades.copy()
    other.loc[other.index[5], "exit_reason"] = "take_profit" if other["exit_reason"].iloc[5] != "take_profit" else "stop_loss"
    assert fingerprint(other) != base
    assert fingerprint(trades.iloc[:0]) != fingerprint(trades.iloc[:1])


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != 0.0))
def test_significant_digits_is_the_decimal_rounding(x: float) -> None:
    """Against Python's exact decimal arithmetic: mantissa = round-half-even(x × 10^(9 − exponent)) with the
    mantissa in [10^9, 10^10); only a value within a millionth of a tie may round the other way (scaling in
    floating point rounds once before `rint`)."""
    (m,), (e,) = significant_digits(np.array([x]))
    assert 10**9 <= abs(int(m)) < 10**10
    exact = Decimal(x).scaleb(9 - int(e))
    if int(exact.to_integral_value(ROUND_HALF_EVEN)) != int(m):
        assert abs(abs(exact - exact.to_integral_value(ROUND_FLOOR)) - Decimal("0.5")) < Decimal("1e-6")


def test_significant_digits_of_special_values() -> None:
    m, e = significant_digits(np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 9.99999999996, 1000.0, -2.5e-7]))
    assert m.tolist() == [0, 0, 0, 0, 0, 1_000_000_000, 1_000_000_000, -2_500_000_000]
    assert e.tolist() == [0, 0, 1000, 1001, 1002, 1, 3, -7]


def test_bad_input_is_refused_with_the_validation_message() -> None:
    df = read_csv(ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz")
    bad = df.copy()
    bad.iloc[10, bad.columns.get_loc("close")] = np.nan
    with pytest.raises(DataValidationError, match=r"row 11 \(.*\): close is nan"):
        run(bad)
    dup = pd.concat([df.iloc[:5], df.iloc[4:10]])
    with pytest.raises(DataValidationError, match="duplicate timestamp"):
        run(dup)
    with pytest.raises(DataValidationError, match="no bars"):
        run(df.iloc[:0])
    with pytest.raises(ValueError, match="one probability per bar"):
        run(df, ml_gate=np.ones(3))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "research", "backtest", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)


def test_cli_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli("--data", "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz", "--out", str(out),
                 "--set", "risk.kelly.window_days=20", "--start", "2018-02-01", "--end", "2018-11-01")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"stats.json", "trades.csv", "skipped.csv", "equity.parquet",
                                                "manifest.json", "equity.html"}
    for path in out.glob("*.json"):
        strict_loads(path.read_text())
    stats = strict_loads((out / "stats.json").read_text())
    for key in ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_duration",
                "win_rate", "profit_factor", "expectancy", "trade_count", "avg_trade_duration", "exposure",
                "fees_paid", "interest_paid", "per_strategy", "exit_reasons", "performance_stats"):
        assert key in stats
    manifest = strict_loads((out / "manifest.json").read_text())
    assert manifest["data"][0]["first"].startswith("2018-02-01") and manifest["data"][0]["file_sha256"]
    assert len(manifest["code"]["commit"]) in (40, 7) or manifest["code"]["commit"] == "unknown"
    assert manifest["config"]["risk"]["kelly"]["window_days"] == 20
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) == stats["trade_count"] and len(manifest["fingerprint"]) == 64
    assert f"fingerprint {manifest['fingerprint'][:16]}" in result.stdout
    assert manifest["currency"] == stats["currency"] == "JPY" and "JPY" in result.stdout
    assert "plotly" in (out / "equity.html").read_text()[:5000].lower()
    per_bar = pd.read_parquet(out / "equity.parquet")
    assert list(per_bar.columns) == ["equity", "position"] and isinstance(per_bar.index, pd.DatetimeIndex)
    assert str(per_bar.index[0]).startswith("2018-02-01") and str(per_bar.index.tz) == "UTC"
    assert per_bar["equity"].iloc[-1] / per_bar["equity"].iloc[0] - 1 == pytest.approx(stats["total_return"], abs=1e-12)


def test_cli_equity_csv_on_request_and_no_plot(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli("--data", "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz", "--out", str(out), "--equity-csv",
                 "--no-plot")
    assert result.returncode == 0, result.stderr
    names = {p.name for p in out.iterdir()}
    assert "equity.html" not in names and {"equity.csv", "equity.parquet"} <= names
    assert "equity.html" not in result.stdout and "equity.csv" in result.stdout
    as_text = pd.read_csv(out / "equity.csv", index_col=0, parse_dates=True)
    as_text.index = as_text.index.as_unit("ms")
    pd.testing.assert_frame_equal(as_text, pd.read_parquet(out / "equity.parquet"), check_freq=False)


def test_cli_secrets_never_reach_the_report(tmp_path: Path) -> None:
    secret = "sk-test-very-secret-value"
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "research", "backtest", "--data", "data/sample/bitbank_BTC-JPY_1h_2026-08_sample.csv.gz",
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "CRYPTOBOT__EXCHANGE__API_SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    for path in out.iterdir():
        assert secret not in path.read_text(errors="ignore"), path.name
    assert secret not in result.stdout + result.stderr


def test_cli_refuses_bad_config_and_empty_range(tmp_path: Path) -> None:
    out = str(tmp_path / "x")
    bad = cli("--data", "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz", "--out", out, "--set", "risk.max_drawdown=5")
    assert bad.returncode == 2 and "risk.max_drawdown: 5 is invalid" in bad.stderr
    empty = cli("--data", "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz", "--out", out, "--start", "2030-01-01")
    assert empty.returncode == 2 and "no bars" in empty.stderr
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_cli_labels_money_in_the_quote_currency_and_reports_gaps(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli("--data", "data/sample/binance_BTC-USDT_1h_2017-08_2025-05.csv.gz", "--out", str(out),
                 "--end", "2017-10-01")
    assert result.returncode == 0, result.stderr
    assert " USDT, fingerprint" in result.stdout and "JPY" not in result.stdout
    assert "input data: gap: 6 bar(s) missing from 2017-09-06T17:00:00Z" in result.stdout
    stats = strict_loads((out / "stats.json").read_text())
    assert stats["currency"] == "USDT" and stats["units"]["fees_paid"] == "USDT"
    manifest = strict_loads((out / "manifest.json").read_text())
    assert manifest["currency"] == "USDT"
    assert manifest["input_validation"]["gaps"] == 1 and manifest["input_validation"]["missing_bars"] == 6
    assert manifest["input_validation"]["largest_gap"] == {"first_missing_bar": "2017-09-06T17:00:00Z",
                                                           "missing_bars": 6}
    assert "Equity (USDT)" in (out / "equity.html").read_text()
    clean = cli("--data", "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz", "--out", str(tmp_path / "clean"),
                "--start", "2018-03-01", "--end", "2018-04-01")
    assert clean.returncode == 0 and "input data: no gaps, no warnings" in clean.stdout
    assert strict_loads((tmp_path / "clean" / "manifest.json").read_text())["input_validation"]["gaps"] == 0


def test_cli_writes_null_profit_factor_when_no_trade_lost(tmp_path: Path) -> None:
    from tests.test_stats import v_shaped

    data = tmp_path / "test_BTC-USDC_1h.csv"
    v_shaped().to_csv(data, index_label="timestamp")
    config = tmp_path / "ema.yaml"
    config.write_text("strategies:\n" + "".join(f"  {n}: {{enabled: false}}\n" for n in SEED_STRATEGIES)
                      + "  ema_cross: {enabled: true, fast: 5, slow: 30, sl_pct: 0.2}\n"
                      "execution: {fixed_amount: 0.01, allow_short: false}\nrisk: {enabled: false}\n")
    result = cli("--data", str(data), "--config", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "run" / "stats.json").read_text()
    stats = strict_loads(text)
    assert stats["trade_count"] >= 1 and stats["win_rate"] == 1.0
    assert stats["profit_factor"] is None and '"profit_factor": null' in text
    assert stats["currency"] == "USDC"
