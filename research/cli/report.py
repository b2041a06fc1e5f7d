"""`python -m research report KIND --out DIR …`: run the work (or reuse --run DIR), then an HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from research.report import NOTEBOOKS, TEMPLATES, ReportError, execute_report, parse_param

WORK = {
    "backtest": "research.cli.backtest",
    "sweep": "research.cli.sweep",
    "walkforward": "research.cli.walkforward",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m research report",
        description=(
            "Run a backtest, sweep, tuning study or walk-forward (or read the directory of a previous run with "
            "--run), execute the matching papermill template from notebooks/ into DIR/report.ipynb and write "
            "DIR/report.html: run manifest first, interactive plotly figures, opens offline, code hidden unless "
            "--show-code. 'live' reconciles a paper/live session (--state-dir) with a backtest of the same bars; "
            "'tour' renders the research tour."
        ),
        epilog=(
            "Any other option goes to the work command of the kind, into DIR: backtest → `research backtest` "
            "(--data, --config, --set, --start, --end); sweep → `research sweep` (also --grid, --walk-forward, …); "
            "walkforward → `research walkforward` (--train, --test, …); tuning → an Optuna study of the ensemble "
            "(--data, --config, --set, --start, --end, --trials N [default 20], --study NAME, --storage URL "
            "[default DIR/optuna.sqlite3], --seed); live → --config, --set (those the session was started with). "
            "Template parameters: --param NAME=VALUE (see docs/reports.md)."
        ),
    )
    parser.add_argument("kind", choices=sorted(TEMPLATES), help="which report")
    parser.add_argument("--out", required=True, help="output directory: the run's files, report.ipynb, report.html")
    parser.add_argument("--run", metavar="DIR", help="report on this earlier run directory instead of running the work")
    parser.add_argument("--state-dir", metavar="DIR", help="live: the paper/live session's state directory")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="template parameter (YAML value), repeatable, e.g. --param top=10")
    parser.add_argument("--show-code", action="store_true", help="keep the code cells in the HTML")
    parser.add_argument("--template", type=Path, help="use this notebook instead of the kind's template")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _tuning_parser() -> argparse.ArgumentParser:
    from research.cli.common import add_data_arguments

    parser = argparse.ArgumentParser(prog="python -m research report tuning")
    add_data_arguments(parser)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--study", default="report")
    parser.add_argument("--storage")
    parser.add_argument("--seed", type=int)
    return parser


def run_tuning(rest: list[str], out: Path) -> int:
    """Tune into an Optuna study kept in DIR, and record what the report needs beside the study.

    The ungated baseline is a backtest over the same out-of-fold period the trials' gated Sharpe covers.
    """
    import numpy as np
    import optuna

    from research.backtest import run as backtest
    from research.cli.common import load_inputs
    from research.dataset import build_dataset
    from research.manifest import build_manifest, data_description, write_json
    from research.training import splitter
    from research.tuning import open_storage, tune

    args = _tuning_parser().parse_args(rest)
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{(out / 'optuna.sqlite3').resolve()}"
    cfg, data = load_inputs(args)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"tuning: {args.trials} trial(s) on {len(data):,} bars of {args.data} …", file=sys.stderr)
    study = tune(data, cfg, args.study, open_storage(storage, args.study, out), args.trials, seed=args.seed)
    dataset = build_dataset(data, cfg)
    test_positions = [dataset.positions[test] for _, test in splitter(cfg, dataset).split(dataset.X)]
    if not test_positions:
        print("tuning: the data is too short for one cross-validation test fold", file=sys.stderr)
        return 2
    start = int(min(int(np.min(p)) for p in test_positions))
    plain = backtest(data.iloc[start:], cfg.with_overrides({"ml.enabled": False})).stats  # ungated
    seed = cfg.ml.seed if args.seed is None else args.seed
    write_json(out / "tuning.json", {
        "study": args.study, "storage": storage, "trials_run": len(study.trials), "oof_first_bar": start,
        "oof_first_time": data.index[start].isoformat(),
        "ungated": {"sharpe": plain["sharpe"], "trades": plain["trade_count"], "total_return": plain["total_return"]},
    })
    write_json(out / "manifest.json", build_manifest(
        "tuning", cfg, parameters={"data": args.data, "start": args.start, "end": args.end, "study": args.study,
                                   "trials": args.trials, "config_files": args.config, "overrides": args.set},
        data=[data_description(args.data, data)], seeds={"sampler": seed, "models": cfg.ml.seed}))
    return 0


def _config_parser(kind: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m research report {kind}")
    parser.add_argument("--config", action="append", default=[], metavar="FILE")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return parser


def write_live_manifest(state_dir: Path, rest: list[str], out: Path, params: dict[str, Any]) -> int:
    """The session's config files and overrides go to the template; the manifest records the session's bars."""
    from cryptobot.live.state import DB_NAME
    from research.manifest import build_manifest, data_description, write_json
    from research.reconcile import check_config, read_session, session_config, session_ohlcv

    args = _config_parser("live").parse_args(rest)
    params.setdefault("config_files", [str(Path(c).resolve()) for c in args.config])
    params.setdefault("overrides", list(args.set))
    cfg = session_config(params["config_files"], params["overrides"])
    meta, bars, _ = read_session(state_dir)
    check_config(state_dir, meta, cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "manifest.json", build_manifest(
        "live", cfg, parameters={"state_dir": str(state_dir), "mode": meta.get("mode"), "config_files": args.config,
                                 "overrides": args.set},
        data=[data_description(str(state_dir / DB_NAME), session_ohlcv(bars))]))
    return 0


def write_tour_manifest(template: Path, rest: list[str], out: Path, params: dict[str, Any]) -> int:
    """The tour's data path made absolute (relative to here, else to the checkout) and its manifest."""
    from cryptobot.config import load_config
    from cryptobot.data import load_frame
    from research.manifest import build_manifest, data_description, write_json
    from research.report import ROOT, template_parameters

    if rest:
        print(f"report tour: unknown option(s) {' '.join(rest)}; the tour takes --param NAME=VALUE", file=sys.stderr)
        return 2
    merged = {**template_parameters(template), **params}
    cfg = load_config()
    described = []
    if "data" in merged:
        data = Path(str(merged["data"]))
        if not data.is_absolute() and not data.exists() and (ROOT / data).exists():
            data = ROOT / data
        merged["data"] = params["data"] = str(data.resolve())
        frame = load_frame(params["data"], None, merged.get("end"), store_root=cfg.data.store_dir)
        described.append(data_description(params["data"], frame))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "manifest.json", build_manifest(
        "tour", cfg, parameters={k: v for k, v in merged.items() if k != "run_dir"}, data=described,
        seeds={"ml.seed": cfg.ml.seed}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    out = Path(args.out).resolve()
    params: dict[str, Any] = dict(parse_param(p) for p in args.param)
    if args.kind in ("live", "tour") and args.run:
        print(f"report {args.kind} takes no --run (it has no run directory to read)", file=sys.stderr)
        return 2
    if args.kind != "live" and args.state_dir:
        print(f"report {args.kind}: --state-dir is for `report live`", file=sys.stderr)
        return 2
    if args.kind == "live":
        if not args.state_dir:
            print("report live: give --state-dir DIR (the session's state directory)", file=sys.stderr)
            return 2
        state_dir = Path(args.state_dir).resolve()
        params.setdefault("state_dir", str(state_dir))
        params.setdefault("run_dir", str(out))
        code = write_live_manifest(state_dir, rest, out, params)
        if code:
            return code
    elif args.kind == "tour":
        params.setdefault("run_dir", str(out))
        code = write_tour_manifest(args.template or NOTEBOOKS / TEMPLATES["tour"], rest, out, params)
        if code:
            return code
    else:
        if args.run:
            if rest:
                print(f"report {args.kind} --run reads an earlier run; these options would be ignored: "
                      f"{' '.join(rest)}", file=sys.stderr)
                return 2
            run_dir = Path(args.run).resolve()
        else:
            run_dir = out
            if args.kind == "tuning":
                code = run_tuning(rest, out)
            else:
                import importlib

                work = [*rest, "--out", str(out)]
                if args.quiet and args.kind in ("sweep", "walkforward"):
                    work.append("--quiet")
                code = int(importlib.import_module(WORK[args.kind]).main(work) or 0)
            if code:
                return code
        params.setdefault("run_dir", str(run_dir))
    template = args.template or NOTEBOOKS / TEMPLATES[args.kind]
    print(f"executing {template.name} …", file=sys.stderr)
    try:
        path = execute_report(template, out, params, show_code=args.show_code, progress=not args.quiet)
    except ReportError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0
