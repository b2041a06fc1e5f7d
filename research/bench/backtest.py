"""`python -m research.bench backtest`: end-to-end backtest vs backtesting.py and vectorbt, same run, same rules.

Rules for all three: the EMA-crossover example (fast 10, slow 30), stop and reverse on every cross, a fixed
size of 1 unit, 5 % stop-loss, 0.1 % fee, on synthetic one-minute bars. In-process time excludes imports
and compilation (each engine is warmed on a small slice) and is the best of `--repeat` runs of each engine,
the first run printed beside it (the first touch of fresh memory is the noisiest part of a run); whole-process time runs each engine in a fresh
Python process, imports and JIT (warm numba cache) included. backtesting.py is run on a slice and scaled
linearly to the full size (its cost is linear in bars), which the output states.

The command-line section writes the bars as a CSV in the shipped layout and times the whole
`python -m research backtest` process on it (read, validate, backtest, every report file) against the
figure freqtrade's own whole `freqtrade backtesting` process took on the same bars and rules, measured once
(`research/bench/freqtrade/`: version, commands and result in its README; freqtrade is not a dependency).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from research.bench.features import machine, synthetic

ROOT = Path(__file__).resolve().parents[2]
FREQTRADE = Path(__file__).resolve().parent / "freqtrade" / "result.json"
SEED = ("atr_based", "mochipoy_alert", "multi_timeframe", "donchian_channel", "adx_trend_strength")


def frame(n: int) -> pd.DataFrame:
    """Synthetic one-minute bars around a price of 100."""
    df = synthetic(n)
    scale = 100.0 / df["close"].iloc[0]
    for col in ("open", "high", "low", "close"):
        df[col] = df[col] * scale
    return df


BENCH_SETTINGS = {
    "strategies": {**{n: {"enabled": False} for n in SEED},
                   "ema_cross": {"enabled": True, "fast": 10, "slow": 30, "sl_pct": 0.05, "tp_pct": 0.0}},
    "costs": {"taker_fee": 0.001, "maker_fee": 0.001, "slippage_bps": 0.0, "margin_interest_daily": 0.0},
    "execution": {"fixed_amount": 1.0, "reverse_on_opposite": True, "initial_capital": 1e9},
    "exchange": {"amount_step": 1e-8, "min_amount": 1e-8},
    "risk": {"enabled": False},
}


def config():
    from cryptobot.config import Config

    return Config.model_validate(BENCH_SETTINGS)


def run_ours(df: pd.DataFrame) -> int:
    from research.backtest import run

    return len(run(df, config()).trades)


def run_vectorbt(df: pd.DataFrame) -> int:
    import talib
    import vectorbt as vbt

    c = df["close"].to_numpy()
    fast, slow = talib.EMA(c, 10), talib.EMA(c, 30)
    diff = pd.Series(fast - slow, index=df.index)
    up = ((diff > 0) & (diff.shift(1) <= 0)).shift(1, fill_value=False)
    down = ((diff < 0) & (diff.shift(1) >= 0)).shift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(df["close"], entries=up, short_entries=down, price=df["open"], open=df["open"],
                                    high=df["high"], low=df["low"], size=1.0, fees=0.001, sl_stop=0.05,
                                    init_cash=1e9, freq="1min")
    return int(pf.trades.count())


def run_backtesting_py(df: pd.DataFrame) -> int:
    import talib
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    class EmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(talib.EMA, self.data.Close, 10)
            self.slow = self.I(talib.EMA, self.data.Close, 30)

        def next(self) -> None:
            price = self.data.Close[-1]
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy(size=1, sl=price * 0.95)
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell(size=1, sl=price * 1.05)

    data = df.rename(columns=str.capitalize)
    data.index = pd.DatetimeIndex(data.index).tz_localize(None)
    stats = Backtest(data, EmaCross, cash=1e9, commission=0.001, finalize_trades=True).run()
    return int(stats["# Trades"])


ENGINES = {"cryptobot": run_ours, "vectorbt": run_vectorbt, "backtesting.py": run_backtesting_py}


def timed(name: str, df: pd.DataFrame, repeat: int = 1) -> tuple[float, int, float]:
    """Best of `repeat` runs, trades, and the first run's time (it alone maps fresh memory: on a virtual
    machine the first touch of a page costs several times a reused one, whichever engine runs first)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        trades = ENGINES[name](df)
        times.append(time.perf_counter() - t0)
    return min(times), trades, times[0]


def whole_process(name: str, bars: int) -> float:
    code = (f"from research.bench.backtest import ENGINES, frame; import sys; "
            f"sys.stdout.write(str(ENGINES[{name!r}](frame({bars}))))")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def write_bench_csv(df: pd.DataFrame, path: Path) -> None:
    """The bars in the shipped CSV layout (ISO-8601 UTC text), from 2020 so the dates look like market data."""
    index = pd.DatetimeIndex(df.index) + (pd.Timestamp("2020-01-01", tz="UTC") - pd.Timestamp(0, tz="UTC"))
    out = pd.DataFrame({"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ")}
                       | {c: df[c].to_numpy() for c in ("open", "high", "low", "close", "volume")})
    out.to_csv(path, index=False)


def bench_config_yaml(path: Path) -> None:
    """`config()` as the YAML file a user would pass with --config."""
    import yaml

    path.write_text(yaml.safe_dump(BENCH_SETTINGS))


def cli_section(df: pd.DataFrame, repeat: int) -> None:
    """The whole research-backtest process on a CSV of `df`, best of `repeat`, vs freqtrade's recorded figure."""
    with tempfile.TemporaryDirectory(prefix="cryptobot-bench-cli-") as tmp:
        csv, cfg = Path(tmp) / "bars.csv", Path(tmp) / "bench.yaml"
        write_bench_csv(df, csv)
        bench_config_yaml(cfg)
        cmd = [sys.executable, "-m", "research", "backtest", "--data", str(csv), "--config", str(cfg),
               "--out", str(Path(tmp) / "run")]
        times = {}
        for label, extra in (("all report files", []), ("--no-plot", ["--no-plot"])):
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                subprocess.run(cmd + extra, cwd=ROOT, check=True, capture_output=True)
                best = min(best, time.perf_counter() - t0)
            times[label] = best
        trades = json.loads((Path(tmp) / "run" / "stats.json").read_text())["trade_count"]
    print(f"\nwhole `python -m research backtest` process, {len(df):,}-bar CSV (read, validate, backtest, write), "
          f"best of {repeat}; {trades} trades")
    recorded = json.loads(FREQTRADE.read_text()) if FREQTRADE.is_file() else None
    for label, t in times.items():
        ratio = (f"{recorded['seconds'] / t:8.1f}x faster than freqtrade {recorded['version']}"
                 if recorded else "(no freqtrade figure recorded)")
        print(f"  {label:<18} {t:8.2f}s   {ratio}")
    if recorded:
        print(f"  freqtrade {recorded['version']} whole process on the same bars: {recorded['seconds']:.1f}s, "
              f"{recorded['trades']} trades, measured {recorded['date']} ({recorded['notes']})   target ≥ 10x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.bench backtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=1_000_000, help="one-minute bars (default 1,000,000)")
    parser.add_argument("--bt-bars", type=int, default=100_000, help="slice for backtesting.py (default 100,000)")
    parser.add_argument("--repeat", type=int, default=3, help="in-process runs of each engine (best kept, default 3)")
    parser.add_argument("--cli-repeat", type=int, default=2, help="runs of the whole command line (best kept)")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    df = frame(args.bars)
    small = frame(5_000)
    for name in ENGINES:
        timed(name, small)  # imports, JIT
    ours, ours_trades, ours_first = timed("cryptobot", df, args.repeat)
    vbt_t, vbt_trades, vbt_first = timed("vectorbt", df, args.repeat)
    bt_slice, bt_trades, bt_first = timed("backtesting.py", df.iloc[: args.bt_bars], args.repeat)
    bt_full, bt_full_first = (t * args.bars / args.bt_bars for t in (bt_slice, bt_first))
    print(f"\nin-process, {args.bars:,} bars (imports and compilation excluded), best of {args.repeat} runs "
          "(first run in brackets)")
    print(f"  {'engine':<16} {'time':>10} {'first':>9} {'trades':>8} {'cryptobot faster by':>20}")
    print(f"  {'cryptobot':<16} {ours:>9.2f}s {ours_first:>8.2f}s {ours_trades:>8}")
    print(f"  {'vectorbt':<16} {vbt_t:>9.2f}s {vbt_first:>8.2f}s {vbt_trades:>8} {vbt_t / ours:>19.1f}x   "
          f"(first runs: {vbt_first / ours_first:.1f}x)   target ≥ 5x")
    print(f"  {'backtesting.py':<16} {bt_full:>9.2f}s {bt_full_first:>8.2f}s {bt_trades:>8} {bt_full / ours:>19.1f}x   "
          f"(first runs: {bt_full_first / ours_first:.1f}x; measured {bt_slice:.2f}s on {args.bt_bars:,} bars, "
          "scaled linearly)   target ≥ 50x")
    print(f"\nwhole process (fresh interpreter: imports, JIT with a warm cache, data generation), {args.bt_bars:,} bars")
    times = {name: whole_process(name, args.bt_bars) for name in ENGINES}
    for name, t in times.items():
        print(f"  {name:<16} {t:>9.2f}s {times[name] / times['cryptobot']:>8.2f}x of cryptobot")
    cli_section(df, args.cli_repeat)
    return 0
