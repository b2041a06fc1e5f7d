"""Resampling to a higher timeframe: UTC, left-closed, left-labelled bins.

A higher bar is written when at least one lower bar falls in its bin (so a bin with an internal gap is
kept — the same rule the shipped 1h/4h files were built with), except the **last** bin, which is dropped
unless its final lower bar has been seen: it may still be forming.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptobot.data.frames import (
    DataValidationError,
    make_frame,
    ohlcv_arrays,
    timeframe_to_ms,
    timestamps_ms,
)
from cryptobot.data.validate import infer_timeframe
from cryptobot.timeunits import WEEK_OFFSET_MS


def resample(frame: pd.DataFrame, to: str, source_timeframe: str | None = None) -> pd.DataFrame:
    """Aggregate a sorted, validated frame to timeframe `to` (open first, high max, low min, close last, volume sum)."""
    ts = timestamps_ms(frame)
    src = source_timeframe or infer_timeframe(ts)
    if src is None:
        raise DataValidationError("cannot resample: fewer than two bars, so the source timeframe is unknown")
    src_ms, dst_ms = timeframe_to_ms(src), timeframe_to_ms(to)
    if dst_ms <= src_ms or dst_ms % src_ms:
        raise DataValidationError(f"cannot resample {src} to {to}: the target must be a whole multiple of the source")
    if ts.size and np.any(np.diff(ts) <= 0):
        raise DataValidationError("cannot resample: timestamps are not strictly increasing; validate the data first")
    offset = WEEK_OFFSET_MS if to.endswith("w") else 0
    bins = (ts - offset) // dst_ms * dst_ms + offset
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]]) if ts.size else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], ts.size] - 1
    o, h, lo, c, v = ohlcv_arrays(frame)
    out = {
        "open": o[starts],
        "high": np.maximum.reduceat(h, starts) if starts.size else h[:0],
        "low": np.minimum.reduceat(lo, starts) if starts.size else lo[:0],
        "close": c[ends],
        "volume": np.add.reduceat(v, starts) if starts.size else v[:0],
    }
    labels = bins[starts]
    if labels.size and ts[-1] + src_ms < labels[-1] + dst_ms:
        labels = labels[:-1]
        out = {k: a[:-1] for k, a in out.items()}
    return make_frame(labels, out)
