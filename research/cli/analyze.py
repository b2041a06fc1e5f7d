"""`python -m research analyze lookahead|warmup --data PATH`: prove the features and signals are causal."""

from __future__ import annotations

import argparse

from cryptobot.data import timestamps_ms
from cryptobot.data.validate import infer_timeframe
from research.analysis import default_cuts, features_and_signals, lookahead, warmup
from research.cli.common import add_data_arguments, load_inputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m research analyze",
        description="Lookahead and warm-up analysis of the 15 features, every strategy and the combiner.",
    )
    sub = parser.add_subparsers(dest="what", required=True)
    for name, text in (
        ("lookahead", "recompute on data cut at many points; exit 1 if any value at or before a cut changes"),
        ("warmup", "bars from an arbitrary start until each feature agrees with a run from the series start"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        add_data_arguments(p)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "lookahead":
            p.add_argument("--cuts", type=int, default=20, help="number of cut points (default 20)")
        else:
            p.add_argument("--starts", type=int, default=5, help="number of start offsets (default 5)")
            p.add_argument("--rtol", type=float, default=1e-9, help="agreement tolerance (default 1e-9)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg, data = load_inputs(args)
    if args.what == "lookahead":
        cuts = default_cuts(len(data), args.cuts, start=min(60, len(data) // 4))
        subject = features_and_signals(cfg, infer_timeframe(timestamps_ms(data)))  # the data's own timeframe
        report = lookahead(data, subject, cuts, progress=not args.quiet)
        print(report)
        return 0 if report.ok else 1
    span = len(data) // 2
    starts = [int(s) for s in sorted({1 + (k * span) // max(args.starts, 1) for k in range(args.starts)})]
    wreport = warmup(data, cfg, starts, rtol=args.rtol, progress=not args.quiet)
    print(wreport)
    return 0 if wreport.ok else 1
