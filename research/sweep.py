"""Parameter sweeps over any dotted config keys, in chunks with bounded memory, streamed to Parquet.

Every combination is a full backtest through the shared kernels (strategy pipeline + execution/risk
kernel, the rules of `research.backtest.run`). Two evaluators share one metrics kernel, the one the backtest's
stats.json uses (`research.stats.equity_metrics`; columns METRICS):
- general: any parameters; the signal pipeline is re-run only when a strategy/feature parameter changed;
- fused: grids over the EMA-crossover example alone run `ema_cross_step`, the execution core
  (`cryptobot.kernels.execution.execution_core`, its state in locals, `end_of_data` after the last bar) and
  the streaming metrics blocks for many combinations in one compiled loop, in parallel across combinations
  (numba `prange`).
Results stream to Parquet, one row group per chunk; per-block return moments go with each row so the
probability of backtest overfitting (CSCV) and the deflated Sharpe ratio need no stored return series.
Chunks can run on a Dask distributed cluster (`scheduler`); the result is identical to a local run.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from numba import njit, prange
from numba.np.unsafe.ndarray import to_fixed_tuple
from tqdm import tqdm

from cryptobot.config import Config
from cryptobot.data import timeframe_to_ms, timestamps_ms
from cryptobot.execution import execution_params
from cryptobot.kernels import execution as ex
from cryptobot.kernels import strategies as sk
from cryptobot.kernels.features import _data_pointer
from cryptobot.kernels.metrics import metrics_bar, metrics_finish, metrics_start, trade_push
from cryptobot.kernels.strategies import EC_N_PARAMS, EC_N_STATE
from cryptobot.strategies import compute_signals, registered
from research.backtest import _check_input
from research.overfitting import deflated_sharpe, probability_of_backtest_overfitting
from research.stats import METRICS, YEAR_MS, equity_metrics

TOP_COLUMNS = ("total_return", "sharpe", "max_drawdown", "trade_count", "win_rate", "profit_factor")
EMA_KEYS = ("strategies.ema_cross.fast", "strategies.ema_cross.slow", "strategies.ema_cross.sl_pct",
            "strategies.ema_cross.tp_pct")


class GridError(ValueError):
    """A grid that cannot be parsed or does not fit the config."""


# ------------------------------------------------------------------------------------------- grid
def _values(key: str, text: str) -> list[Any]:
    text = text.strip()
    if re.fullmatch(r"-?[\d.eE+-]+:-?[\d.eE+-]+(:-?[\d.eE+-]+)?", text):
        parts = [float(x) for x in text.split(":")]
        start, stop = parts[0], parts[1]
        step = parts[2] if len(parts) == 3 else 1.0
        if step <= 0 or stop < start:
            raise GridError(f"{key}={text}: a range is START:STOP[:STEP] with STOP >= START and STEP > 0")
        count = int(np.floor((stop - start) / step + 1e-9)) + 1
        vals = [start + i * step for i in range(count)]
        return [int(v) if float(v).is_integer() and all(float(p).is_integer() for p in parts) else round(v, 12)
                for v in vals]
    parsed = yaml.safe_load(text)
    return parsed if isinstance(parsed, list) else [parsed]


def parse_grid(spec: str) -> dict[str, list[Any]]:
    """A YAML/JSON file (`key: [values]` or `key: {start, stop, step}`) or an inline expression:
    `strategies.ema_cross.fast=5:50:5,strategies.ema_cross.slow=[20,50,100],risk.enabled=false`
    (ranges are START:STOP:STEP with STOP included)."""
    path = Path(spec)
    if path.is_file():
        raw = yaml.safe_load(path.read_text())
        if not isinstance(raw, dict) or not raw:
            raise GridError(f"{path}: a grid file maps dotted config keys to lists of values")
        grid: dict[str, list[Any]] = {}
        for key, value in raw.items():
            if isinstance(value, dict):
                value = _values(key, f"{value['start']}:{value['stop']}:{value.get('step', 1)}")
            grid[str(key)] = value if isinstance(value, list) else [value]
    else:
        grid = {}
        for item in re.split(r",(?![^\[]*\])", spec):
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise GridError(f"grid item {item!r}: expected KEY=VALUES, e.g. strategies.ema_cross.fast=5:50:5")
            grid[key.strip()] = _values(key.strip(), text)
    for key, values in grid.items():
        if not values:
            raise GridError(f"{key}: no values")
    return grid


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def apply(base: Config, params: dict[str, Any]) -> Config:
    data = base.model_dump()
    for dotted, value in params.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], dict):
                raise GridError(f"{dotted}: no such config key")
            node = node[part]
        if parts[-1] not in node:
            raise GridError(f"{dotted}: no such config key")
        node[parts[-1]] = value
    try:
        return Config.model_validate(data)
    except ValueError as exc:
        raise GridError(f"{params}: {exc}") from None


# ------------------------------------------------------------------------------------ evaluators
@dataclass
class Market:
    """Arrays of the data every chunk needs (small enough to scatter to Dask workers)."""

    ts: np.ndarray
    o: np.ndarray
    h: np.ndarray
    lo: np.ndarray
    c: np.ndarray
    timeframe: str
    frame: pd.DataFrame

    @classmethod
    def from_frame(cls, ohlcv: pd.DataFrame) -> Market:
        tf = _check_input(ohlcv)
        o, h, lo, c = (np.ascontiguousarray(ohlcv[k].to_numpy(np.float64)) for k in ("open", "high", "low", "close"))
        return cls(timestamps_ms(ohlcv), o, h, lo, c, tf, ohlcv)


def _signal_key(cfg: Config) -> str:
    return json.dumps([cfg.strategies.model_dump(), cfg.features.model_dump(), cfg.data.higher_timeframe],
                      sort_keys=True, default=str)


def evaluate_general(market: Market, base: Config, combos: list[dict[str, Any]], blocks: int) -> np.ndarray:
    """One full backtest per combination; returns rows of [METRICS…, block n…, block sum…, block sumsq…]."""
    bar_ms = timeframe_to_ms(market.timeframe)
    rows = np.empty((len(combos), len(METRICS) + 3 * blocks))
    cache: dict[str, pd.DataFrame] = {}
    ml = np.full(market.c.shape[0], np.nan)
    for j, params in enumerate(combos):
        cfg = apply(base, params)
        key = _signal_key(cfg)
        if key not in cache:
            cache.clear()
            cache[key] = compute_signals(market.frame, cfg, timeframe=market.timeframe)
        sig = cache[key]
        events, equity, _, _ = ex.execution_batch(
            execution_params(cfg, bar_ms), market.ts, market.o, market.h, market.lo, market.c,
            sig["action"].to_numpy(np.float64), sig["stop_loss"].to_numpy(), sig["take_profit"].to_numpy(),
            sig["voters"].to_numpy(np.float64), ml)
        pnl = np.ascontiguousarray(events["pnl"][events["kind"] == ex.KIND.exit])
        row = rows[j]
        m = len(METRICS)
        equity_metrics(equity, cfg.execution.initial_capital, pnl, YEAR_MS / bar_ms, row[:m], row[m : m + blocks],
                       row[m + blocks : m + 2 * blocks], row[m + 2 * blocks :])
    return rows


@njit(cache=True)
def _ema_cross_start(p: np.ndarray, st: np.ndarray) -> tuple[Any, Any]:
    """The EMA-cross core's parameters and state as its named tuples (once per combination)."""
    q = sk.EmaCrossParams(*to_fixed_tuple(p, EC_N_PARAMS))  # type: ignore[call-arg]
    return q, sk.EmaCrossState(*to_fixed_tuple(st, EC_N_STATE))


@njit(cache=True, parallel=True)
def _ema_sweep_nb(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, strat: np.ndarray,
                  ep: np.ndarray, voters: float, bars_per_year: float, blocks: int, n_metrics: int,
                  est: np.ndarray, sst: np.ndarray, ev: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Per combination j (in parallel): `ema_cross_step`, then the execution core with its state in locals and
    the streaming metrics, bar by bar; `end_of_data` after the last bar. Rows as `evaluate_general`'s.

    Every per-combination array comes in as row j of an array allocated by the caller (execution states with
    their ring buffers, strategy states, event buffers, the bar/features/vote scratch): an allocation inside
    the `prange` body that numba sees as loop-invariant is hoisted out of it and shared by the threads.
    """
    combos = strat.shape[0]
    n = c.shape[0]
    rows = np.zeros((combos, n_metrics + 3 * blocks))
    q = ex.load_params(ep)
    off = ex.buffer_offsets(ex.execution_layout(ep))
    for j in prange(combos):
        buf: Any = _data_pointer(est[j])  # type: ignore[call-arg]
        evp: Any = _data_pointer(ev[j])
        s = ex.load_state(est[j])
        qs, ss = _ema_cross_start(strat[j], sst[j])
        sbuf = _data_pointer(sst[j])
        feat = scratch[j, 5:20]
        row = rows[j]
        block_n = row[n_metrics : n_metrics + blocks]
        block_s1 = row[n_metrics + blocks : n_metrics + 2 * blocks]
        block_s2 = row[n_metrics + 2 * blocks :]
        m = metrics_start(q.init_cash, n, blocks)
        t = (0.0, 0.0, 0.0, 0.0)
        for i in range(n):
            vote = sk.hold_vote(0.0)
            if np.isfinite(o[i] + h[i] + lo[i] + c[i]):
                ss, vote = sk.ema_cross_core(qs, ss, sbuf, 0, ts[i], o[i], h[i], lo[i], c[i], 0.0, feat)
            s, k = ex.execution_core(q, s, buf, off, evp, 0, i, ts[i], o[i], h[i], lo[i], c[i], vote[0], vote[2],
                                     vote[3], voters if vote[0] != 0.0 else 0.0, np.nan)
            if i == n - 1:
                s, k = ex.end_of_data(q, s, buf, off, evp, k, i, ts[i], c[i])
            for e in range(k):
                if evp[e * ex.EV_WIDTH + ex.EV.kind] == ex.KIND.exit:
                    t = trade_push(t, evp[e * ex.EV_WIDTH + ex.EV.pnl])
            m = metrics_bar(m, i, s.equity, blocks, block_n, block_s1, block_s2)
        metrics_finish(m, t, n, q.init_cash, s.equity if n else q.init_cash, bars_per_year, row[:n_metrics],
                       block_n, block_s1, block_s2)
    return rows


def fused_applicable(base: Config, grid_keys: list[str]) -> bool:
    """The fused EMA-crossover evaluator applies when it is the only enabled strategy and only its
    parameters are swept (everything else is the same for all combinations)."""
    enabled = [n for n in ("atr_based", "mochipoy_alert", "multi_timeframe", "donchian_channel",
                           "adx_trend_strength") if getattr(base.strategies, n).enabled]
    return (not enabled and base.strategies.ema_cross.enabled and not base.strategies.custom
            and all(k in EMA_KEYS for k in grid_keys))


def evaluate_fused(market: Market, base: Config, combos: list[dict[str, Any]], blocks: int) -> np.ndarray:
    bar_ms = timeframe_to_ms(market.timeframe)
    strat = np.empty((len(combos), 4))
    for j, params in enumerate(combos):
        e = apply(base, params).strategies.ema_cross
        strat[j] = (e.fast, e.slow, e.sl_pct, e.tp_pct)
    voters = float(1 << registered().index("ema_cross"))
    ep = execution_params(base, bar_ms)
    count = len(combos)
    states = np.tile(ex.execution_init(ep), (count, 1))
    strategy_states = np.stack([sk.EMA_CROSS.new_state(p) for p in strat])
    events = np.empty((count, ex.EV_MAX * ex.EV_WIDTH))
    scratch = np.zeros((count, 24))
    return _ema_sweep_nb(market.ts, market.o, market.h, market.lo, market.c, strat, ep, voters, YEAR_MS / bar_ms,
                         blocks, len(METRICS), states, strategy_states, events, scratch)


# ------------------------------------------------------------------------------------------ driver
@dataclass
class SweepResult:
    path: Path
    results: pd.DataFrame
    top: pd.DataFrame
    summary: dict[str, Any]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _frame(combos: list[dict[str, Any]], rows: np.ndarray, blocks: int) -> pd.DataFrame:
    m = len(METRICS)
    columns = {name: rows[:, i] for i, name in enumerate(METRICS)}
    for k in range(blocks):
        columns[f"block{k}_n"] = rows[:, m + k]
        columns[f"block{k}_sum"] = rows[:, m + blocks + k]
        columns[f"block{k}_sumsq"] = rows[:, m + 2 * blocks + k]
    return pd.concat([pd.DataFrame(combos), pd.DataFrame(columns)], axis=1)  # one frame, not a column at a time


def run_sweep(ohlcv: pd.DataFrame, base: Config, grid: dict[str, list[Any]], out: Path, chunk_size: int = 256,
              blocks: int = 10, top: int = 20, scheduler: str | Any | None = None, progress: bool = True,
              fused: bool | None = None) -> SweepResult:
    """Evaluate every combination of `grid`, streaming rows to `out/results.parquet`."""
    if blocks < 2 or blocks % 2:
        raise GridError("--blocks must be an even number >= 2 (CSCV splits time into halves)")
    combos = combinations(grid)
    for key in grid:
        apply(base, {key: grid[key][0]})  # fail fast on unknown keys or invalid values
    market = Market.from_frame(ohlcv)
    use_fused = fused_applicable(base, list(grid)) if fused is None else fused
    evaluate: Callable[[Market, Config, list[dict[str, Any]], int], np.ndarray] = (
        evaluate_fused if use_fused else evaluate_general)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.parquet"
    tmp = out / ".results.parquet.tmp"
    writer: pq.ParquetWriter | None = None
    chunks = list(_chunks(combos, chunk_size))
    bar = tqdm(total=len(combos), desc="sweep", unit="combo", disable=not progress)
    try:
        if scheduler is not None:
            from distributed import Client

            client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
            remote_market = client.scatter(market, broadcast=True)
            futures = [client.submit(evaluate, remote_market, base, chunk, blocks, pure=False) for chunk in chunks]
            results: Iterator[np.ndarray] = (f.result() for f in futures)
        else:
            results = (evaluate(market, base, chunk, blocks) for chunk in chunks)
        for chunk, rows in zip(chunks, results, strict=True):
            table = pa.Table.from_pandas(_frame(chunk, rows, blocks), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            bar.update(len(chunk))
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    tmp.replace(path)
    frame = pd.read_parquet(path)
    return SweepResult(path, frame, *summarise(frame, grid, blocks, top, use_fused))


def summarise(frame: pd.DataFrame, grid: dict[str, list[Any]], blocks: int, top: int,
              fused: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    ranked = frame.sort_values("sharpe", ascending=False, kind="stable")
    best = int(ranked.index[0])
    n_returns, skew, kurtosis = frame.loc[best, ["n_returns", "skew", "kurtosis"]].to_numpy(np.float64)
    dsr = deflated_sharpe(frame["sharpe_per_bar"].to_numpy(), best, int(n_returns), float(skew), float(kurtosis))
    cols = [f"block{k}_" for k in range(blocks)]
    pbo = probability_of_backtest_overfitting(
        frame[[c + "n" for c in cols]].to_numpy(), frame[[c + "sum" for c in cols]].to_numpy(),
        frame[[c + "sumsq" for c in cols]].to_numpy())
    keys = list(grid)
    summary = {
        "combinations": int(len(frame)),
        "grid": grid,
        "evaluator": "fused ema_cross" if fused else "general",
        "best": {k: (v.item() if hasattr(v, "item") else v) for k, v in ranked.iloc[0][keys + list(METRICS)].items()},
        "deflated_sharpe": {"probability": dsr.deflated_sharpe, "best_sharpe_per_bar": dsr.best_sharpe,
                            "expected_max_sharpe_per_bar": float(dsr.expected_max_sharpe), "trials": dsr.n_trials,
                            "observations": dsr.n_obs},
        "pbo": {"probability": pbo.pbo, "splits": pbo.n_splits, "blocks": pbo.n_blocks},
    }
    return ranked.head(top)[keys + list(TOP_COLUMNS)], summary


# ------------------------------------------------------------------------------------ walk-forward
def walk_forward_sweep(ohlcv: pd.DataFrame, base: Config, grid: dict[str, list[Any]], train: int, test: int,
                       out: Path, chunk_size: int = 256, blocks: int = 10, progress: bool = True,
                       scheduler: str | Any | None = None) -> pd.DataFrame:
    """Choose the best combination (Sharpe) on each train window, backtest it on the next window.

    Only the out-of-sample windows are reported; each window's in-sample sweep is kept under
    `out/window<k>/` (results.parquet, summary.json with its overfitting statistics) for inspection.
    """
    from research.backtest import run as backtest
    from research.cv import walk_forward
    from research.manifest import write_json

    windows = list(walk_forward(len(ohlcv), train, test))
    if not windows:
        raise GridError(f"{len(ohlcv)} bars cannot hold a train window of {train} and a test window of {test}")
    keys = list(grid)
    rows = []
    for k, (train_idx, test_idx) in enumerate(tqdm(windows, desc="walk-forward", unit="window", disable=not progress)):
        insample = run_sweep(ohlcv.iloc[train_idx], base, grid, out / f"window{k}", chunk_size=chunk_size,
                             blocks=blocks, progress=False, scheduler=scheduler)
        write_json(out / f"window{k}" / "summary.json", insample.summary)
        best = insample.results.sort_values("sharpe", ascending=False, kind="stable").iloc[0]
        params = {key: (best[key].item() if hasattr(best[key], "item") else best[key]) for key in keys}
        stats = backtest(ohlcv.iloc[test_idx], apply(base, params)).stats
        rows.append({"window": k, "train_first": ohlcv.index[train_idx[0]], "train_last": ohlcv.index[train_idx[-1]],
                     "test_first": ohlcv.index[test_idx[0]], "test_last": ohlcv.index[test_idx[-1]], **params,
                     "in_sample_sharpe": float(best["sharpe"]),
                     **{f"oos_{m}": stats[m] for m in ("total_return", "sharpe", "max_drawdown", "trade_count")}})
    return pd.DataFrame(rows)
