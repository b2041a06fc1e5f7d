"""`python -m research.bench backtest`: end-to-end backtest vs backtesting.py and vectorbt, same run, same rules.

Rules for all three: the EMA-crossover example (fast 10, slow 30), stop and reverse on every cross, a fixed
size of 1 unit, 5 % stop-loss, 0.1 % fee, on synthetic one-minute bars. In-process time excludes imports
and compilation (each engine is warmed on a small slice); whole-process time runs each engine in a fresh
Python process, imports and JIT (warm numba cache) included. backtesting.py is run on a slice and scaled
linearly to the full size (its cost is linear in bars), which the output states.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from research.bench.features import machine, synthetic

ROOT = Path(__file__).resolve().parents[2]
SEED = ("atr_based", "mochipoy_alert", "multi_timeframe", "donchian_channel", "adx_trend_strength")


def frame(n: int) -> pd.DataFrame:
    """Synthetic one-minute bars around a price of 100."""
    df = synthetic(n)
    scale = 100.0 / df["close"].iloc[0]
    for col in ("open", "high", "low", "close"):
        df[col] = df[col] * scale
    return df


def config():
    from cryptobot.config import Config

    return Config.model_validate({
        "strategies": {**{n: {"enabled": False} for n in SEED},
                       "ema_cross": {"enabled": True, "fast": 10, "slow": 30, "sl_pct": 0.05, "tp_pct": 0.0}},
        "costs": {"taker_fee": 0.001, "maker_fee": 0.001, "slippage_bps": 0.0, "margin_interest_daily": 0.0},
        "execution": {"fixed_amount": 1.0, "reverse_on_opposite": True, "initial_capital": 1e9},
        "exchange": {"amount_step": 1e-8, "min_amount": 1e-8},
        "risk": {"enabled": False},
    })


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


def timed(name: str, df: pd.DataFrame) -> tuple[float, int]:
    t0 = time.perf_counter()
    trades = ENGINES[name](df)
    return time.perf_counter() - t0, trades


def whole_process(name: str, bars: int) -> float:
    code = (f"from research.bench.backtest import ENGINES, frame; import sys; "
            f"sys.stdout.write(str(ENGINES[{name!r}](frame({bars}))))")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.bench backtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=1_000_000, help="one-minute bars (default 1,000,000)")
    parser.add_argument("--bt-bars", type=int, default=100_000, help="slice for backtesting.py (default 100,000)")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    df = frame(args.bars)
    small = frame(5_000)
    for name in ENGINES:
        timed(name, small)  # imports, JIT
    ours, ours_trades = timed("cryptobot", df)
    vbt_t, vbt_trades = timed("vectorbt", df)
    bt_slice, bt_trades = timed("backtesting.py", df.iloc[: args.bt_bars])
    bt_full = bt_slice * args.bars / args.bt_bars
    print(f"\nin-process, {args.bars:,} bars (imports and compilation excluded)")
    print(f"  {'engine':<16} {'time':>10} {'trades':>8} {'cryptobot faster by':>20}")
    print(f"  {'cryptobot':<16} {ours:>9.2f}s {ours_trades:>8}")
    print(f"  {'vectorbt':<16} {vbt_t:>9.2f}s {vbt_trades:>8} {vbt_t / ours:>19.1f}x")
    print(f"  {'backtesting.py':<16} {bt_full:>9.2f}s {bt_trades:>8} {bt_full / ours:>19.1f}x   "
          f"(measured {bt_slice:.2f}s on {args.bt_bars:,} bars, scaled linearly)   target ≥ 100x")
    print(f"\nwhole process (fresh interpreter: imports, JIT with a warm cache, data generation), {args.bt_bars:,} bars")
    times = {name: whole_process(name, args.bt_bars) for name in ENGINES}
    for name, t in times.items():
        print(f"  {name:<16} {t:>9.2f}s {times[name] / times['cryptobot']:>8.2f}x of cryptobot")
    return 0
