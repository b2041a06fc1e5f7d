"""Files: the shipped CSV layout, Parquet, and the Parquet store `{root}/{exchange}/{SYMBOL}/{tf}.parquet`.

Every write goes to a temporary file in the target directory, is flushed to disk, then renamed over the
target (`os.replace` is atomic on POSIX), so a crash leaves either the old file or the new one — never half.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cryptobot.atomic import atomic_write
from cryptobot.data.frames import (
    INDEX_NAME,
    OHLCV_COLUMNS,
    DataValidationError,
    make_frame,
    ms_to_iso,
    parse_time,
    timeframe_to_ms,
    timestamps_ms,
)
from cryptobot.data.validate import ValidationReport, timeframe_from_name, validate_frame

DEFAULT_STORE_ROOT = Path("data/store")


# --------------------------------------------------------------------------- single files
def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV/CSV.gz in the shipped layout (`timestamp,open,high,low,close,volume`).

    `timestamp` may be ISO-8601 UTC text or epoch milliseconds. Rows are kept as they are (not sorted or
    de-duplicated) so that validation can report them; use `load_frame` for validated data. Well-formed
    files are parsed by pyarrow's multi-threaded reader; anything it rejects (text in a number column,
    unusual timestamps, stray spaces) goes through the slower, forgiving pandas parser, which names the row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        fast = _read_csv_arrow(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        fast = None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path}: cannot be read as CSV ({exc})") from None
    return fast if fast is not None else _read_csv_pandas(path)


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        first = fh.readline()
    return [c.strip().lower() for c in next(csv.reader([first]), [])]


def _read_csv_arrow(path: Path) -> pd.DataFrame | None:
    """The fast path: typed columns straight from pyarrow; None when the file needs the forgiving parser."""
    names = _csv_header(path)
    if any(c not in names for c in ("timestamp", *OHLCV_COLUMNS)) or len(set(names)) != len(names):
        return None
    types = {"timestamp": pa.string()} | {c: pa.float64() for c in OHLCV_COLUMNS}
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(skip_rows=1, column_names=names),
        convert_options=pacsv.ConvertOptions(column_types=types, include_columns=["timestamp", *OHLCV_COLUMNS]),
    )
    text = table.column("timestamp")
    if text.null_count:
        return None
    if pc.all(pc.match_substring_regex(text, r"^-?\d+$")).as_py():
        ts = pc.cast(text, pa.int64()).to_numpy()
    else:
        ts = pc.cast(pc.strptime(text, format="%Y-%m-%dT%H:%M:%SZ", unit="ms"), pa.int64()).to_numpy()
    values = {c: table.column(c).to_numpy(zero_copy_only=False).astype(np.float64, copy=False) for c in OHLCV_COLUMNS}
    return make_frame(ts, values)


def _read_csv_pandas(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise DataValidationError(f"{path}: cannot be read as CSV ({exc})") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in ("timestamp", *OHLCV_COLUMNS) if c not in raw.columns]
    if missing:
        raise DataValidationError(
            f"{path}: missing column(s) {missing}; expected header timestamp,open,high,low,close,volume"
        )
    ts_text = raw["timestamp"].str.strip()
    if ts_text.str.fullmatch(r"-?\d+").all():
        ts = ts_text.astype(np.int64).to_numpy()
    else:
        parsed = pd.to_datetime(ts_text, utc=True, errors="coerce", format="ISO8601")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            rows = ", ".join(f"row {i + 1} ({ts_text.iloc[i]!r})" for i in bad[:5])
            raise DataValidationError(f"{path}: unparseable timestamp at {rows}; use ISO-8601 UTC or epoch ms")
        ts = parsed.dt.as_unit("ms").astype("int64").to_numpy()
    values = {}
    for col in OHLCV_COLUMNS:
        numbers = pd.to_numeric(raw[col].str.strip(), errors="coerce")
        values[col] = numbers.to_numpy(dtype=np.float64)
    return make_frame(ts, values)


def read_parquet(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataValidationError(f"{path}: not a readable Parquet file ({exc})") from None
    names = table.column_names
    missing = [c for c in (INDEX_NAME, *OHLCV_COLUMNS) if c not in names]
    if missing:
        raise DataValidationError(f"{path}: missing column(s) {missing} in Parquet file")
    ts_col = table.column(INDEX_NAME)
    if pa.types.is_timestamp(ts_col.type):
        ts_col = ts_col.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    ts = ts_col.to_numpy().astype(np.int64)
    return make_frame(ts, {c: table.column(c).to_numpy().astype(np.float64) for c in OHLCV_COLUMNS})


def read_any(path: str | Path) -> pd.DataFrame:
    """CSV, CSV.gz or Parquet by file name."""
    name = Path(path).name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return read_parquet(path)
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return read_csv(path)
    raise DataValidationError(f"{path}: unknown file type; expected .csv, .csv.gz or .parquet")


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a contract frame to Parquet atomically (int64 ms timestamps, float64 OHLCV)."""
    table = pa.table(
        {INDEX_NAME: pa.array(timestamps_ms(frame), pa.int64())}
        | {c: pa.array(frame[c].to_numpy(dtype=np.float64), pa.float64()) for c in OHLCV_COLUMNS}
    )
    atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write the shipped CSV layout (gzip when the name ends in .gz) atomically."""
    out = frame.loc[:, list(OHLCV_COLUMNS)].copy()
    out.index = pd.Index([ms_to_iso(int(t)) for t in timestamps_ms(frame)], name=INDEX_NAME)
    gz = str(path).endswith(".gz")
    atomic_write(
        Path(path), lambda tmp: out.to_csv(tmp, compression="gzip" if gz else None, float_format="%.10g")
    )


# --------------------------------------------------------------------------- the store
def symbol_to_name(symbol: str) -> str:
    """'BTC/JPY' → 'BTC-JPY' (a safe directory name); ccxt ':SETTLE' suffixes become '_SETTLE'."""
    return symbol.upper().replace("/", "-").replace(":", "_")


def name_to_symbol(name: str) -> str:
    return name.replace("_", ":").replace("-", "/")


@dataclass(frozen=True)
class StoreKey:
    exchange: str
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        return f"{self.exchange}/{symbol_to_name(self.symbol)}/{self.timeframe}"

    @classmethod
    def parse(cls, text: str) -> StoreKey:
        """'bitbank/BTC-JPY/15m' or 'bitbank/BTC/JPY/15m'."""
        parts = [p for p in text.strip("/").split("/") if p]
        if len(parts) == 4:
            parts = [parts[0], f"{parts[1]}/{parts[2]}", parts[3]]
        if len(parts) != 3:
            raise ValueError(f"{text!r} is not a store key; expected EXCHANGE/SYMBOL/TIMEFRAME, e.g. bitbank/BTC-JPY/15m")
        exchange, symbol, timeframe = parts
        timeframe_to_ms(timeframe)
        return cls(exchange.lower(), name_to_symbol(symbol) if "/" not in symbol else symbol.upper(), timeframe)


class Store:
    """The Parquet store rooted at `root` (config `data.store_dir`)."""

    def __init__(self, root: str | Path = DEFAULT_STORE_ROOT):
        self.root = Path(root)

    def path(self, key: StoreKey) -> Path:
        return self.root / key.exchange / symbol_to_name(key.symbol) / f"{key.timeframe}.parquet"

    def exists(self, key: StoreKey) -> bool:
        return self.path(key).is_file()

    def read(self, key: StoreKey) -> pd.DataFrame:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(
                f"store has no {key} (looked for {path}); download it with "
                f"`python -m cryptobot.data download --exchange {key.exchange} --symbol {key.symbol} "
                f"--timeframe {key.timeframe} --since YYYY-MM-DD` or `import` a file"
            )
        return read_parquet(path)

    def last_timestamp(self, key: StoreKey) -> int | None:
        path = self.path(key)
        if not path.is_file():
            return None
        ts = pq.read_table(path, columns=[INDEX_NAME]).column(INDEX_NAME).to_numpy()
        return int(ts.max()) if ts.size else None

    def write(self, key: StoreKey, frame: pd.DataFrame, merge: bool = True) -> pd.DataFrame:
        """Merge `frame` into the stored series (newer rows win on equal timestamps), validate, write atomically.

        Refuses to store data that fails validation (gaps are allowed); returns what was stored.
        """
        combined = frame
        if merge and self.exists(key):
            old = self.read(key)
            combined = pd.concat([old, frame])
        combined = combined[~combined.index.duplicated(keep="last")].sort_index()
        report = validate_frame(combined, source=str(key), timeframe=key.timeframe)
        report.raise_for_errors()
        write_parquet(combined, self.path(key))
        return combined

    def keys(self) -> list[StoreKey]:
        out = []
        for path in sorted(self.root.glob("*/*/*.parquet")):
            out.append(StoreKey(path.parent.parent.name, name_to_symbol(path.parent.name), path.stem))
        return out


# --------------------------------------------------------------------------- loading
def _slice(frame: pd.DataFrame, start: object, end: object) -> pd.DataFrame:
    lo = parse_time(start)  # type: ignore[arg-type]
    hi = parse_time(end)  # type: ignore[arg-type]
    if lo is not None:
        frame = frame[frame.index >= lo]
    if hi is not None:
        frame = frame[frame.index < hi]
    return frame


def load_frame_with_report(
    source: str | Path,
    start: object = None,
    end: object = None,
    store_root: str | Path = DEFAULT_STORE_ROOT,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Read a file path or store key, validate it (errors raise `DataValidationError`), slice [start, end)."""
    path = Path(source)
    timeframe = None
    if path.is_file():
        frame = read_any(path)
        label, timeframe = str(path), timeframe_from_name(path.name)
    else:
        try:
            key = StoreKey.parse(str(source))
        except ValueError:
            raise FileNotFoundError(
                f"{source}: neither a file nor a store key (EXCHANGE/SYMBOL/TIMEFRAME, e.g. bitbank/BTC-JPY/15m)"
            ) from None
        frame = Store(store_root).read(key)
        label, timeframe = str(key), key.timeframe
    report = validate_frame(frame, source=label, timeframe=timeframe)
    report.raise_for_errors()
    return _slice(frame, start, end), report


def load_frame(
    source: str | Path, start: object = None, end: object = None, store_root: str | Path = DEFAULT_STORE_ROOT
) -> pd.DataFrame:
    """Validated OHLCV frame from a CSV/CSV.gz/Parquet path or a store key, sliced to [start, end)."""
    return load_frame_with_report(source, start, end, store_root)[0]


def load(
    exchange: str,
    symbol: str,
    timeframe: str,
    start: object = None,
    end: object = None,
    store_root: str | Path = DEFAULT_STORE_ROOT,
) -> pd.DataFrame:
    """Validated frame from the store: `load("bitbank", "BTC/JPY", "15m", start="2024-01-01")`."""
    key = StoreKey(exchange.lower(), symbol.upper(), timeframe)
    return load_frame(str(key), start, end, store_root)
