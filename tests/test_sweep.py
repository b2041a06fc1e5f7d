"""Sweeps: equal to individual backtests, chunked = unchunked, fused = general, Dask = local, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cryptobot.config import Config
from cryptobot.data import read_csv
from cryptobot.jsonio import strict_loads
from research.backtest import run
from research.stats import METRICS
from research.sweep import (
    GridError,
    Market,
    apply,
    combinations,
    evaluate_each,
    evaluate_general,
    parse_grid,
    run_sweep,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data/sample/bitbank_BTC-JPY_1h_2018.csv.gz"
SEED = ("atr_based", "mochipoy_alert", "multi_timeframe", "donchian_channel", "adx_trend_strength")
EMA_ONLY = Config.model_validate({"strategies": {**{n: {"enabled": False} for n in SEED}, "ema_cross": {"enabled": True}},
                                  "execution": {"fixed_amount": 0.01}})
GRID = "strategies.ema_cross.fast=5:20:5,strategies.ema_cross.slow=[30,60]"
COLS = ["total_return", "sharpe", "max_drawdown", "trade_count", "win_rate", "profit_factor"]


@pytest.fixture(scope="module")
def df():  # type: ignore[no-untyped-def]
    return read_csv(DATA).iloc[:4000]


def test_grid_parsing() -> None:
    grid = parse_grid("strategies.ema_cross.fast=5:20:5,strategies.ema_cross.slow=[30, 60],risk.enabled=false,"
                      "costs.slippage_bps=0.5:1.5:0.5")
    assert grid == {"strategies.ema_cross.fast": [5, 10, 15, 20], "strategies.ema_cross.slow": [30, 60],
                    "risk.enabled": [False], "costs.slippage_bps": [0.5, 1.0, 1.5]}
    with pytest.raises(GridError, match="START:STOP"):
        parse_grid("strategies.ema_cross.fast=20:5")
    with pytest.raises(GridError, match="expected KEY=VALUES"):
        parse_grid("strategies.ema_cross.fast")
    with pytest.raises(GridError, match="no such config key"):
        apply(EMA_ONLY, {"strategies.ema_cros.fast": 3})
    with pytest.raises(GridError, match="fast"):
        apply(EMA_ONLY, {"strategies.ema_cross.fast": 80})  # fast must stay below slow


def test_grid_file(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("strategies.ema_cross.fast: {start: 4, stop: 8, step: 2}\nstrategies.ema_cross.slow: [40]\n")
    assert parse_grid(str(path)) == {"strategies.ema_cross.fast": [4, 6, 8], "strategies.ema_cross.slow": [40]}


def test_rows_equal_individual_backtests(df, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_sweep(df, EMA_ONLY, parse_grid(GRID), tmp_path, chunk_size=3, progress=False)
    assert len(result.results) == 8 and result.summary["evaluator"] == "fused ema_cross"
    for _, row in result.results.sample(3, random_state=0).iterrows():
        params = {"strategies.ema_cross.fast": int(row["strategies.ema_cross.fast"]),
                  "strategies.ema_cross.slow": int(row["strategies.ema_cross.slow"])}
        stats = run(df, apply(EMA_ONLY, params)).stats
        shared = [m for m in METRICS if m in stats]  # one implementation: every shared metric, to the bit
        assert set(COLS) <= set(shared)
        for col in shared:
            assert row[col] == stats[col] or (np.isnan(row[col]) and np.isnan(stats[col])), col


def test_fused_equals_general_and_chunked_equals_unchunked(df, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    grid = parse_grid(GRID)
    fused = run_sweep(df, EMA_ONLY, grid, tmp_path / "a", chunk_size=3, progress=False).results
    general = run_sweep(df, EMA_ONLY, grid, tmp_path / "b", chunk_size=100, progress=False, fused=False).results
    assert np.array_equal(fused.to_numpy(), general.to_numpy())
    assert pq.ParquetFile(tmp_path / "a" / "results.parquet").num_row_groups == 3  # streamed chunk by chunk
    assert pq.ParquetFile(tmp_path / "b" / "results.parquet").num_row_groups == 1


def test_general_evaluator_over_risk_and_strategy_parameters(df, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = Config()
    grid = parse_grid("strategies.atr_based.sl_atr=[1.0,2.0],costs.slippage_bps=[0,5]")
    result = run_sweep(df, base, grid, tmp_path, chunk_size=2, progress=False)
    assert result.summary["evaluator"] == "general" and len(result.results) == 4
    for j, row in result.results.iterrows():
        params = {"strategies.atr_based.sl_atr": row["strategies.atr_based.sl_atr"],
                  "costs.slippage_bps": row["costs.slippage_bps"]}
        stats = run(df, apply(base, params)).stats
        assert stats["trade_count"] > 0, j  # the rows compared below come from real trading
        for col in [m for m in METRICS if m in stats]:  # one implementation: every shared metric, to the bit
            assert row[col] == stats[col] or (np.isnan(row[col]) and np.isnan(stats[col])), (j, col)


def test_compiled_general_evaluator_equals_one_backtest_at_a_time(df) -> None:  # type: ignore[no-untyped-def]
    """Feature, strategy-buffer-length, combiner and risk parameters: the per-combination compiled loop on
    features computed once per feature configuration gives `compute_signals` + `execution_batch`'s rows."""
    grid = parse_grid("features.rsi_period=[10,14],strategies.mochipoy_alert.rci_period=[9,14],"
                      "strategies.combiner.min_score=[0.1,0.3],risk.enabled=[true,false]")
    combos = combinations(grid)
    market = Market.from_frame(df)
    compiled = evaluate_general(market, Config(), combos, 10)
    each = evaluate_each(market, [apply(Config(), c) for c in combos], 10)
    assert np.array_equal(compiled, each, equal_nan=True)
    assert len({r[METRICS.index("trade_count")] for r in compiled}) > 1  # the parameters change the trading


def test_general_evaluator_with_a_custom_strategy(df, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A strategy registered with an array step kernel runs through `compute_signals` per combination."""
    from cryptobot.strategies import register_strategy, unregister_strategy
    from tests.test_strategies import always_long_after

    register_strategy("sweep_long", always_long_after, defaults={"after": 30.0, "sl_atr": 2.0}, state_size=1, warmup=30)
    try:
        base = Config.model_validate({"strategies": {"custom": {"sweep_long": {"weight": 3.0,
                                                                              "params": {"after": 30}}}}})
        key = "strategies.custom.sweep_long.params.after"
        result = run_sweep(df, base, parse_grid(f"{key}=[50,500]"), tmp_path, progress=False)
        assert result.summary["evaluator"] == "general"
        for _, row in result.results.iterrows():
            stats = run(df, apply(base, {key: int(row[key])})).stats
            assert stats["trade_count"] > 0
            assert row["trade_count"] == stats["trade_count"] and row["total_return"] == stats["total_return"]
    finally:
        unregister_strategy("sweep_long")


def test_dask_local_cluster_equals_local_run(df, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from distributed import Client, LocalCluster

    grid = parse_grid(GRID)
    local = run_sweep(df, EMA_ONLY, grid, tmp_path / "local", chunk_size=3, progress=False).results
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = run_sweep(df, EMA_ONLY, grid, tmp_path / "dask", chunk_size=3, progress=False, scheduler=client)
    assert np.array_equal(local.to_numpy(), remote.results.to_numpy())


def test_cli_writes_results_and_overfitting_statistics(tmp_path: Path) -> None:
    sets = [a for n in SEED for a in ("--set", f"strategies.{n}.enabled=false")]
    result = subprocess.run(
        [sys.executable, "-m", "research", "sweep", "--data", str(DATA), "--grid", GRID, "--out", str(tmp_path),
         "--set", "strategies.ema_cross.enabled=true", "--set", "execution.fixed_amount=0.01", *sets,
         "--chunk-size", "4", "--quiet"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in tmp_path.iterdir()} >= {"results.parquet", "top.csv", "summary.json", "manifest.json",
                                                    "heatmap.html"}
    for path in tmp_path.glob("*.json"):
        strict_loads(path.read_text())  # no NaN/Infinity: strict JSON
    summary = strict_loads((tmp_path / "summary.json").read_text())
    assert summary["combinations"] == 8
    assert 0.0 <= summary["pbo"]["probability"] <= 1.0 and summary["pbo"]["splits"] == 252
    assert 0.0 <= summary["deflated_sharpe"]["probability"] <= 1.0
    bad = subprocess.run([sys.executable, "-m", "research", "sweep", "--data", str(DATA), "--grid", "nope.key=[1]",
                          "--out", str(tmp_path / "x")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "nope.key: no such config key" in bad.stderr


def test_walk_forward_chooses_in_sample_and_reports_out_of_sample(df, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from research.sweep import walk_forward_sweep

    grid = parse_grid(GRID)
    windows = walk_forward_sweep(df, EMA_ONLY, grid, train=2000, test=1000, out=tmp_path, progress=False)
    assert len(windows) == 2
    assert (windows["train_last"] < windows["test_first"]).all()
    first = windows.iloc[0]
    insample = run_sweep(df.iloc[:2000], EMA_ONLY, grid, tmp_path / "check", progress=False).results
    best = insample.sort_values("sharpe", ascending=False, kind="stable").iloc[0]
    assert first["strategies.ema_cross.fast"] == best["strategies.ema_cross.fast"]
    assert first["in_sample_sharpe"] == pytest.approx(best["sharpe"])
    params = {"strategies.ema_cross.fast": int(best["strategies.ema_cross.fast"]),
              "strategies.ema_cross.slow": int(best["strategies.ema_cross.slow"])}
    oos = run(df.iloc[2000:3000], apply(EMA_ONLY, params)).stats
    assert first["oos_total_return"] == pytest.approx(oos["total_return"])
