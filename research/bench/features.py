"""`python -m research.bench features`: the 15 features vs TA-Lib and pandas, and the live bar step.

All numbers come from one run on this machine, so only the ratios are meaningful: batch time for the 15
features (ours: one fused numba pass; TA-Lib: its functions plus the three NumPy-only features; pandas:
ewm/rolling), the signal pipeline (features + strategies + combiner) in one batch pass vs TA-Lib's 15
features, the per-bar time of the live step driver vs recomputing the last 500 bars with TA-Lib, peak
memory of each batch run (tracemalloc), and the cold (empty numba cache) and warm start of the features
kernel in a fresh process. JIT compilation is excluded from the batch times (warmed first).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from cryptobot.config import load_config
from cryptobot.data import make_frame, read_csv, timestamps_ms
from cryptobot.data.frames import ohlcv_arrays
from cryptobot.features import FeatureStepper, compute_features
from cryptobot.strategies import Pipeline, SignalStepper, compute_signals

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "bitbank_BTC-JPY_15m_2018.csv.gz"


def synthetic(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 5e6 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 0.001, n)) * close
    high = np.maximum(open_, close) + wick
    low = np.minimum(open_, close) - wick
    volume = rng.lognormal(0, 1, n)
    ts = np.arange(n, dtype=np.int64) * 60_000
    return make_frame(ts, {"open": open_, "high": high, "low": low, "close": close, "volume": volume})


def talib_features(df: pd.DataFrame) -> dict[str, np.ndarray]:
    import talib

    h, lo, c, v = (df[k].to_numpy() for k in ("high", "low", "close", "volume"))
    up, mid, dn = talib.BBANDS(c, 20, 2, 2, talib.MA_Type.SMA)
    dc_hi, dc_lo = talib.MAX(h, 20), talib.MIN(lo, 20)
    return {
        "rsi": talib.RSI(c, 14), "macd": talib.MACD(c, 12, 26, 9)[0], "atr": talib.ATR(h, lo, c, 14),
        "bb": (c - dn) / (up - dn), "ema20": talib.EMA(c, 20), "ema50": talib.EMA(c, 50),
        "vr": v / talib.SMA(v, 20), "dc_hi": dc_hi, "dc_lo": dc_lo, "ch": (c - dc_lo) / (dc_hi - dc_lo),
        "adx": talib.ADX(h, lo, c, 14), "pdi": talib.PLUS_DI(h, lo, c, 14), "mdi": talib.MINUS_DI(h, lo, c, 14),
    }


def pandas_features(df: pd.DataFrame) -> pd.DataFrame:
    h, lo, c, v = df["high"], df["low"], df["close"], df["volume"]
    out = pd.DataFrame(index=df.index)
    delta = c.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    out["rsi"] = 100 - 100 / (1 + gain / loss)
    out["macd"] = c.ewm(span=12, adjust=False).mean() - c.ewm(span=26, adjust=False).mean()
    tr = pd.concat([h - lo, (h - c.shift()).abs(), (lo - c.shift()).abs()], axis=1).max(axis=1)
    out["atr"] = tr.ewm(alpha=1 / 14, adjust=False).mean()
    mid, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    out["bb"] = (c - (mid - 2 * sd)) / (4 * sd)
    out["ema20"] = c.ewm(span=20, adjust=False).mean()
    out["ema50"] = c.ewm(span=50, adjust=False).mean()
    out["vr"] = v / v.rolling(20).mean()
    out["dc_hi"], out["dc_lo"] = h.rolling(20).max(), lo.rolling(20).min()
    out["ch"] = (c - out["dc_lo"]) / (out["dc_hi"] - out["dc_lo"])
    up, down = h.diff(), -lo.diff()
    pdm = up.where((up > down) & (up > 0), 0.0)
    mdm = down.where((down > up) & (down > 0), 0.0)
    atr = tr.ewm(alpha=1 / 14, adjust=False).mean()
    out["pdi"] = 100 * pdm.ewm(alpha=1 / 14, adjust=False).mean() / atr
    out["mdi"] = 100 * mdm.ewm(alpha=1 / 14, adjust=False).mean() / atr
    dx = 100 * (out["pdi"] - out["mdi"]).abs() / (out["pdi"] + out["mdi"])
    out["adx"] = dx.ewm(alpha=1 / 14, adjust=False).mean()
    return out


def best_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_memory(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Min-of-N times with the engines interleaved round by round, so load from others hits all alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def batch_section(label: str, df: pd.DataFrame, repeat: int) -> None:
    t = interleaved({"cryptobot": lambda: compute_features(df), "TA-Lib": lambda: talib_features(df),
                     "pandas": lambda: pandas_features(df)}, repeat)
    mem = {"cryptobot": peak_memory(lambda: compute_features(df)), "TA-Lib": peak_memory(lambda: talib_features(df)),
           "pandas": peak_memory(lambda: pandas_features(df))}
    n = len(df)
    ours = t["cryptobot"]
    print(f"\n{label}: {n:,} bars — 15 features, batch (min of {repeat} interleaved runs)")
    print(f"  {'engine':<10} {'time':>10} {'ns/bar':>8} {'peak MB':>9} {'ours faster by':>15}")
    for name, secs in t.items():
        print(f"  {name:<10} {secs * 1e3:>8.1f}ms {secs / n * 1e9:>8.1f} {mem[name]:>9.1f} {secs / ours:>14.2f}x")
    print(f"  target: ≥ 1.5x TA-Lib ({'met' if t['TA-Lib'] / ours >= 1.5 else 'NOT met'}), "
          f"≥ 10x pandas ({'met' if t['pandas'] / ours >= 10 else 'NOT met'})")


_COLD = (  # only what a features user imports (not the strategies, which compile their own kernels)
    "import time; t0 = time.perf_counter(); import numpy as np; from cryptobot.data import make_frame;"
    "from cryptobot.features import compute_features; x = np.linspace(100.0, 120.0, 100);"
    "compute_features(make_frame(np.arange(100, dtype=np.int64) * 60_000,"
    " {'open': x, 'high': x + 1, 'low': x - 1, 'close': x, 'volume': x}));"
    "print(time.perf_counter() - t0)"
)


def start_section() -> None:
    """Import + first `compute_features` in a fresh process: with an empty numba cache (compiles) and warm."""
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {"NUMBA_CACHE_DIR": cache, "CRYPTOBOT_NUMBA_CACHE_BASE": cache}
        root = Path(__file__).resolve().parents[2]
        runs = [float(subprocess.run([sys.executable, "-c", _COLD], env=env, cwd=root, check=True,
                                     capture_output=True, text=True).stdout.split()[-1]) for _ in range(2)]
    print("\nstart: import + first compute_features in a new process")
    print(f"  cold (empty numba cache, compiles the features kernel)  {runs[0]:6.2f} s")
    print(f"  warm (loaded from the cache)                            {runs[1]:6.2f} s")


@njit(cache=True)
def _step_loop(step: Any, fst: np.ndarray, fp: np.ndarray, foff: np.ndarray, sst: np.ndarray, sp: np.ndarray,
               soff: np.ndarray, poff: np.ndarray, weights: np.ndarray, enabled: np.ndarray, cp: np.ndarray,
               ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray,
               bar: np.ndarray, feat: np.ndarray, votes: np.ndarray, out: np.ndarray) -> None:
    """The live step driver once per bar from compiled code: its kernel time without Python's call overhead."""
    for i in range(c.shape[0]):
        bar[0], bar[1], bar[2], bar[3], bar[4] = o[i], h[i], lo[i], c[i], v[i]
        step(fst, fp, foff, sst, sp, soff, poff, weights, enabled, cp, ts[i], bar, feat, votes, out)


def pipeline_section(df: pd.DataFrame, repeat: int) -> None:
    """The signal pipeline (features + the enabled strategies + combiner) in one batch pass vs TA-Lib's 15 features."""
    cfg = load_config()
    pipe = Pipeline.build(cfg, 60_000)
    o, h, lo, c, v = ohlcv_arrays(df)
    ts = timestamps_ms(df)
    pipe.batch(ts[:1000], o[:1000], h[:1000], lo[:1000], c[:1000], v[:1000])
    t = interleaved({"pipeline": lambda: pipe.batch(ts, o, h, lo, c, v), "TA-Lib": lambda: talib_features(df),
                     "compute_signals": lambda: compute_signals(df, cfg, timeframe="1m")}, repeat)
    n = len(df)
    enabled = [name for name, on in zip(pipe.names, pipe.enabled, strict=True) if on]
    print(f"\nsignal pipeline: {n:,} bars — features + {len(enabled)} strategies + combiner, batch "
          f"(min of {repeat} interleaved runs)")
    for name, secs in t.items():
        print(f"  {name:<16} {secs * 1e3:>8.1f}ms {secs / n * 1e9:>8.1f} ns/bar")
    ratio = t["TA-Lib"] / t["pipeline"]
    print(f"  TA-Lib's 15 features / pipeline  {ratio:.2f}x   target ≥ 1x ({'met' if ratio >= 1 else 'NOT met'})")


def pipeline_profile_section(df: pd.DataFrame, repeat: int) -> None:
    """Where the pipeline's time goes, and what two cores could do for it (`--profile`).

    Each built-in strategy enabled alone (with only the feature blocks it reads) against none enabled
    (combiner and decision rows only); then the enabled set split in two by those costs (the most even
    split) and both halves run at once on two threads (the batch kernel releases the GIL). Each half
    still writes its own decisions, so the pair's time is a lower bound for a two-thread pipeline, which
    would then need a combiner pass over both halves' votes.
    """
    import itertools
    import threading

    base = load_config()
    o, h, lo, c, v = ohlcv_arrays(df)
    ts = timestamps_ms(df)
    everything = Pipeline.build(base, 60_000)
    names = [n for n, on in zip(everything.names, everything.enabled, strict=True) if on]

    def only(keep: tuple[str, ...]) -> Callable[[], Any]:
        pipe = Pipeline.build(base.with_overrides({f"strategies.{n}.enabled": n in keep for n in names}), 60_000)
        pipe.batch(ts[:1000], o[:1000], h[:1000], lo[:1000], c[:1000], v[:1000])  # compile or load before timing
        return lambda: pipe.batch(ts, o, h, lo, c, v)

    everything.batch(ts[:1000], o[:1000], h[:1000], lo[:1000], c[:1000], v[:1000])
    runs = {"none": only(()), **{n: only((n,)) for n in names}, "all": lambda: everything.batch(ts, o, h, lo, c, v),
            "TA-Lib": lambda: talib_features(df)}
    t = interleaved(runs, repeat)
    cost = {n: t[n] - t["none"] for n in names}
    print(f"\nsignal pipeline profile: {len(df):,} bars (min of {repeat} interleaved runs)")
    print(f"  no strategy (combiner + decision rows)   {t['none'] * 1e3:7.1f} ms")
    for n in names:
        print(f"  + {n:<38} {cost[n] * 1e3:+7.1f} ms  (alone, with the feature blocks it reads)")
    print(f"  all {len(names)} (the pipeline)                   {t['all'] * 1e3:7.1f} ms   TA-Lib's 15 features "
          f"{t['TA-Lib'] * 1e3:.1f} ms")
    if len(names) < 2:
        return
    splits = (tuple(a) for r in range(1, len(names)) for a in itertools.combinations(names, r))
    half = min(splits, key=lambda a: max(sum(cost[n] for n in a), sum(cost[n] for n in names if n not in a)))
    other = tuple(n for n in names if n not in half)
    first, second = only(half), only(other)

    def both() -> None:
        worker = threading.Thread(target=second)
        worker.start()
        first()
        worker.join()

    t2 = interleaved({"pair": both, "TA-Lib": lambda: talib_features(df)}, repeat)
    print(f"  two threads, {'+'.join(half)} | {'+'.join(other)}: {t2['pair'] * 1e3:.1f} ms, TA-Lib "
          f"{t2['TA-Lib'] * 1e3:.1f} ms in the same runs (a lower bound for a two-thread pipeline: "
          f"{t2['TA-Lib'] / t2['pair']:.2f}x TA-Lib's time)")


def step_section(df: pd.DataFrame, timeframe: str) -> None:
    import talib  # noqa: F401  (imported here so the import is not timed below)

    cfg = load_config()
    pipe = Pipeline.build(cfg, 60_000 if timeframe == "1m" else 900_000)
    o, h, lo, c, v = (np.ascontiguousarray(df[k].to_numpy()) for k in ("open", "high", "low", "close", "volume"))
    ts = timestamps_ms(df)

    def kernel() -> None:
        pipe.batch(ts, o, h, lo, c, v)

    def step_kernel() -> None:
        st = pipe.new_state()
        _step_loop(pipe.module.pipeline_step, st.features, pipe.feature_params, st.feature_layout, st.strategies,
                   pipe.strategy_params, pipe.state_offsets, pipe.param_offsets, pipe.weights, pipe.enabled,
                   pipe.combiner_params, ts, o, h, lo, c, v, st.bar, st.feature_values, st.votes, st.decision)

    kernel()
    step_kernel()
    per_bar_kernel = best_time(kernel, 3) / len(df)
    per_step_kernel = best_time(step_kernel, 3) / len(df)
    SignalStepper(cfg, timeframe=timeframe).step(int(ts[0]), o[0], h[0], lo[0], c[0], v[0])  # load before timing
    stepper = SignalStepper(cfg, timeframe=timeframe)
    n_calls = min(len(df), 100_000)
    t0 = time.perf_counter()
    for i in range(n_calls):
        stepper.step(int(ts[i]), o[i], h[i], lo[i], c[i], v[i])
    per_call = (time.perf_counter() - t0) / n_calls
    FeatureStepper().update_into(o[0], h[0], lo[0], c[0], v[0])  # loads the step kernel before timing
    fstep = FeatureStepper()
    t0 = time.perf_counter()
    for i in range(n_calls):
        fstep.update_into(o[i], h[i], lo[i], c[i], v[i])
    per_feature_call = (time.perf_counter() - t0) / n_calls
    window = df.iloc[-500:]
    talib_500 = best_time(lambda: talib_features(window), 200)
    print("\nlive bar: features + strategies + combiner")
    print(f"  batch driver, per bar (state in locals)        {per_bar_kernel * 1e6:8.3f} µs")
    print(f"  step driver, per bar (compiled loop)           {per_step_kernel * 1e6:8.3f} µs   target ≤ 1 µs")
    print(f"  SignalStepper.step from Python, per call        {per_call * 1e6:8.3f} µs   (step driver + call overhead)")
    print(f"  FeatureStepper.update from Python, per call     {per_feature_call * 1e6:8.3f} µs")
    print(f"  TA-Lib recomputing the last 500 bars            {talib_500 * 1e6:8.1f} µs")
    print(f"  ratio TA-Lib-500 / step driver                  {talib_500 / per_step_kernel:8.0f}x      target ≥ 20x")
    print(f"  ratio TA-Lib-500 / SignalStepper.step call      {talib_500 / per_call:8.0f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.bench features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=1_000_000, help="synthetic bars (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timing repetitions, best kept (default 5)")
    parser.add_argument("--profile", action="store_true",
                        help="only the signal pipeline's profile: each strategy alone, and two threads (compiles "
                             "one pipeline per strategy subset on first use)")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    if args.profile:
        pipeline_profile_section(synthetic(args.bars), args.repeat)
        return 0
    warm = synthetic(2_000)
    compute_features(warm)
    talib_features(warm)
    batch_section("synthetic 1-minute random walk", synthetic(args.bars), args.repeat)
    real = read_csv(SAMPLE)
    batch_section(f"real data {SAMPLE.name}", real, args.repeat * 4)
    start_section()
    pipeline_section(synthetic(args.bars), args.repeat)
    step_section(synthetic(min(args.bars, 200_000)), "1m")
    return 0
