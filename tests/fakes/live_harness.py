"""Drive `python -m cryptobot.live live` (a real subprocess) against the fake bitbank, one bar at a time.

The fake's clock and matching engine move only when the bot has finished the previous bar, so every run
is deterministic: for bar i the harness waits until the bot has committed and acted on bar i-1, fills
market orders at bar i's open, waits until every position has its stop (and its take-profit) on the
exchange — as the real bot has them seconds after a fill — then runs stops and limits on bar i's range and
closes the bar on the exchange's clock. A bot that died (kill -9 at a crash point) is restarted and the
harness goes on waiting: the ledger must come out as if nothing happened.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cryptobot.data import load_frame, timestamps_ms
from tests.fakes.bitbank_server import FakeBitbankServer

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "data" / "sample" / "bitbank_BTC-JPY_1h_2018.csv.gz"
TF = 3_600_000
H = 268  # live.history_bars = the strategies' warm-up at 1h
KEY, SECRET = "KEYMARKER-7f3a9c", "SECRETMARKER-b81d44"
# risk off and a fixed size: after the warm-up the kernel's decisions depend on the bars only, so the
# backtest on the same bars is the reference (the live kill switches are tested on their own)
TRADING = {"data": {"timeframe": "1h"}, "execution": {"fixed_amount": 0.01}, "costs": {"slippage_bps": 0.0}, "risk": {"enabled": False}}


def slice_frame(start: int, count: int) -> pd.DataFrame:
    """Bars [start - H, start + count) of the shipped 1h file: H warm-up bars, then `count` traded ones."""
    return load_frame(DATA).iloc[start - H:start + count]


def wait_until(cond: Callable[[], bool], timeout: float, what: str, alive: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def query(state: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = state / "cryptobot.sqlite"
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # the bot is creating the file or its schema right now
        return []


@dataclass
class LiveRun:
    server: FakeBitbankServer
    tmp: Path
    frame: pd.DataFrame
    overrides: dict[str, Any] = field(default_factory=dict)
    crash: list[str] = field(default_factory=list)  # CRYPTOBOT_LIVE_CRASH_AT specs, one per start, in order
    webhook: str | None = None
    fills: list[tuple[int, str, str, str, Decimal, Decimal]] = field(default_factory=list)
    starts: int = 0
    kills: int = 0
    max_unprotected_ranges: int = 0

    def __post_init__(self) -> None:
        self.state = self.tmp / "state"
        self.ts = timestamps_ms(self.frame)
        self.values = self.frame[["open", "high", "low", "close", "volume"]].to_numpy("float64")
        self.server.state.table = {int(t): tuple(v) for t, v in zip(self.ts, self.values.tolist(), strict=True)}
        self.server.state.clock_ms = int(self.ts[H])  # bar H is open: H closed bars to warm on
        cfg = {**TRADING, "live": {"poll_seconds": 0.05, "fetch_timeout_seconds": 2.0, "history_bars": H,
                                   "api_urls": {"public": self.server.url, "markets": self.server.url},
                                   "private_url": self.server.private_url, "public_url": self.server.url,
                                   "reconcile_every_bars": 4},
               "health": {"port": 0}}
        for dotted, value in self.overrides.items():
            node = cfg
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        self.cfg = self.tmp / "live.yaml"
        self.cfg.write_text(yaml.safe_dump(cfg))
        self.proc: subprocess.Popen[str] | None = None

    # ---------------------------------------------------------------- the process
    def env(self) -> dict[str, str]:
        env = {**os.environ, "CRYPTOBOT__EXCHANGE__API_KEY": KEY, "CRYPTOBOT__EXCHANGE__API_SECRET": SECRET}
        env.pop("CRYPTOBOT_LIVE_CRASH_AT", None)
        if self.webhook:
            env["CRYPTOBOT__NOTIFY__DISCORD_WEBHOOK_URL"] = self.webhook
        if self.crash and self.starts < len(self.crash) and self.crash[self.starts]:
            env["CRYPTOBOT_LIVE_CRASH_AT"] = self.crash[self.starts]
        return env

    def start(self, *extra: str) -> None:
        err = open(self.tmp / "live.stderr", "a")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([sys.executable, "-m", "cryptobot.live", "live", "--state-dir", str(self.state),
                                      "--config", str(self.cfg), *extra], cwd=ROOT, stderr=err, text=True,
                                     env=self.env())
        self.starts += 1

    def alive(self) -> None:
        """Restart a bot that was killed at its crash point; anything else that ends it is a failure."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            return
        assert code == -signal.SIGKILL, f"live exited with {code}: {(self.tmp / 'live.stderr').read_text()[-3000:]}"
        self.kills += 1
        self.start()

    def stop(self) -> None:
        assert self.proc is not None
        out = subprocess.run([sys.executable, "-m", "cryptobot.live", "stop", "--state-dir", str(self.state)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert self.proc.wait(60) == 0

    # ---------------------------------------------------------------- the bars
    def acted(self, seq: int) -> bool:
        rows = query(self.state, "SELECT value FROM control WHERE key = 'acted_seq'")
        return bool(rows) and int(rows[0][0]) >= seq

    def bars_done(self) -> int:
        rows = query(self.state, "SELECT COUNT(*) FROM bars")
        return int(rows[0][0]) if rows else 0

    def covered(self) -> bool:
        """Every exchange position has an active stop (and, when its unit has one, a take-profit) of its size."""
        bank = self.server.bank
        units = [json.loads(r[0]) for r in query(self.state, "SELECT data FROM order_units")]
        for side in ("long", "short"):
            held = bank.position(side)
            if held <= 0:
                continue
            active = [o for o in bank.active() if o["position_side"] == side and o["side"] != ("buy" if side == "long" else "sell")]
            if not any(o["type"] == "stop" and o["remaining_amount"] == held for o in active):
                return False
            wants_tp = any(u["state"] != "closed" and u["position_side"] == side and u["take_profit_price"] for u in units)
            if wants_tp and not any(o["type"] == "limit" and o["remaining_amount"] == held for o in active):
                return False
        return True

    def run(self, count: int | None = None, on_bar: Callable[[int], None] | None = None) -> None:
        """Start the bot and drive bars H .. H+count-1 (all by default), then stop it."""
        last = len(self.ts) if count is None else H + count
        self.start()
        wait_until(lambda: self.bars_done() >= H, 300, "the warm-up", self.alive)
        for i in range(H, last):
            if i > H:
                wait_until(lambda i=i: self.acted(i - 1), 120, f"bar {i - 1} acted on", self.alive)
            if on_bar is not None:
                on_bar(i)
            o, h, lo, c, _ = self.values[i].tolist()
            before = len(self.server.bank.trades)
            self.server.feed_bar(o, o, o, o, ts=2 * i)
            wait_until(self.covered, 60, f"stops on the exchange at bar {i}", self.alive)
            self.server.feed_bar(o, h, lo, c, ts=2 * i + 1)
            for t in self.server.bank.trades[before:]:
                self.fills.append((i, t["side"], t["position_side"], t["type"], Decimal(t["amount"]), Decimal(t["price"])))
            self.server.state.clock_ms = int(self.ts[i]) + TF
        wait_until(lambda: self.acted(last - 1), 120, "the last bar acted on", self.alive)
        self.stop()


def expected_fills(trades: pd.DataFrame, ts: Any) -> list[tuple[int, str, str, Decimal, Decimal]]:
    """The backtest's trades as exchange fills: (bar, side, position side, amount, price)."""
    index = {int(t): i for i, t in enumerate(ts)}
    out = []
    for t in trades.itertuples():
        long = t.side == "long"
        pos = "long" if long else "short"
        amount = Decimal(repr(round(float(t.size), 8))).quantize(Decimal("0.0001"))
        entry_bar = index[int(pd.Timestamp(t.entry_time).value // 1_000_000)]
        exit_bar = index[int(pd.Timestamp(t.exit_time).value // 1_000_000)]
        out.append((entry_bar, "buy" if long else "sell", pos, amount, Decimal(repr(float(t.entry_price)))))
        out.append((exit_bar, "sell" if long else "buy", pos, amount, Decimal(repr(float(t.exit_price)))))
    return sorted(out, key=fill_order)


def fill_order(f: tuple[Any, ...]) -> tuple[int, bool]:
    """Within a bar, an entry (at the open) comes before an exit (on the range)."""
    opening = (f[1], f[2]) in (("buy", "long"), ("sell", "short"))
    return int(f[0]), not opening


def health(run: LiveRun) -> tuple[int, dict[str, object]]:
    """Status and JSON body of the running bot's /health (its URL is in the `health` log line)."""
    urls = [json.loads(line)["url"] for line in (run.state / "live.log").read_text().splitlines()
            if '"event": "health"' in line]
    try:
        with urllib.request.urlopen(urls[-1], timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
