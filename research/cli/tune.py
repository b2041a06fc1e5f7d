"""`python -m research tune --data … --trials N --study NAME [--storage URL]`: Optuna study of the ensemble."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna

from research.cli.common import add_data_arguments, load_inputs
from research.training import train
from research.tuning import SPACE_DOC, open_storage, params_of, tune


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m research tune",
        description=(
            "Tune each model's hyper-parameters, the ensemble weights and the decision threshold with Optuna. "
            "Objective: out-of-fold net Sharpe of the strategies gated by the ensemble (costs included); "
            "log loss is recorded per trial. Run several processes with the same --study and --storage to share "
            "one study (e.g. a PostgreSQL URL reachable from every machine)."
        ),
        epilog="Search space: " + "; ".join(f"{k}: {v}" for k, v in SPACE_DOC.items()),
    )
    add_data_arguments(parser)
    parser.add_argument("--study", required=True, help="study name (resumed if it exists)")
    parser.add_argument("--trials", type=int, default=None, help="trials to run in this process")
    parser.add_argument("--timeout", type=float, default=None, help="stop starting trials after S seconds")
    parser.add_argument("--storage", help="SQLAlchemy URL (postgresql://user@host/db), journal:PATH, or default "
                                          "sqlite file runs/optuna/STUDY.sqlite3")
    parser.add_argument("--best-to", metavar="DIR", help="afterwards, train the final bundle from the best trial")
    parser.add_argument("--seed", type=int, help="sampler seed (default ml.seed; give each worker its own)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.trials is None and args.timeout is None:
        print("give --trials N and/or --timeout S", file=sys.stderr)
        return 2
    cfg, data = load_inputs(args)
    storage = open_storage(args.storage, args.study, Path("runs/optuna"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = tune(data, cfg, args.study, storage, args.trials, args.timeout, args.seed)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        print(f"study {args.study}: no completed trial yet", file=sys.stderr)
        return 1
    best = study.best_trial
    print(f"study {args.study}: {len(study.trials)} trial(s), {len(done)} complete; best #{best.number}: "
          f"gated Sharpe {best.value:.3f}, log loss {best.user_attrs.get('log_loss', float('nan')):.4f}")
    if args.best_to:
        params, weights, threshold = params_of(best.params)
        report = train(data, cfg, Path(args.best_to), params=params, weights=weights, threshold=threshold)
        print(f"best bundle: {report['bundle']}")
    return 0
