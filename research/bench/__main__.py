"""`python -m research.bench WHAT`: benchmarks printed as ratios against other engines in the same run."""

from __future__ import annotations

import importlib
import importlib.util
import sys

BENCHES: dict[str, tuple[str, str]] = {
    "features": ("research.bench.features", "15 features batch and per-bar step vs TA-Lib and pandas"),
    "backtest": ("research.bench.backtest", "end-to-end backtest vs backtesting.py and vectorbt"),
    "sweep": ("research.bench.sweep", "sweep combinations/s and peak RSS vs vectorbt broadcasting"),
    "ml": ("research.bench.ml", "ensemble inference and training time, Optuna trial overhead"),
    "live": ("research.bench.live", "per-bar decision + SQLite time, start to first decision, replay bars/s"),
    "start": ("research.bench.start", "cold (empty numba cache) and warm start of the bot and the quick start"),
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    usable = {name for name, (module, _) in BENCHES.items() if importlib.util.find_spec(module) is not None}
    if not args or args[0] in {"-h", "--help"} or args[0] not in usable:
        print("usage: python -m research.bench WHAT [options]\n\nwhat:")
        for name, (_, text) in BENCHES.items():
            print(f"  {name:<10} {text}" + ("" if name in usable else "   [not in this version yet]"))
        return 0 if not args or args[0] in {"-h", "--help"} else 2
    module = importlib.import_module(BENCHES[args[0]][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
