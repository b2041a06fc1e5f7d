"""Validation of OHLCV data, run on every load.

Errors make data unusable (duplicates, out-of-order or off-grid times, NaN/inf, non-positive prices, OHLC
inconsistency, negative volume). Gaps and zero-volume runs are warnings: bitbank emits flat zero-volume
candles when nothing trades and exchanges have outages, and silently filling either would invent prices.
Every line names the row (1-based data row, header excluded) and its timestamp.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cryptobot.data.frames import (
    OHLCV_COLUMNS,
    DataValidationError,
    ms_to_iso,
    timeframe_to_ms,
    timestamps_ms,
)
from cryptobot.timeunits import UNIT_MS, WEEK_OFFSET_MS

MAX_LINES_PER_PROBLEM = 20


@dataclass
class ValidationReport:
    source: str
    timeframe: str | None
    rows: int
    first_ms: int | None
    last_ms: int | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (first missing bar open ms, missing bars)
    zero_volume_bars: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def missing_bars(self) -> int:
        return sum(n for _, n in self.gaps)

    def summary(self) -> str:
        span = (
            f"{ms_to_iso(self.first_ms)} .. {ms_to_iso(self.last_ms)}"
            if self.first_ms is not None and self.last_ms is not None
            else "empty"
        )
        status = "OK" if self.ok else f"{len(self.errors)} error line(s)"
        return (
            f"{self.source}: {self.rows} rows, timeframe {self.timeframe or '?'}, {span}; "
            f"{len(self.gaps)} gap(s), {self.missing_bars} missing bar(s); "
            f"{self.zero_volume_bars} zero-volume bar(s); {status}"
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"ERROR {line}" for line in self.errors]
        lines += [f"WARNING {line}" for line in self.warnings]
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        if self.errors:
            head = f"{self.source}: data failed validation ({len(self.errors)} problem line(s)):"
            hint = (
                "Fix or re-download the data; `python -m cryptobot.data validate PATH` prints the full "
                "report, and the store's `import` merges and de-duplicates."
            )
            raise DataValidationError("\n".join([head, *(f"  {e}" for e in self.errors), hint]))


def timeframe_from_name(name: str) -> str | None:
    """'bitbank_BTC-JPY_15m_2018.csv.gz' → '15m' (the shipped files name their timeframe)."""
    match = re.search(r"(?:^|[_\-./])([1-9][0-9]*[mhdw])(?=[_\-.]|$)", name)
    return match.group(1) if match else None


def infer_timeframe(ts: np.ndarray) -> str | None:
    """The most common spacing between bars, as a timeframe string (None if under 2 rows)."""
    if ts.size < 2:
        return None
    diffs = np.diff(ts)
    up = diffs > 0
    rising = np.count_nonzero(up)
    if rising == 0:
        return None
    first = diffs[int(np.argmax(up))]
    if 2 * np.count_nonzero(diffs == first) > rising:  # a strict majority of the rising spacings is the mode
        step = int(first)
    else:
        values, counts = np.unique(diffs[up], return_counts=True)
        step = int(values[counts == counts.max()].max())  # ties: the larger spacing (half-steps come from off-grid rows)
    for unit, ms in sorted(UNIT_MS.items(), key=lambda item: -item[1]):  # the coarsest unit that divides it
        if step % ms == 0:
            return f"{step // ms}{unit}"
    return None


def _rows_lines(mask: np.ndarray, ts: np.ndarray, describe: Callable[[int], str]) -> list[str]:
    idx = np.flatnonzero(mask)
    lines = [f"row {i + 1} ({ms_to_iso(int(ts[i]))}): {describe(i)}" for i in idx[:MAX_LINES_PER_PROBLEM]]
    if idx.size > MAX_LINES_PER_PROBLEM:
        lines.append(f"... and {idx.size - MAX_LINES_PER_PROBLEM} more row(s) with the same problem")
    return lines


def validate_frame(frame: pd.DataFrame, source: str = "<frame>", timeframe: str | None = None) -> ValidationReport:
    """Check a frame against the OHLCV contract and market sanity; never modifies it."""
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        report = ValidationReport(source, timeframe, len(frame), None, None)
        report.errors.append(f"missing column(s) {missing}; expected {list(OHLCV_COLUMNS)}")
        return report
    ts = timestamps_ms(frame)
    tf = timeframe or infer_timeframe(ts)
    report = ValidationReport(source, tf, len(frame), int(ts[0]) if ts.size else None, int(ts[-1]) if ts.size else None)
    if ts.size == 0:
        report.warnings.append("no rows")
        return report
    cols = {c: frame[c].to_numpy(dtype=np.float64) for c in OHLCV_COLUMNS}
    o, h, lo, c, v = (cols[k] for k in OHLCV_COLUMNS)
    err = report.errors

    diffs = np.diff(ts)
    dup = np.zeros(ts.size, dtype=bool)
    dup[1:] = diffs == 0
    err += _rows_lines(dup, ts, lambda i: "duplicate timestamp (same as the previous row)")
    back = np.zeros(ts.size, dtype=bool)
    back[1:] = diffs < 0
    err += _rows_lines(back, ts, lambda i: f"out of order (earlier than the previous row {ms_to_iso(int(ts[i - 1]))})")
    if tf is not None:
        step = timeframe_to_ms(tf)
        offset = WEEK_OFFSET_MS if tf.endswith("w") else 0
        # every row is on the grid when the first is and every spacing is a whole number of steps: the
        # remainder of each row is computed only when that shortcut does not prove it
        irregular = diffs[diffs != step]
        if (ts[0] - offset) % step or (irregular % step).any():
            off_grid = (ts - offset) % step != 0
            err += _rows_lines(off_grid, ts, lambda i: f"not on the {tf} grid (bar open times are multiples of {tf} in UTC)")

    # masks per problem are built only when a whole-column check finds one (most data has none)
    scratch, flags = np.empty(ts.size), np.empty(ts.size, dtype=bool)  # reused: no fresh pages per check
    with np.errstate(over="ignore", invalid="ignore"):  # an inf or overflow only sends it down the slow path
        np.add(o, h, out=scratch)
        for col in (lo, c, v):
            scratch += col
    every_finite = bool(np.isfinite(scratch, out=flags).all())
    finite = {k: np.isfinite(a) if not every_finite else None for k, a in cols.items()}
    for name, ok in finite.items():
        values = cols[name]
        if ok is not None:
            err += _rows_lines(~ok, ts, lambda i: f"{name} is {float(values[i])!r} (NaN/inf)")  # noqa: B023

    def where_finite(bad: np.ndarray, *names: str) -> np.ndarray:
        for name in names:
            mask = finite[name]
            if mask is not None:
                bad &= mask
        return bad

    prices = ("open", "high", "low", "close")
    for name in prices:
        values = cols[name]
        if not every_finite or values.min() <= 0:
            bad = where_finite(values <= 0, name)
            err += _rows_lines(bad, ts, lambda i: f"{name} {float(values[i])!r} is not a positive price")  # noqa: B023
    high_bad = where_finite(np.less(h, np.maximum(o, c, out=scratch), out=flags), *prices)
    err += _rows_lines(high_bad, ts, lambda i: f"high {float(h[i])!r} < max(open {float(o[i])!r}, close {float(c[i])!r})")
    low_bad = where_finite(np.greater(lo, np.minimum(o, c, out=scratch), out=flags), *prices)
    err += _rows_lines(low_bad, ts, lambda i: f"low {float(lo[i])!r} > min(open {float(o[i])!r}, close {float(c[i])!r})")
    if not every_finite or v.min() < 0:
        neg_vol = where_finite(v < 0, "volume")
        err += _rows_lines(neg_vol, ts, lambda i: f"volume {float(v[i])!r} is negative")

    if tf is not None and not dup.any() and not back.any():
        step = timeframe_to_ms(tf)
        gap_idx = np.flatnonzero(diffs > step)
        report.gaps = [(int(ts[i] + step), int(diffs[i] // step - 1)) for i in gap_idx]
        if report.gaps:
            longest = max(report.gaps, key=lambda g: g[1])
            report.warnings.append(
                f"{len(report.gaps)} gap(s), {report.missing_bars} missing bar(s) (not filled); longest "
                f"{longest[1]} bar(s) from {ms_to_iso(longest[0])}"
            )
            for start, n in report.gaps[:MAX_LINES_PER_PROBLEM]:
                report.warnings.append(f"gap: {n} bar(s) missing from {ms_to_iso(start)}")
            if len(report.gaps) > MAX_LINES_PER_PROBLEM:
                report.warnings.append(f"... and {len(report.gaps) - MAX_LINES_PER_PROBLEM} more gap(s)")
    zero = where_finite(np.equal(v, 0, out=flags), "volume")
    report.zero_volume_bars = int(zero.sum())
    if report.zero_volume_bars:
        runs = _runs(zero)
        longest_start, longest_len = max(runs, key=lambda r: r[1])
        report.warnings.append(
            f"{report.zero_volume_bars} zero-volume bar(s) in {len(runs)} run(s); longest {longest_len} bar(s) "
            f"from row {longest_start + 1} ({ms_to_iso(int(ts[longest_start]))})"
        )
    return report


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start index, length) of each run of True."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]
