"""The bot's crash-only state: one SQLite file (WAL) under the state directory.

Every processed bar is one transaction — the bar, its decision (features, votes, model output, verdict),
the kernel's fills and skips, the orders it leaves pending, equity and position, and the kernel states
that produced them — committed before anything is acted on. A process killed at any point therefore
restarts from the last committed bar: nothing half-written, no bar processed twice. The identity of the
state (schema version, kernel digest, trading-config hash, timeframe, mode) is stored once and checked on
every open; a mismatch is refused, never silently continued.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryptobot.cli_errors import UserError
from cryptobot.config import SECRET_KEYS, Config
from cryptobot.exchange.order_units import OrderIntent, OrderUnit, intent_from_json, to_json, unit_from_json
from cryptobot.execution import EVENT_KIND_NAMES, REASONS, event_records, fingerprint, trades_frame
from cryptobot.kernels import execution as ex

SCHEMA_VERSION = 3  # 2: the kernel row carries the execution layout digest; 3: the feature and strategy ones too
DB_NAME = "cryptobot.sqlite"
_PACKAGE = Path(__file__).resolve().parent.parent
# config sections that change decisions; live/health/notify (polling, logging, alerting) may change freely
_TRADING_SECTIONS = ("exchange", "data", "costs", "features", "strategies", "execution", "risk", "ml")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bars (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL UNIQUE,
    open REAL, high REAL, low REAL, close REAL, volume REAL,
    warmup INTEGER NOT NULL, action INTEGER, confidence REAL, stop_loss REAL, take_profit REAL, voters INTEGER,
    ml_p REAL, verdict TEXT, equity REAL, position REAL, features BLOB, votes BLOB, processed_at INTEGER);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    reason TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
    kind TEXT NOT NULL, side INTEGER NOT NULL, amount REAL, price REAL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kernel (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
    ts INTEGER NOT NULL, features BLOB NOT NULL, strategies BLOB NOT NULL, execution BLOB NOT NULL,
    execution_layout TEXT NOT NULL, feature_layout TEXT NOT NULL, strategy_layout TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS order_intents (intent_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS order_units (unit_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS differences (id INTEGER PRIMARY KEY, seq INTEGER, at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL, detail TEXT NOT NULL);
"""


class StateError(UserError, RuntimeError):
    """A state directory that must not be continued (other kernels, other config, other schema)."""


def kernel_digest(pipeline_name: str) -> str:
    """sha256 over the kernel sources, the parameter packing and the generated pipeline's name (which hashes
    every registered strategy step's source): a state made by other decision code is refused."""
    digest = hashlib.sha256()
    for path in [*sorted((_PACKAGE / "kernels").glob("*.py")), _PACKAGE / "execution.py"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(pipeline_name.encode())
    return digest.hexdigest()


def trading_config_hash(cfg: Config) -> str:
    """sha256 of the config sections that change decisions (secrets excluded by `public_dict`)."""
    data = cfg.public_dict()
    for key in SECRET_KEYS:  # set or not, a secret never changes a decision
        section, name = key.split(".")
        data[section][name] = None
    trading = {k: data[k] for k in _TRADING_SECTIONS}
    return hashlib.sha256(json.dumps(trading, sort_keys=True).encode()).hexdigest()


@dataclass
class KernelStates:
    seq: int
    ts: int
    features: np.ndarray
    strategies: np.ndarray
    execution: np.ndarray
    execution_layout: str  # `cryptobot.execution.LAYOUT_DIGEST` of the kernel that made `execution`
    feature_layout: str  # `cryptobot.features.LAYOUT_DIGEST` of the kernel that made `features`
    strategy_layout: str  # `Pipeline.layout`: the declared layouts of the strategies that made `strategies`


@dataclass
class BarRecord:
    """Everything one processed bar leaves in the state (one transaction)."""

    seq: int
    ts: int
    ohlcv: tuple[float, float, float, float, float]
    warmup: bool
    action: int = 0
    confidence: float = float("nan")
    stop_loss: float = float("nan")
    take_profit: float = float("nan")
    voters: int = 0
    ml_p: float = float("nan")
    verdict: str = "warmup"
    equity: float = float("nan")
    position: float = 0.0
    features: np.ndarray | None = None
    votes: np.ndarray | None = None
    events: np.ndarray | None = None  # (k, EV_WIDTH) rows of event records (`cryptobot.execution.event_records`)
    orders: tuple[tuple[str, int, float, float, str], ...] = ()  # kind, side, amount, price, reason


def _blob(a: np.ndarray | None) -> bytes | None:
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64).tobytes()


def _floats(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.float64).copy()


class StateStore:
    """The SQLite state of one bot; `crash_hook(point)` is called inside each bar transaction (fault tests)."""

    def __init__(self, state_dir: str | Path, readonly: bool = False):
        self.dir = Path(state_dir)
        self.path = self.dir / DB_NAME
        if readonly:
            if not self.path.exists():
                raise StateError(f"{self.path}: no state here (start `python -m cryptobot.live paper` first)")
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10.0)
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        self.crash_hook: Any = None

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ identity
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def check_identity(self, identity: dict[str, str]) -> None:
        """First open writes `identity`; later opens must match it exactly, else a clear refusal."""
        stored = self.meta()
        if not stored:
            with self._tx():
                self.db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(identity.items()))
                self.db.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(int(time.time() * 1000)),))
            return
        if stored.get("schema_version") != str(SCHEMA_VERSION):
            raise StateError(f"{self.path}: schema version {stored.get('schema_version')} is not this code's "
                             f"{SCHEMA_VERSION}; use a new --state-dir")
        what = {"kernel_digest": "kernel code", "config_hash": "trading config", "timeframe": "timeframe",
                "mode": "mode", "symbol": "symbol", "bundle_id": "ML bundle"}
        for key, label in what.items():
            if stored.get(key, "") != identity.get(key, ""):
                raise StateError(
                    f"{self.path}: this state was made with another {label} ({key} {stored.get(key, '')[:16]!r}, "
                    f"now {identity.get(key, '')[:16]!r}); refusing to continue it. Run with the code/config "
                    "that made it, or start a new --state-dir"
                )

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _hook(self, point: str, seq: int) -> None:
        if self.crash_hook is not None:
            self.crash_hook(point, seq)

    def write_bar(self, rec: BarRecord, states: KernelStates, control: Iterable[tuple[str, str]] = (),
                  differences: Iterable[tuple[str, str]] = ()) -> None:
        """One transaction: the bar, its events and orders, the kernel states after it, control changes and
        the differences the exchange's view made to them (live)."""
        with self._tx():
            self.db.execute(
                "INSERT INTO bars VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec.seq, rec.ts, *rec.ohlcv, int(rec.warmup), rec.action, rec.confidence, rec.stop_loss,
                 rec.take_profit, rec.voters, rec.ml_p, rec.verdict, rec.equity, rec.position, _blob(rec.features),
                 _blob(rec.votes), int(time.time() * 1000)),
            )
            self._hook("in_tx", rec.seq)
            if rec.events is not None and len(rec.events):
                self.db.executemany(
                    "INSERT INTO events (seq, kind, reason, data) VALUES (?,?,?,?)",
                    [(rec.seq, EVENT_KIND_NAMES[int(e["kind"])], REASONS[int(e["reason"])], e.tobytes())
                     for e in event_records(rec.events)],
                )
            if rec.orders:
                self.db.executemany("INSERT INTO orders (seq, ts, kind, side, amount, price, reason) VALUES (?,?,?,?,?,?,?)",
                                    [(rec.seq, rec.ts, *o) for o in rec.orders])
            self.db.execute(
                "INSERT OR REPLACE INTO kernel VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                (states.seq, states.ts, _blob(states.features), _blob(states.strategies), _blob(states.execution),
                 states.execution_layout, states.feature_layout, states.strategy_layout),
            )
            if control:
                self.db.executemany("INSERT OR REPLACE INTO control VALUES (?, ?)", list(control))
            self._insert_differences(rec.seq, differences)
            self._hook("before_commit", rec.seq)
        self._hook("after_commit", rec.seq)

    def _insert_differences(self, seq: int | None, differences: Iterable[tuple[str, str]]) -> None:
        now = int(time.time() * 1000)
        self.db.executemany("INSERT INTO differences (seq, at_ms, kind, detail) VALUES (?,?,?,?)",
                            [(seq, now, kind, detail) for kind, detail in differences])

    def record_differences(self, seq: int | None, differences: Iterable[tuple[str, str]]) -> None:
        """Exchange-vs-state differences found outside a bar (at start), in their own transaction."""
        with self._tx():
            self._insert_differences(seq, differences)

    # ------------------------------------------------------------------ order book (`OrderStore`)
    def save_intent(self, intent: OrderIntent) -> None:
        """Committed before it returns: an intent is durable before its order is sent."""
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO order_intents VALUES (?, ?)", (intent.intent_id, to_json(intent)))

    def load_intents(self) -> list[OrderIntent]:
        rows = self.db.execute("SELECT data FROM order_intents ORDER BY rowid").fetchall()
        return [intent_from_json(r[0]) for r in rows]

    def save_unit(self, unit: OrderUnit) -> None:
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO order_units VALUES (?, ?)", (unit.unit_id, to_json(unit)))

    def load_units(self) -> list[OrderUnit]:
        rows = self.db.execute("SELECT data FROM order_units ORDER BY rowid").fetchall()
        return [unit_from_json(r[0]) for r in rows]

    def differences(self) -> pd.DataFrame:
        rows = self.db.execute("SELECT seq, at_ms, kind, detail FROM differences ORDER BY id").fetchall()
        return pd.DataFrame(rows, columns=["seq", "at_ms", "kind", "detail"])

    def set_control(self, key: str, value: str) -> None:
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO control VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ reading
    def control(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM control").fetchall())

    def kernel_states(self) -> KernelStates | None:
        row = self.db.execute("SELECT seq, ts, features, strategies, execution, execution_layout, feature_layout, "
                              "strategy_layout FROM kernel WHERE id = 1").fetchone()
        if row is None:
            return None
        return KernelStates(int(row[0]), int(row[1]), _floats(row[2]), _floats(row[3]), _floats(row[4]), str(row[5]),
                            str(row[6]), str(row[7]))

    def bar_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM bars").fetchone()[0])

    def index(self) -> pd.DatetimeIndex:
        """Bar open times by sequence number (the kernel's bar index)."""
        ts = np.array([r[0] for r in self.db.execute("SELECT ts FROM bars ORDER BY seq")], dtype=np.int64)
        return pd.DatetimeIndex(pd.to_datetime(ts, unit="ms", utc=True)).as_unit("ms").rename("time")

    def events(self) -> np.ndarray:
        """Every stored event as a row of EV_WIDTH floats, as persisted (`event_records` reads them by name)."""
        rows = [np.frombuffer(r[0], dtype=np.float64) for r in self.db.execute("SELECT data FROM events ORDER BY id")]
        return np.vstack(rows) if rows else np.empty((0, ex.EV_WIDTH))

    def trades(self) -> pd.DataFrame:
        """Closed trades in the backtest's `trades.csv` columns (the same `trades_frame`)."""
        return trades_frame(self.events(), self.index())

    def fingerprint(self) -> str:
        return fingerprint(self.trades())

    def decisions(self) -> pd.DataFrame:
        """One row per processed bar: OHLCV, signal, model output, verdict, equity, position."""
        cols = ["seq", "ts", "open", "high", "low", "close", "volume", "warmup", "action", "confidence", "stop_loss",
                "take_profit", "voters", "ml_p", "verdict", "equity", "position"]
        rows = self.db.execute(f"SELECT {', '.join(cols)} FROM bars ORDER BY seq").fetchall()
        return pd.DataFrame(rows, columns=cols)

    def last_record(self) -> BarRecord | None:
        """The last committed bar with the orders it decided (what a restart must still act on)."""
        row = self.db.execute("SELECT seq, ts, open, high, low, close, volume FROM bars ORDER BY seq DESC LIMIT 1"
                              ).fetchone()
        if row is None:
            return None
        orders = self.db.execute("SELECT kind, side, amount, price, reason FROM orders WHERE seq = ? ORDER BY id",
                                 (row[0],)).fetchall()
        return BarRecord(int(row[0]), int(row[1]), tuple(row[2:7]), False,
                         orders=tuple((k, int(s), float(a), float("nan") if p is None else float(p), r)
                                      for k, s, a, p, r in orders))

    def last_orders(self) -> list[dict[str, Any]]:
        """Orders decided at the last processed close: open until the next bar fills or drops them."""
        rows = self.db.execute(
            "SELECT kind, side, amount, price, reason, ts FROM orders WHERE seq = (SELECT MAX(seq) FROM bars)"
        ).fetchall()
        return [{"kind": k, "side": "long" if s > 0 else "short", "amount": a, "price": p, "reason": r, "decided_at": t}
                for k, s, a, p, r, t in rows]
