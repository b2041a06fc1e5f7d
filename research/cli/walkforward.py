"""`python -m research walkforward --data … --train 90d --test 30d --out DIR`: out-of-sample ML-gate evaluation."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptobot import atomic
from research.cli.common import add_data_arguments, load_inputs
from research.manifest import build_manifest, data_description, write_json
from research.walkforward import run_walkforward, window_bars


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m research walkforward",
        description=("Retrain the ensemble (optionally re-tune it) on each train window and backtest the next window "
                     "with and without the ML gate. Only out-of-sample windows are reported: DIR/windows.csv, "
                     "DIR/summary.json, DIR/manifest.json."),
    )
    add_data_arguments(parser, dates=False)
    parser.add_argument("--train", required=True, help="train window: bars (5000) or a duration (90d, 12w)")
    parser.add_argument("--test", required=True, help="test window: bars or a duration")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--expanding", action="store_true", help="train windows grow from the start (default rolling)")
    parser.add_argument("--tune-trials", type=int, default=0, help="re-tune with Optuna per window (trials; default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    cfg, data = load_inputs(args)
    frame, summary = run_walkforward(data, cfg, window_bars(args.train, data), window_bars(args.test, data),
                                     args.expanding, args.tune_trials, progress=not args.quiet)
    out = Path(args.out)
    atomic.write_csv(out / "windows.csv", frame, index=False)
    write_json(out / "summary.json", summary)
    write_json(out / "manifest.json", build_manifest("walkforward", cfg, parameters=vars(args),
                                                     data=[data_description(args.data, data)]))
    for kind, s in summary["out_of_sample"].items():
        print(f"{kind:>8}: mean Sharpe {s['mean_sharpe']:.3f}, compounded return {s['compounded_return']:.2%}, "
              f"{s['trades']} trades, worst drawdown {s['worst_drawdown']:.2%}")
    print(f"{summary['windows']} out-of-sample windows; results in {out.resolve()}")
    return 0
