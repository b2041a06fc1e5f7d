"""The OHLCV frame contract and timeframe arithmetic.

A frame is a DataFrame indexed by bar OPEN time (`datetime64[ms, UTC]`, named `timestamp`) with float64
columns `open high low close volume` (design §3). Kernels see the same times as int64 milliseconds.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cryptobot.kernels.inputs import frozen
from cryptobot.timeunits import UNIT_MS

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INDEX_NAME = "timestamp"
_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([mhdw])$")


class DataValidationError(ValueError):
    """Data that must not be used: the message names the source, the rows and what to do."""


def timeframe_to_ms(timeframe: str) -> int:
    """'15m' → 900000. Raises ValueError naming the accepted forms."""
    match = _TIMEFRAME.match(timeframe)
    if not match:
        raise ValueError(f"timeframe {timeframe!r} is not understood; use e.g. 1m, 15m, 1h, 4h, 1d, 1w")
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def timestamps_ms(frame: pd.DataFrame | pd.DatetimeIndex) -> np.ndarray:
    """Bar open times as int64 UTC milliseconds, whatever the index's stored unit."""
    index = frame.index if isinstance(frame, pd.DataFrame) else frame
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"expected a DatetimeIndex of bar open times, got {type(index).__name__}")
    return np.asarray(index.as_unit("ms").asi8, dtype=np.int64)


def ohlcv_arrays(frame: pd.DataFrame, columns: tuple[str, ...] = OHLCV_COLUMNS) -> tuple[np.ndarray, ...]:
    """The frame's columns as contiguous read-only float64 arrays, as the kernels take them (no copy when
    already so; read-only whatever the frame holds, so a kernel compiles one signature: `frozen`)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"OHLCV frame lacks column(s) {missing}")
    return tuple(frozen(frame[c].to_numpy(dtype=np.float64)) for c in columns)


def make_frame(ts_ms: np.ndarray, values: np.ndarray | dict[str, np.ndarray]) -> pd.DataFrame:
    """Build a contract frame from int64 ms times and an (n, 5) array or a column dict."""
    index = pd.DatetimeIndex(pd.to_datetime(np.asarray(ts_ms, dtype=np.int64), unit="ms", utc=True))
    index = index.as_unit("ms").rename(INDEX_NAME)
    if isinstance(values, dict):
        data = {c: np.asarray(values[c], dtype=np.float64) for c in OHLCV_COLUMNS}
    else:
        arr = np.asarray(values, dtype=np.float64)
        data = {c: arr[:, i] for i, c in enumerate(OHLCV_COLUMNS)}
    return pd.DataFrame(data, index=index)


def ms_to_iso(ms: int) -> str:
    """UTC ISO-8601 text of a millisecond timestamp, as the shipped CSVs write it."""
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | int | float | pd.Timestamp | None) -> pd.Timestamp | None:
    """A user-supplied time (ISO date/datetime, or epoch ms) as a UTC Timestamp."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, (int, float, np.integer)) and not isinstance(value, bool):
        return pd.Timestamp(int(value), unit="ms", tz="UTC")
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
