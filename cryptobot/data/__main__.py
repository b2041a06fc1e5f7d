"""`python -m cryptobot.data download|import|validate|resample|list` — the OHLCV store from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptobot.cli_errors import run_command
from cryptobot.data.download import RetryPolicy, download, make_exchange
from cryptobot.data.frames import ms_to_iso, parse_time
from cryptobot.data.resample import resample
from cryptobot.data.store import Store, StoreKey, read_any, write_csv, write_parquet
from cryptobot.data.validate import timeframe_from_name, validate_frame


def _store(args: argparse.Namespace) -> Store:
    if args.store:
        return Store(args.store)
    from cryptobot.config import load_config

    return Store(load_config().data.store_dir)


def _ms(text: str | None) -> int | None:
    stamp = parse_time(text)
    return None if stamp is None else int(stamp.value // 1_000_000)


def cmd_download(args: argparse.Namespace) -> int:
    urls = dict(item.split("=", 1) for item in args.api_url) if args.api_url else None
    since = _ms(args.since)
    assert since is not None
    client = make_exchange(args.exchange, urls, timeout_ms=int(args.timeout * 1000))
    result = download(
        args.exchange,
        args.symbol,
        args.timeframe,
        since=since,
        until=_ms(args.until),
        store=_store(args),
        client=client,
        retry=RetryPolicy(attempts=args.retries, backoff_seconds=args.backoff),
        flush_every=args.flush_every,
        progress=not args.quiet,
        log=lambda msg: print(msg, file=sys.stderr),
    )
    span = (
        f"{ms_to_iso(result.first_ms)} .. {ms_to_iso(result.last_ms)}"
        if result.first_ms is not None and result.last_ms is not None
        else "nothing stored"
    )
    print(f"{result.key}: {result.new_rows} new bar(s); store holds {result.total_rows} bar(s), {span}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    frame = read_any(args.path)
    key = StoreKey(args.exchange.lower(), args.symbol.upper(), args.timeframe)
    stored = _store(args).write(key, frame)
    print(f"{key}: imported {len(frame)} row(s) from {args.path}; store holds {len(stored)} row(s)")
    return 0


def _read_source(source: str, store: Store) -> tuple[object, str, str | None]:
    path = Path(source)
    if path.is_file():
        return read_any(path), str(path), timeframe_from_name(path.name)
    key = StoreKey.parse(source)
    return store.read(key), str(key), key.timeframe


def cmd_validate(args: argparse.Namespace) -> int:
    frame, label, tf = _read_source(args.source, _store(args))
    report = validate_frame(frame, source=label, timeframe=args.timeframe or tf)  # type: ignore[arg-type]
    print(report)
    return 0 if report.ok else 1


def cmd_resample(args: argparse.Namespace) -> int:
    store = _store(args)
    frame, label, tf = _read_source(args.source, store)
    report = validate_frame(frame, source=label, timeframe=tf)  # type: ignore[arg-type]
    report.raise_for_errors()
    out = resample(frame, args.to, source_timeframe=report.timeframe)  # type: ignore[arg-type]
    if args.out:
        target = Path(args.out)
        (write_parquet if target.suffix == ".parquet" else write_csv)(out, target)
        where = str(target)
    else:
        if Path(args.source).is_file():
            raise ValueError("resampling a file into the store needs --out FILE, or use a store key as source")
        src_key = StoreKey.parse(args.source)
        dst_key = StoreKey(src_key.exchange, src_key.symbol, args.to)
        store.write(dst_key, out)
        where = str(dst_key)
    print(f"{label} -> {args.to}: {len(out)} bar(s) written to {where}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    keys = store.keys()
    if not keys:
        print(f"the store at {store.root} is empty")
        return 0
    print(f"{'exchange':<10} {'symbol':<12} {'tf':<5} {'first':<21} {'last':<21} {'rows':>8} {'gaps':>5}")
    for key in keys:
        frame = store.read(key)
        report = validate_frame(frame, source=str(key), timeframe=key.timeframe)
        first = ms_to_iso(report.first_ms) if report.first_ms is not None else "-"
        last = ms_to_iso(report.last_ms) if report.last_ms is not None else "-"
        print(
            f"{key.exchange:<10} {key.symbol:<12} {key.timeframe:<5} {first:<21} {last:<21} "
            f"{report.rows:>8} {len(report.gaps):>5}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cryptobot.data",
        description="OHLCV data: download through ccxt, import files, validate, resample, list the Parquet store.",
    )
    parser.add_argument("--store", help="store root (default: config data.store_dir, i.e. data/store)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="download closed bars through ccxt into the store (resumes)")
    p.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. bitbank, binance")
    p.add_argument("--symbol", required=True, help="unified symbol, e.g. BTC/JPY")
    p.add_argument("--timeframe", required=True, help="e.g. 15m, 1h, 4h")
    p.add_argument("--since", required=True, help="first bar, ISO date/datetime (UTC) or epoch ms")
    p.add_argument("--until", help="stop before this time (default: now; the open bar is never stored)")
    p.add_argument("--retries", type=int, default=5, help="attempts per request on network/429/5xx (default 5)")
    p.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds, doubled each time")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout per request in seconds")
    p.add_argument("--api-url", action="append", default=[], metavar="NAME=URL",
                   help="point a ccxt API (e.g. public=http://127.0.0.1:8000) at a mirror or a local server")
    p.add_argument("--flush-every", type=int, default=20, metavar="PAGES",
                   help="write the store atomically every N pages (default 20); an interruption loses at most these")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("import", help="import a CSV/CSV.gz/Parquet file into the store (merge, de-duplicate)")
    p.add_argument("path")
    p.add_argument("--exchange", required=True)
    p.add_argument("--symbol", required=True)
    p.add_argument("--timeframe", required=True)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("validate", help="report data problems; exit 0 when clean (gaps are warnings)")
    p.add_argument("source", help="a file path or a store key EXCHANGE/SYMBOL/TIMEFRAME, e.g. bitbank/BTC-JPY/15m")
    p.add_argument("--timeframe", help="expected timeframe (default: from the store key or inferred)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("resample", help="aggregate to a higher timeframe (UTC, left-closed, left-labelled)")
    p.add_argument("source", help="a file path or a store key")
    p.add_argument("--to", required=True, help="target timeframe, e.g. 1h, 4h")
    p.add_argument("--out", help="write to this file (.parquet, .csv or .csv.gz) instead of the store")
    p.set_defaults(func=cmd_resample)

    p = sub.add_parser("list", help="what the store holds")
    p.set_defaults(func=cmd_list)
    return parser


FAILURE_PREFIX = {"download": "download failed: ", "import": "import failed: ", "validate": "ERROR ",
                  "resample": "resample failed: "}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "download" and (args.retries < 1 or args.flush_every < 1):
        print("--retries and --flush-every must be at least 1", file=sys.stderr)
        return 2
    return run_command(args.func, args, code=1, prefix=FAILURE_PREFIX.get(args.command, ""))


if __name__ == "__main__":
    raise SystemExit(main())
