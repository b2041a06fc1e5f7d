"""`python -m research sweep --data … --grid FILE_OR_EXPR --out DIR`: a parameter grid with overfitting statistics."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptobot import atomic
from research.cli.common import add_data_arguments, load_inputs
from research.manifest import build_manifest, data_description, write_json
from research.sweep import GridError, SweepResult, parse_grid, run_sweep, walk_forward_sweep
from research.walkforward import window_bars


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m research sweep",
        description=(
            "Backtest every combination of a parameter grid (any dotted config keys) with the shared kernels, "
            "in chunks with bounded memory. Writes results.parquet (one row per combination), top.csv, "
            "summary.json (best combination, deflated Sharpe ratio, probability of backtest overfitting), "
            "heatmap.html for 2-D grids and manifest.json."
        ),
        epilog=(
            "Grid syntax: KEY=START:STOP:STEP (STOP included) | KEY=[v1,v2,…] | KEY=value, comma-separated, e.g. "
            "'strategies.ema_cross.fast=5:50:5,strategies.ema_cross.slow=[50,100,200]'; or a YAML/JSON file "
            "mapping keys to lists or {start, stop, step}."
        ),
    )
    add_data_arguments(parser)
    parser.add_argument("--grid", required=True, help="grid file or inline expression (see below)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--chunk-size", type=int, default=256, help="combinations per chunk (default 256)")
    parser.add_argument("--blocks", type=int, default=10, help="time blocks for CSCV/PBO, even (default 10)")
    parser.add_argument("--top", type=int, default=20, help="rows of the top table (default 20)")
    parser.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786) to run chunks on a cluster")
    parser.add_argument("--walk-forward", metavar="TRAIN:TEST",
                        help="choose parameters on each train window, report only the next (test) windows; "
                             "sizes in bars (5000:1000) or durations (90d:30d)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def write_heatmap(result: SweepResult, path: Path) -> None:
    import plotly.graph_objects as go

    keys = list(result.summary["grid"])
    pivot = result.results.pivot_table(index=keys[0], columns=keys[1], values="sharpe", aggfunc="mean")
    fig = go.Figure(go.Heatmap(z=pivot.to_numpy(), x=[str(c) for c in pivot.columns], y=[str(i) for i in pivot.index],
                               colorbar={"title": "Sharpe"}))
    fig.update_layout(title=f"Sharpe by {keys[0]} × {keys[1]}", xaxis_title=keys[1], yaxis_title=keys[0])
    atomic.atomic_write(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    grid = parse_grid(args.grid)
    cfg, data = load_inputs(args)
    out = Path(args.out)
    if args.walk_forward:
        train_text, sep, test_text = args.walk_forward.partition(":")
        if not sep:
            raise GridError("--walk-forward takes TRAIN:TEST, e.g. 90d:30d or 5000:1000")
        windows = walk_forward_sweep(data, cfg, grid, window_bars(train_text, data), window_bars(test_text, data),
                                     out, chunk_size=args.chunk_size, blocks=args.blocks,
                                     progress=not args.quiet, scheduler=args.scheduler)
    else:
        result = run_sweep(data, cfg, grid, out, chunk_size=args.chunk_size, blocks=args.blocks, top=args.top,
                           scheduler=args.scheduler, progress=not args.quiet)
    manifest = build_manifest(
        "sweep", cfg, parameters={"grid": grid, "data": args.data, "start": args.start, "end": args.end,
                                  "chunk_size": args.chunk_size, "blocks": args.blocks, "overrides": args.set,
                                  "walk_forward": args.walk_forward},
        data=[data_description(args.data, data)])
    if args.walk_forward:
        write_json(out / "manifest.json", manifest)
        atomic.write_csv(out / "walkforward.csv", windows, index=False)
        oos = {"windows": len(windows), "mean_oos_sharpe": float(windows["oos_sharpe"].mean()),
               "compounded_oos_return": float((1 + windows["oos_total_return"].to_numpy(dtype=float)).prod() - 1),
               "oos_trades": int(windows["oos_trade_count"].sum())}
        write_json(out / "walkforward.json", oos)
        print(windows.to_string(index=False))
        print(f"\nout of sample only: {oos}")
        return 0
    atomic.write_csv(out / "top.csv", result.top, index=False)
    write_json(out / "summary.json", result.summary)
    if len(grid) == 2:
        write_heatmap(result, out / "heatmap.html")
    write_json(out / "manifest.json", manifest)
    s = result.summary
    print(result.top.to_string(index=False))
    print(f"\n{s['combinations']} combinations ({s['evaluator']} evaluator); deflated Sharpe ratio of the best: "
          f"{s['deflated_sharpe']['probability']:.3f}; probability of backtest overfitting: {s['pbo']['probability']:.3f}")
    print(f"results: {out.resolve()} (results.parquet, top.csv, summary.json, manifest.json"
          f"{', heatmap.html' if len(grid) == 2 else ''})")
    return 0
