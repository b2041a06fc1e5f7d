"""OHLCV data: the frame contract, validation, files and the Parquet store, resampling, ccxt download.

Notebook API: `read_csv(path)`, `load_frame(path_or_store_key, start, end)`, `load(exchange, symbol,
timeframe, start, end)`, `validate_frame(df)`, `resample(df, "4h")`. Command line: `python -m cryptobot.data`.
"""

from cryptobot.data.frames import (
    OHLCV_COLUMNS,
    DataValidationError,
    make_frame,
    ohlcv_arrays,
    timeframe_to_ms,
    timestamps_ms,
)
from cryptobot.data.resample import resample
from cryptobot.data.store import (
    Store,
    StoreKey,
    load,
    load_frame,
    load_frame_with_report,
    read_any,
    read_csv,
    read_parquet,
    write_csv,
    write_parquet,
)
from cryptobot.data.validate import ValidationReport, validate_frame

__all__ = [
    "OHLCV_COLUMNS",
    "DataValidationError",
    "Store",
    "StoreKey",
    "ValidationReport",
    "load",
    "load_frame",
    "load_frame_with_report",
    "make_frame",
    "ohlcv_arrays",
    "read_any",
    "read_csv",
    "read_parquet",
    "resample",
    "timeframe_to_ms",
    "timestamps_ms",
    "validate_frame",
    "write_csv",
    "write_parquet",
]
