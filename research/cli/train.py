"""`python -m research train --data … --out DIR`: fit the ensemble, score it out of fold, write a bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from research.cli.common import add_data_arguments, load_inputs
from research.manifest import build_manifest, data_description, write_json
from research.training import train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m research train",
        description=(
            "Train LightGBM + XGBoost + RandomForest on cost-aware labels (config ml.label: meta, fixed_horizon, "
            "triple_barrier), score them with purged time-series CV, refit on all data and write DIR/bundle/ "
            "(verified model bundle), DIR/report.json, DIR/report.md and DIR/manifest.json."
        ),
    )
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg, data = load_inputs(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"training on {len(data):,} bars of {args.data} …", file=sys.stderr)
    report = train(data, cfg, out)
    write_json(out / "manifest.json", build_manifest(
        "train", cfg, parameters={"data": args.data, "start": args.start, "end": args.end, "overrides": args.set},
        data=[data_description(args.data, data)], seeds={"ml.seed": cfg.ml.seed}))
    ens = report["cv_scores"]["ensemble"]
    print(f"out-of-fold ensemble: log loss {ens['log_loss']:.4f}, AUC {ens['auc']:.4f}, "
          f"{ens['samples']} samples; bundle: {report['bundle']}")
    return 0
