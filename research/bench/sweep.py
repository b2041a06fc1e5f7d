"""`python -m research.bench sweep`: combinations per second and peak RSS of a parameter sweep.

The EMA-crossover example (fixed size, 5 % stop-loss, 0.1 % fee) on synthetic one-minute bars over a grid
of (fast, slow) periods. cryptobot: `research.sweep.run_sweep` (fused evaluator, chunks of 256). vectorbt:
one `Portfolio.from_signals` call broadcasting the whole grid as columns (its usual way), EMAs from TA-Lib.
Then the general evaluator: the default config (the five seed strategies) over a grid of two seed-strategy
parameters, with where its time goes (the features, once; the compiled per-combination loop).
Each engine runs in a fresh process so peak RSS is its own; each is first run once on a 2,000-bar slice
(compiles, or loads numba's cache), so the times are of the sweep itself, on an empty cache as on a warm one:
interpreter start, imports and compilation excluded, for vectorbt's numba functions as for ours.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from research.bench.features import machine

ROOT = Path(__file__).resolve().parents[2]

CHILD = r'''
import json, resource, sys, tempfile, time
from pathlib import Path
import numpy as np
bars, fast_n, slow_n, engine = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
from research.bench.backtest import frame, config
df = frame(bars)
from cryptobot.features import feature_params
from cryptobot.kernels.features import feature_layout
feature_layout(feature_params())  # numba's one-time start-up in a process (~0.3 s), not part of any sweep
fasts = list(range(2, 2 + fast_n))
slows = list(range(2 + fast_n + 3, 2 + fast_n + 3 + 3 * slow_n, 3))  # every slow > every fast
if engine == "cryptobot":
    from research.sweep import run_sweep
    cfg = config().model_copy(deep=True)
    cfg = cfg.with_overrides({"execution.reverse_on_opposite": False})
    grid = {"strategies.ema_cross.fast": fasts, "strategies.ema_cross.slow": slows}
    run_sweep(df.iloc[:2000], cfg, {k: v[:2] for k, v in grid.items()}, Path(tempfile.mkdtemp()), progress=False)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        res = run_sweep(df, cfg, grid, Path(out), chunk_size=256, progress=False)
    elapsed = time.perf_counter() - t0
    combos = len(res.results)
elif engine == "general":
    from cryptobot.config import Config
    from cryptobot.execution import execution_params
    from cryptobot.kernels import features as fk
    from cryptobot.kernels.inputs import frozen
    from cryptobot.strategies import Pipeline
    from research.stats import METRICS, YEAR_MS
    from research.sweep import Market, general_module, general_row, run_sweep
    cfg = Config()
    values = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5][:fast_n]
    grid = {"strategies.atr_based.sl_atr": values, "strategies.mochipoy_alert.sl_atr": values[:slow_n]}
    run_sweep(df.iloc[:2000], cfg, grid, Path(tempfile.mkdtemp()), progress=False)  # compile (or load the cache)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        res = run_sweep(df, cfg, grid, Path(out), chunk_size=256, progress=False)
    elapsed = time.perf_counter() - t0
    combos = len(res.results)
    m = Market.from_frame(df)
    arrays = [frozen(x) for x in (m.o, m.h, m.lo, m.c, m.v)]
    fp = feature_params(cfg.features)
    t1 = time.perf_counter()
    feats = fk.feature_columns(len(df))
    fk.features_batch_into(fk.features_init(fp), fp, *arrays, feats)
    t2 = time.perf_counter()
    pipe = Pipeline.build(cfg, 60_000)
    ep = execution_params(cfg, 60_000)
    row = np.zeros(len(METRICS) + 30)
    module = general_module()
    t3 = time.perf_counter()
    general_row(module, feats, frozen(m.ts, np.int64), arrays, pipe, ep, YEAR_MS / 60_000, 10, row)
    t4 = time.perf_counter()
    print(json.dumps({"combos": combos, "seconds": elapsed, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "features_s": t2 - t1, "combination_s": t4 - t3}))
    sys.exit(0)
else:
    import talib, pandas as pd, vectorbt as vbt
    def vbt_sweep(df, fasts, slows):
        c = df["close"].to_numpy()
        ema = {p: talib.EMA(c, p) for p in set(fasts) | set(slows)}
        cols = [(f, s) for f in fasts for s in slows]
        diff = np.column_stack([ema[f] - ema[s] for f, s in cols])
        prev = np.vstack([np.full((1, len(cols)), np.nan), diff[:-1]])
        up = np.vstack([np.zeros((1, len(cols)), bool), ((diff > 0) & (prev <= 0))[:-1]])
        idx = df.index
        pf = vbt.Portfolio.from_signals(pd.Series(c, index=idx), entries=pd.DataFrame(up, index=idx), exits=None,
                                        price=df["open"].to_numpy()[:, None], open=df["open"].to_numpy()[:, None],
                                        high=df["high"].to_numpy()[:, None], low=df["low"].to_numpy()[:, None],
                                        size=1.0, fees=0.001, sl_stop=0.05, init_cash=1e9, freq="1min")
        pf.total_return()
        return len(cols)
    vbt_sweep(df.iloc[:2000], fasts[:2], slows[:2])
    t0 = time.perf_counter()
    combos = vbt_sweep(df, fasts, slows)
    elapsed = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"combos": combos, "seconds": elapsed, "rss_mb": rss}))
'''


def child(engine: str, bars: int, fast_n: int, slow_n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(bars), str(fast_n), str(slow_n), engine], cwd=ROOT,
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.bench sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=100_000, help="one-minute bars (default 100,000)")
    parser.add_argument("--fast", type=int, default=40, help="fast periods in the grid (default 40)")
    parser.add_argument("--slow", type=int, default=25, help="slow periods in the grid (default 25)")
    parser.add_argument("--vbt-fast", type=int, default=10, help="fast periods for vectorbt (default 10)")
    parser.add_argument("--general", type=int, default=8, help="values per parameter, general evaluator (default 8)")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    ours = child("cryptobot", args.bars, args.fast, args.slow)
    theirs = child("vectorbt", args.bars, args.vbt_fast, args.slow)
    ours_rate = ours["combos"] / ours["seconds"]
    vbt_rate = theirs["combos"] / theirs["seconds"]
    print(f"\nEMA-crossover grid on {args.bars:,} bars")
    print(f"  {'engine':<10} {'combos':>7} {'seconds':>8} {'combos/s':>9} {'peak RSS MB':>12}")
    print(f"  {'cryptobot':<10} {ours['combos']:>7.0f} {ours['seconds']:>8.2f} {ours_rate:>9.1f} {ours['rss_mb']:>12.0f}"
          f"   targets: ≥ 1,000 combos/s, ≤ 2,048 MB")
    print(f"  {'vectorbt':<10} {theirs['combos']:>7.0f} {theirs['seconds']:>8.2f} {vbt_rate:>9.1f} {theirs['rss_mb']:>12.0f}"
          f"   (one broadcast call; its memory grows with the grid, ours is chunked)")
    print(f"  cryptobot / vectorbt throughput: {ours_rate / vbt_rate:.1f}x   target: ≥ 50x")
    general = child("general", args.bars, args.general, args.general)
    rate = general["combos"] / general["seconds"]
    print("\nGeneral evaluator, default config (5 seed strategies), grid of two seed-strategy stop distances")
    print(f"  {'cryptobot':<10} {general['combos']:>7.0f} {general['seconds']:>8.2f} {rate:>9.1f} "
          f"{general['rss_mb']:>12.0f}   target: ≥ 100 combos/s")
    print(f"  where the time goes: features once per feature configuration {general['features_s'] * 1e3:.0f} ms; "
          f"per combination, one thread, strategies + combiner + execution + metrics "
          f"{general['combination_s'] * 1e3:.1f} ms; combinations run on a thread per core")
    return 0
