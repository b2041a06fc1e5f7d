"""`python -m research COMMAND …`: the research command line.

Each command lives in its own module under `research/cli/` with a `main(argv) -> int`; this file only
dispatches, so `--help` stays fast (no vectorbt/optuna import until a command runs), and reports a user's
mistake the one way every command does (`cryptobot.cli_errors`: the message, exit 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from cryptobot.cli_errors import run_command

COMMANDS: dict[str, tuple[str, str]] = {
    "backtest": ("research.cli.backtest", "run a backtest and write stats.json, trades.csv, equity …"),
    "sweep": ("research.cli.sweep", "evaluate a parameter grid with overfitting statistics"),
    "analyze": ("research.cli.analyze", "lookahead and warm-up analysis of features and signals"),
    "train": ("research.cli.train", "train the LightGBM/XGBoost/RandomForest ensemble into a bundle"),
    "tune": ("research.cli.tune", "tune the ensemble with Optuna (local file or shared PostgreSQL)"),
    "walkforward": ("research.cli.walkforward", "walk-forward retraining with out-of-sample backtests"),
    "promote": ("research.cli.promote", "make a bundle the production model (previous one archived)"),
    "report": ("research.cli.report", "HTML report (papermill): backtest, sweep, tuning, walkforward, live, tour"),
}


def _available(name: str) -> bool:
    return importlib.util.find_spec(COMMANDS[name][0]) is not None


def _usage() -> str:
    lines = ["usage: python -m research COMMAND [options]   (COMMAND --help for its options)", "", "commands:"]
    lines += [
        f"  {name:<12} {text}" + ("" if _available(name) else "   [not in this version yet]")
        for name, (_, text) in COMMANDS.items()
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if not _available(name):
        print(f"'{name}' is not in this version of cryptobot yet\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return run_command(module.main, rest)


if __name__ == "__main__":
    raise SystemExit(main())
