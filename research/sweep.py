"""Parameter sweeps over any dotted config keys, in chunks with bounded memory, streamed to Parquet.

Every combination is a full backtest through the shared kernels (strategy pipeline + execution/risk
kernel, the rules of `research.backtest.run`). Two evaluators share one metrics kernel, the one the backtest's
stats.json uses (`research.stats.equity_metrics`; columns METRICS):
- general: any parameters; the features are computed once per feature configuration, then a generated,
  compiled loop per combination (`general_module`) runs the strategies, the combiner, the execution core
  (`cryptobot.kernels.execution.execution_core`, its state in locals, `end_of_data` after the last bar) and
  the streaming metrics blocks bar by bar; strategies registered with only an array step kernel fall back
  to `compute_signals` + `execution_batch` per combination (`evaluate_each`, the same rows);
- fused: grids over the EMA-crossover example alone run `ema_cross_core` and the same execution and
  metrics blocks (`measured_bar`) in one compiled loop.
Both run the combinations on a thread per core (the loops release the GIL).
Results stream to Parquet, one row group per chunk; per-block return moments go with each row so the
probability of backtest overfitting (CSCV) and the deflated Sharpe ratio need no stored return series.
Chunks can run on a Dask distributed cluster (`scheduler`); the result is identical to a local run.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from numba import njit
from numba.np.unsafe.ndarray import to_fixed_tuple
from tqdm import tqdm

from cryptobot.config import Config
from cryptobot.data import timeframe_to_ms, timestamps_ms
from cryptobot.execution import execution_params
from cryptobot.kernels import execution as ex
from cryptobot.kernels import features as fk
from cryptobot.kernels import strategies as sk
from cryptobot.kernels.combiner import combine_core
from cryptobot.kernels.features import _data_pointer
from cryptobot.kernels.inputs import frozen
from cryptobot.kernels.metrics import metrics_bar, metrics_finish, metrics_start, trade_push
from cryptobot.kernels.strategies import EC_N_PARAMS, EC_N_STATE
from cryptobot.strategies import Pipeline, codegen, compute_signals, registered, registry
from cryptobot.strategies.registry import StrategySpec
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
    v: np.ndarray
    timeframe: str
    frame: pd.DataFrame

    @classmethod
    def from_frame(cls, ohlcv: pd.DataFrame) -> Market:
        tf = _check_input(ohlcv)
        o, h, lo, c, v = (np.ascontiguousarray(ohlcv[k].to_numpy(np.float64))
                          for k in ("open", "high", "low", "close", "volume"))
        return cls(timestamps_ms(ohlcv), o, h, lo, c, v, tf, ohlcv)


def _signal_key(cfg: Config) -> str:
    return json.dumps([cfg.strategies.model_dump(), cfg.features.model_dump(), cfg.data.higher_timeframe],
                      sort_keys=True, default=str)


def evaluate_general(market: Market, base: Config, combos: list[dict[str, Any]], blocks: int) -> np.ndarray:
    """One full backtest per combination; returns rows of [METRICS…, block n…, block sum…, block sumsq…].

    The features are computed once per distinct feature configuration; then one compiled loop per
    combination runs the strategies, the combiner, the execution core and the streaming metrics bar by bar
    (`_general_source`), every state in locals, on a thread per core (the loop releases the GIL).
    Strategies registered with only an array step kernel have no scalar core to place in that loop: with
    one of those registered, each combination runs `compute_signals` and `execution_batch` instead
    (`evaluate_each`, same rows).
    """
    configs = [apply(base, params) for params in combos]
    bar_ms = timeframe_to_ms(market.timeframe)
    pipes = [Pipeline.build(cfg, bar_ms) for cfg in configs]
    if any(p.custom is not None for p in pipes):
        return evaluate_each(market, configs, blocks)
    rows = np.zeros((len(combos), len(METRICS) + 3 * blocks))  # blocks not reached stay 0 (`metrics_finish`)
    module = general_module()
    arrays = [frozen(x) for x in (market.o, market.h, market.lo, market.c, market.v)]
    ts = frozen(market.ts, np.int64)
    features: dict[bytes, tuple[np.ndarray, ...]] = {}  # the 13 computed columns (close, volume: the inputs)
    for p in pipes:
        if p.feature_params.tobytes() not in features:
            columns = fk.feature_columns(market.c.shape[0])
            fk.features_batch_into(fk.features_init(p.feature_params), p.feature_params, *arrays, columns)  # type: ignore[call-arg]
            features[p.feature_params.tobytes()] = columns

    def share(start: int, stop: int) -> None:
        for j in range(start, stop):
            general_row(module, features[pipes[j].feature_params.tobytes()], ts, arrays, pipes[j],
                        execution_params(configs[j], bar_ms), YEAR_MS / bar_ms, blocks, rows[j])

    _on_threads(len(combos), share)
    return rows


def general_row(module: ModuleType, features: tuple[np.ndarray, ...], ts: np.ndarray, arrays: list[np.ndarray],
                pipe: Pipeline, ep: np.ndarray, bars_per_year: float, blocks: int, row: np.ndarray) -> None:
    """One combination through `general_module`'s loop into `row` (METRICS, then the block moments), from
    fresh states; `features` are `features_batch_into`'s columns, `arrays` the read-only o, h, l, c, v."""
    module.general_row(features, ts, *arrays, pipe.initial_state.copy(), pipe.strategy_params, pipe.state_offsets,
                       pipe.param_offsets, pipe.weights, pipe.enabled, pipe.combiner_params, ep,
                       ex.execution_init(ep), np.empty(ex.EV_MAX * ex.EV_WIDTH), bars_per_year, blocks, len(METRICS),
                       row)


def evaluate_each(market: Market, configs: list[Config], blocks: int) -> np.ndarray:
    """`evaluate_general`'s rows one combination at a time through `compute_signals` (custom strategies)."""
    bar_ms = timeframe_to_ms(market.timeframe)
    rows = np.empty((len(configs), len(METRICS) + 3 * blocks))
    cache: dict[str, pd.DataFrame] = {}
    ml = np.full(market.c.shape[0], np.nan)
    for j, cfg in enumerate(configs):
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


@njit(cache=True, inline="always")
def measured_bar(q: Any, s: Any, buf: Any, off: Any, evp: Any, i: int, last: bool, ts: int, o: float, h: float,
                 lo: float, c: float, action: float, sl: float, tp: float, voters: float, m: Any,
                 t: tuple[float, float, float, float], blocks: int, block_n: Any, block_s1: Any, block_s2: Any
                 ) -> tuple[Any, Any, tuple[float, float, float, float]]:
    """One bar of a sweep evaluator: the execution core (`end_of_data` after the last bar), each closed
    trade into the trade statistics, the equity into the streaming metrics — `research.backtest.run`'s rules.
    The block outputs are raw pointers (`metrics_bar`)."""
    s, k = ex.execution_core(q, s, buf, off, evp, 0, i, ts, o, h, lo, c, action, sl, tp, voters, np.nan)
    if last:
        s, k = ex.end_of_data(q, s, buf, off, evp, k, i, ts, c)
    for e in range(k):
        if evp[e * ex.EV_WIDTH + ex.EV.kind] == ex.KIND.exit:
            t = trade_push(t, evp[e * ex.EV_WIDTH + ex.EV.pnl])
    m = metrics_bar(m, i, s.equity, blocks, block_n, block_s1, block_s2)
    return s, m, t


_GENERAL = '''"""Generated by research.sweep for the strategies: {names}. Do not edit: regenerated on demand."""
import numpy as np
from numba import njit

from cryptobot.kernels import execution as ex
from cryptobot.kernels.combiner import C_METHOD, C_MIN_CONFLICT, C_MIN_SCORE, HOLD, combine_core
from cryptobot.kernels.features import _data_pointer
from cryptobot.kernels.metrics import metrics_finish, metrics_start

NAN = np.nan
OFF = (0.0, 0.0, NAN, NAN)
K = {k}


@njit(cache=True, nogil=True)
def general_row(feats, ts, o, h, lo, c, v, sst, sp, soff, poff, weights, enabled, cp, ep, est, ev, bars_per_year,
                blocks, n_metrics, row_out):
    """`row_out`: the metrics and block moments of one combination (its parameters, weights, flags and states)
    over the bars, from the precomputed feature columns `feats` (`features_batch_into`'s 13; close and volume
    are the bar's own). Releases the GIL: combinations run on threads."""
    if sst.shape[0] < soff[K] or sp.shape[0] < poff[K]:
        raise ValueError("signal state arrays do not match the layout of these parameters; rebuild them")
    off = ex.check_state(est, ep)
    sbuf = _data_pointer(sst)
    method, min_conflict, min_score = int(cp[C_METHOD]), cp[C_MIN_CONFLICT], cp[C_MIN_SCORE]
{setup}
    q = ex.load_params(ep)
    s = ex.load_state(est)
    buf = _data_pointer(est)
    evp = _data_pointer(ev)
    block_n = row_out[n_metrics : n_metrics + blocks]
    block_s1 = row_out[n_metrics + blocks : n_metrics + 2 * blocks]
    block_s2 = row_out[n_metrics + 2 * blocks :]
    pn, p1, p2 = _data_pointer(block_n), _data_pointer(block_s1), _data_pointer(block_s2)  # b0.. are strategies'
    {columns} = feats  # unpacked once: taking an array out of the tuple every bar is reference-counted
    n = c.shape[0]
    m = metrics_start(q.init_cash, n, blocks)
    t = (0.0, 0.0, 0.0, 0.0)
    for row in range(n):
        tsv, bo, bh, bl, bc, bv = ts[row], o[row], h[row], lo[row], c[row], v[row]
        if np.isfinite(bo + bh + bl + bc + bv):
            f = ({features})
{votes}
        else:
{bad}
        {combine}
        s, m, t = _measured_bar(q, s, buf, off, evp, row, row == n - 1, tsv, bo, bh, bl, bc, decision[0],
                                decision[2], decision[3], decision[4], m, t, blocks, pn, p1, p2)
    metrics_finish(m, t, n, q.init_cash, s.equity if n else q.init_cash, bars_per_year, row_out[:n_metrics],
                   block_n, block_s1, block_s2)
'''


def _general_source(fused: tuple[StrategySpec, ...]) -> str:
    setup, votes, bad = codegen.strategy_code(fused)
    return _GENERAL.format(
        names=", ".join(s.name for s in fused) or "none", k=len(fused), setup=codegen.indent(setup, 1),
        columns=", ".join(f"x{i}" for i in range(fk.N_COMPUTED)),
        features=", ".join(["bc", "bv", *(f"x{i}[row]" for i in range(fk.N_COMPUTED))]),
        votes=codegen.indent(votes, 2),
        bad=codegen.indent(bad, 3), combine=codegen.combine_line(len(fused)))


def general_module() -> ModuleType:
    """The generated, compiled general evaluator of the registered strategies (compiled on the first sweep)."""
    fused = tuple(s for s in registry.specs() if s.core is not None)
    names = {**codegen.strategy_names(fused), "_measured_bar": measured_bar}
    return codegen.load_module("sweep", _general_source(fused), [*(s.core for s in fused), measured_bar,
                                                                  combine_core], names)


@njit(cache=True)
def _ema_cross_start(p: np.ndarray, st: np.ndarray) -> tuple[Any, Any]:
    """The EMA-cross core's parameters and state as its named tuples (once per combination)."""
    q = sk.EmaCrossParams(*to_fixed_tuple(p, EC_N_PARAMS))  # type: ignore[call-arg]
    return q, sk.EmaCrossState(*to_fixed_tuple(st, EC_N_STATE))


@njit(cache=True, nogil=True)
def _ema_sweep_nb(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, strat: np.ndarray,
                  ep: np.ndarray, voters: float, bars_per_year: float, blocks: int, n_metrics: int,
                  est: np.ndarray, sst: np.ndarray, ev: np.ndarray, rows: np.ndarray) -> None:
    """Per combination j (a row of `strat`, `est`, `sst`, `ev`, `rows`): `ema_cross_core`, then the execution
    core with its state in locals and the streaming metrics, bar by bar (`measured_bar`), into rows[j] (as
    `evaluate_general`'s). Releases the GIL: the caller runs a share of the combinations on each core.

    The EMA cross reads no feature: it gets an empty tuple (an array handed to the inlined core would cost
    reference counting every bar).
    """
    n = c.shape[0]
    q = ex.load_params(ep)
    off = ex.buffer_offsets(ex.execution_layout(ep))
    for j in range(strat.shape[0]):
        buf: Any = _data_pointer(est[j])  # type: ignore[call-arg]
        evp: Any = _data_pointer(ev[j])
        s = ex.load_state(est[j])
        qs, ss = _ema_cross_start(strat[j], sst[j])
        sbuf = _data_pointer(sst[j])
        row = rows[j]
        block_n = row[n_metrics : n_metrics + blocks]
        block_s1 = row[n_metrics + blocks : n_metrics + 2 * blocks]
        block_s2 = row[n_metrics + 2 * blocks :]
        bn, b1, b2 = _data_pointer(block_n), _data_pointer(block_s1), _data_pointer(block_s2)
        m = metrics_start(q.init_cash, n, blocks)
        t = (0.0, 0.0, 0.0, 0.0)
        for i in range(n):
            vote = sk.hold_vote(0.0)
            if np.isfinite(o[i] + h[i] + lo[i] + c[i]):
                ss, vote = sk.ema_cross_core(qs, ss, sbuf, 0, ts[i], o[i], h[i], lo[i], c[i], 0.0, ())
            s, m, t = measured_bar(q, s, buf, off, evp, i, i == n - 1, ts[i], o[i], h[i], lo[i], c[i], vote[0],
                                   vote[2], vote[3], voters if vote[0] != 0.0 else 0.0, m, t, blocks, bn, b1, b2)
        metrics_finish(m, t, n, q.init_cash, s.equity if n else q.init_cash, bars_per_year, row[:n_metrics],
                       block_n, block_s1, block_s2)


def _on_threads(count: int, work: Callable[[int, int], None]) -> None:
    """`work(start, stop)` over 0..count in one contiguous share per core (the kernels release the GIL)."""
    cores = max(1, min(count, os.cpu_count() or 1))
    bounds = [count * k // cores for k in range(cores + 1)]
    with ThreadPoolExecutor(max_workers=cores) as pool:
        list(pool.map(work, bounds[:-1], bounds[1:]))


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
    ema = base.strategies.ema_cross
    fields = ema.model_dump()
    for j, params in enumerate(combos):  # only EMA_KEYS vary: validating that section is validating the config
        try:
            e = type(ema).model_validate({**fields, **{k.rsplit(".", 1)[1]: v for k, v in params.items()}})
        except ValueError as exc:
            raise GridError(f"{params}: {exc}") from None
        strat[j] = (e.fast, e.slow, e.sl_pct, e.tp_pct)
    voters = float(1 << registered().index("ema_cross"))
    ep = execution_params(base, bar_ms)
    count = len(combos)
    states = np.tile(ex.execution_init(ep), (count, 1))
    strategy_states = np.stack([sk.EMA_CROSS.new_state(p) for p in strat])
    events = np.empty((count, ex.EV_MAX * ex.EV_WIDTH))
    rows = np.zeros((count, len(METRICS) + 3 * blocks))  # blocks not reached stay 0 (`metrics_finish`)

    def share(start: int, stop: int) -> None:
        _ema_sweep_nb(market.ts, market.o, market.h, market.lo, market.c, strat[start:stop], ep, voters,
                      YEAR_MS / bar_ms, blocks, len(METRICS), states[start:stop], strategy_states[start:stop],
                      events[start:stop], rows[start:stop])

    _on_threads(count, share)
    return rows


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
