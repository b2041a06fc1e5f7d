"""Validation: every shipped file passes; every defect in a corrupted copy is reported with its row."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot.data import DataValidationError, load_frame, read_csv, validate_frame
from tests.conftest import shipped_files

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = shipped_files()
# Independent figures from the data provenance README (data/sample/README.md): rows, gaps, missing bars.
EXPECTED = {
    "bitbank_BTC-JPY_15m_2018.csv.gz": (34252, 3, 20, 35),
    "bitbank_BTC-JPY_1h_2018.csv.gz": (8566, 1, 2, 5),
    "bitbank_BTC-JPY_4h_2018.csv.gz": (2142, 0, 0, 0),
    "bitbank_BTC-JPY_1h_2026-08_sample.csv.gz": (253, 0, 0, 0),
    "binance_BTC-USDT_1h_2017-08_2025-05.csv.gz": (68148, 28, 128, 4),
}

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = [
    "2024-01-01T00:00:00Z,100,110,95,105,1.5",
    "2024-01-01T01:00:00Z,105,112,101,110,2.0",
    "2024-01-01T02:00:00Z,110,115,108,109,0.7",
    "2024-01-01T03:00:00Z,109,111,100,101,3.1",
]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryptobot.data", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def write_csv(tmp_path: Path, rows: list[str], name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_file_is_valid_and_matches_provenance(path: Path) -> None:
    rows, gaps, missing, zero = EXPECTED[path.name]
    report = validate_frame(read_csv(path), source=path.name)
    assert report.ok, str(report)
    assert (report.rows, len(report.gaps), report.missing_bars, report.zero_volume_bars) == (rows, gaps, missing, zero)
    result = cli("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout.splitlines()[0]


def test_known_gap_of_the_15m_file_is_listed() -> None:
    report = validate_frame(read_csv(ROOT / "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz"))
    # data README: 2018-12-18T16:15Z..19:00Z, 12 bars — the longest gap
    text = str(report)
    assert "longest 12 bar(s) from 2018-12-18T16:15:00Z" in text
    assert "gap: 4 bar(s) missing from 2018-04-19T19:15:00Z" in text


DEFECTS = {
    "duplicate": (2, GOOD[1], "row 3 (2024-01-01T01:00:00Z): duplicate timestamp"),
    "out_of_order": (2, "2024-01-01T00:30:00Z,100,110,95,105,1", "out of order"),
    "off_grid": (2, "2024-01-01T01:30:00Z,100,110,95,105,1", "not on the 1h grid"),
    "nan": (1, "2024-01-01T01:00:00Z,105,112,101,NaN,2.0", "row 2 (2024-01-01T01:00:00Z): close is nan (NaN/inf)"),
    "inf": (1, "2024-01-01T01:00:00Z,105,inf,101,110,2.0", "high is inf (NaN/inf)"),
    "empty_field": (1, "2024-01-01T01:00:00Z,105,112,101,,2.0", "close is nan (NaN/inf)"),
    "non_positive": (1, "2024-01-01T01:00:00Z,0,112,0,110,2.0", "open 0.0 is not a positive price"),
    "high_below": (1, "2024-01-01T01:00:00Z,105,108,101,110,2.0", "high 108.0 < max(open 105.0, close 110.0)"),
    "low_above": (1, "2024-01-01T01:00:00Z,105,112,106,110,2.0", "low 106.0 > min(open 105.0, close 110.0)"),
    "negative_volume": (1, "2024-01-01T01:00:00Z,105,112,101,110,-2.0", "volume -2.0 is negative"),
}


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_each_defect_fails_with_row_level_message(tmp_path: Path, name: str) -> None:
    position, row, expected = DEFECTS[name]
    rows = list(GOOD)
    if name in {"duplicate", "out_of_order", "off_grid"}:
        rows.insert(position, row)
    else:
        rows[position] = row
    path = write_csv(tmp_path, rows)
    result = cli("validate", str(path), "--timeframe", "1h")
    assert result.returncode == 1
    error_lines = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert error_lines and any(expected in line for line in error_lines), result.stdout
    with pytest.raises(DataValidationError, match=str(path.name)):
        load_frame(path)


def test_corrupted_copy_of_shipped_file_is_refused(tmp_path: Path) -> None:
    src = ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz"
    lines = gzip.decompress(src.read_bytes()).decode().splitlines()
    lines[101] = lines[100]  # data row 100 duplicated into row 101
    fields = lines[501].split(",")
    fields[2] = str(float(fields[4]) - 1)  # high below close
    lines[501] = ",".join(fields)
    bad = tmp_path / "corrupt.csv.gz"
    bad.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    result = cli("validate", str(bad))
    assert result.returncode == 1
    assert "row 101 (" in result.stdout and "duplicate timestamp" in result.stdout
    assert "row 501 (" in result.stdout and "< max(open" in result.stdout


def test_gaps_alone_are_a_warning(tmp_path: Path) -> None:
    rows = [GOOD[0], GOOD[1], GOOD[3]]
    result = cli("validate", str(write_csv(tmp_path, rows)), "--timeframe", "1h")
    assert result.returncode == 0
    assert "WARNING gap: 1 bar(s) missing from 2024-01-01T02:00:00Z" in result.stdout


def test_zero_volume_run_is_reported(tmp_path: Path) -> None:
    rows = [GOOD[0], "2024-01-01T01:00:00Z,105,105,105,105,0", "2024-01-01T02:00:00Z,105,105,105,105,0", GOOD[3]]
    result = cli("validate", str(write_csv(tmp_path, rows)))
    assert result.returncode == 0
    assert "2 zero-volume bar(s) in 1 run(s); longest 2 bar(s) from row 2" in result.stdout


def test_unreadable_inputs_name_the_file(tmp_path: Path) -> None:
    missing_col = tmp_path / "cols.csv"
    missing_col.write_text("timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,1,1,1\n")
    result = cli("validate", str(missing_col))
    assert result.returncode == 1 and "cols.csv: missing column(s) ['volume']" in result.stderr
    bad_time = write_csv(tmp_path, ["yesterday,1,1,1,1,1"], "time.csv")
    result = cli("validate", str(bad_time))
    assert result.returncode == 1 and "unparseable timestamp at row 1 ('yesterday')" in result.stderr
    result = cli("validate", "no/such/key/here/at/all")
    assert result.returncode == 1 and "'no/such/key/here/at/all' is not a store key" in result.stderr


def reference_price_lines(frame: pd.DataFrame) -> list[str]:
    """The price and volume rules written row by row (a second implementation, for the vectorised one)."""
    ts = pd.DatetimeIndex(frame.index).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [(i, *(float(frame[k].iloc[i]) for k in ("open", "high", "low", "close", "volume")))
            for i in range(len(frame))]
    lines: list[str] = []
    for k, name in enumerate(("open", "high", "low", "close", "volume"), start=1):
        lines += [f"row {r[0] + 1} ({ts[r[0]]}): {name} is {r[k]!r} (NaN/inf)" for r in rows if not np.isfinite(r[k])]
    for k, name in enumerate(("open", "high", "low", "close"), start=1):
        lines += [f"row {r[0] + 1} ({ts[r[0]]}): {name} {r[k]!r} is not a positive price" for r in rows
                  if np.isfinite(r[k]) and r[k] <= 0]
    finite = [r for r in rows if all(np.isfinite(r[1:5]))]
    lines += [f"row {r[0] + 1} ({ts[r[0]]}): high {r[2]!r} < max(open {r[1]!r}, close {r[4]!r})" for r in finite
              if r[2] < max(r[1], r[4])]
    lines += [f"row {r[0] + 1} ({ts[r[0]]}): low {r[3]!r} > min(open {r[1]!r}, close {r[4]!r})" for r in finite
              if r[3] > min(r[1], r[4])]
    lines += [f"row {r[0] + 1} ({ts[r[0]]}): volume {r[5]!r} is negative" for r in rows
              if np.isfinite(r[5]) and r[5] < 0]
    return lines


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 39), st.sampled_from(["open", "high", "low", "close", "volume"]),
                          st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e308, 50.0, 500.0])), max_size=6))
def test_defects_anywhere_are_each_reported_as_the_row_by_row_rules_say(defects: list) -> None:
    """Any mix of NaN, ±inf, zero, negative and out-of-range values (whole-column shortcuts on or off)."""
    index = pd.date_range("2024-01-01", periods=40, freq="1h", tz="UTC")
    base = np.linspace(100.0, 140.0, 40)
    frame = pd.DataFrame({"open": base, "high": base + 5, "low": base - 5, "close": base + 1, "volume": 1.0},
                         index=index)
    for row, col, value in defects:
        frame.iloc[row, frame.columns.get_loc(col)] = value
    report = validate_frame(frame, timeframe="1h")
    assert sorted(e for e in report.errors if "grid" not in e) == sorted(reference_price_lines(frame))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([-60_000, 0, 30_000, 60_000, 120_000, 900_000, 3_600_000]), min_size=1, max_size=30))
def test_inferred_timeframe_is_the_most_common_rising_spacing(steps: list[int]) -> None:
    """Against `collections.Counter` over the positive spacings, ties to the larger one."""
    from collections import Counter

    from cryptobot.data.validate import infer_timeframe
    from cryptobot.timeunits import UNIT_MS

    ts = np.cumsum([1_700_000_000_000, *steps]).astype(np.int64)
    counts = Counter(d for d in steps if d > 0)
    if not counts:
        assert infer_timeframe(ts) is None
        return
    top = max(counts.values())
    step = max(d for d, n in counts.items() if n == top)
    units = [(u, m) for u, m in sorted(UNIT_MS.items(), key=lambda item: -item[1]) if step % m == 0]
    assert infer_timeframe(ts) == (f"{step // units[0][1]}{units[0][0]}" if units else None)
