"""Arguments and loading shared by the research commands: one place for --data, --config, --set, --start, --end."""

from __future__ import annotations

import argparse

import pandas as pd

from cryptobot.config import Config, load_config, parse_set_options
from cryptobot.data import DataValidationError, load_frame


def add_data_arguments(parser: argparse.ArgumentParser, dates: bool = True) -> None:
    parser.add_argument("--data", required=True, help="CSV/CSV.gz/Parquet file or store key (bitbank/BTC-JPY/15m)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE", help="config YAML file(s), in order")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set risk.max_drawdown=0.3 (repeatable)")
    if dates:
        parser.add_argument("--start", help="first bar (UTC date/time)")
        parser.add_argument("--end", help="stop before this time (UTC)")


def load_inputs(args: argparse.Namespace) -> tuple[Config, pd.DataFrame]:
    """Effective config and validated data; raises ConfigError, DataValidationError or FileNotFoundError."""
    cfg = load_config(args.config, overrides=parse_set_options(args.set))
    data = load_frame(args.data, getattr(args, "start", None), getattr(args, "end", None),
                      store_root=cfg.data.store_dir)
    if data.empty:
        raise DataValidationError(f"{args.data}: no bars in the selected range (--start {getattr(args, 'start', None)}"
                                  f" --end {getattr(args, 'end', None)})")
    return cfg, data
