"""`python -m research backtest --data PATH_OR_STORE_KEY --out DIR`: one backtest, its report files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from cryptobot import atomic
from cryptobot.data import validate_frame
from cryptobot.warmup import compile_ahead
from research.backtest import BacktestResult, run
from research.cli.common import add_data_arguments, load_inputs
from research.manifest import build_manifest, data_description, input_gaps, write_json
from research.plotting import equity_figure, write_figure_html
from research.stats import quote_currency


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m research backtest",
        description=(
            "Backtest the configured strategies with the shared execution and risk kernels; writes stats.json, "
            "trades.csv, skipped.csv, equity.parquet (equity and signed position per bar), manifest.json and an "
            "interactive equity.html into --out."
        ),
    )
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory (created; files are replaced)")
    parser.add_argument("--equity-csv", action="store_true",
                        help="also write equity.csv (the per-bar equity as text: large and slow for long histories)")
    parser.add_argument("--no-plot", action="store_true", help="do not write equity.html")
    return parser


def write_equity_html(result: BacktestResult, close: pd.Series, path: Path) -> None:
    s = result.stats
    title = (f"total return {s['total_return']:.2%} · Sharpe {s['sharpe']:.2f} · max drawdown "
             f"{s['max_drawdown']:.2%} · {s['trade_count']} trades · fingerprint {result.fingerprint[:12]}")
    write_figure_html(equity_figure(result.equity, close, result.trades, title, currency=s["currency"]), path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    compile_ahead()  # first run after install: the execution kernel compiles next door meanwhile
    cfg, data = load_inputs(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"backtesting {len(data):,} bars of {args.data} ({data.index[0]} .. {data.index[-1]}) …", file=sys.stderr)
    result = run(data, cfg, currency=quote_currency(args.data, cfg))
    write_json(out / "stats.json", result.stats)
    for name, frame in (("trades.csv", result.trades), ("skipped.csv", result.skipped)):
        atomic.write_csv(out / name, frame, index=False)
    per_bar = pd.DataFrame({"equity": result.equity, "position": result.position})
    written = ["stats.json", "trades.csv", "skipped.csv", "equity.parquet", "manifest.json"]
    atomic.write_parquet(out / "equity.parquet", per_bar)
    if args.equity_csv:
        atomic.write_csv(out / "equity.csv", per_bar)
        written.append("equity.csv")
    gaps = input_gaps(validate_frame(data, source=args.data))
    manifest = build_manifest(
        "backtest", cfg,
        parameters={"data": args.data, "start": args.start, "end": args.end, "config_files": args.config,
                    "overrides": args.set},
        data=[data_description(args.data, data)],
        extra={"fingerprint": result.fingerprint, "trade_count": result.stats["trade_count"],
               "currency": result.stats["currency"], "input_validation": gaps,
               "strategies": result.stats["strategies"], "ml_gate": result.stats["ml_gate"]},
    )
    write_json(out / "manifest.json", manifest)
    if not args.no_plot:
        write_equity_html(result, data["close"], out / "equity.html")
        written.append("equity.html")
    s = result.stats
    gate = s["ml_gate"]
    print(f"strategies: {', '.join(s['strategies']) or 'none enabled'}; ML gate: "
          + (f"bundle {gate['bundle_id']} at p >= {gate['threshold']:.3g}" if gate["bundle_id"] else "off"))
    print(f"trades {s['trade_count']}, total return {s['total_return']:.2%}, Sharpe {s['sharpe']:.2f}, "
          f"max drawdown {s['max_drawdown']:.2%}, fees {s['fees_paid']:.0f} {s['currency']}, "
          f"fingerprint {result.fingerprint[:16]}")
    for line in gaps["warnings"] or ["no gaps, no warnings"]:  # no prices were seen inside a gap
        print(f"input data: {line}")
    print(f"report: {out.resolve()} ({', '.join(written)})")
    return 0
