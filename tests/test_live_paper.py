"""`paper` on live public data without the network: the real ccxt client against the fake bitbank on
127.0.0.1, with a clock the test controls. Bars close on the exchange's clock, one decision per closed
bar, the open bar is never used, 429/5xx/timeouts delay a decision and never skip or repeat a bar, and
bars missed while the bot was down are caught up in order on restart."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from cryptobot.live.state import StateStore
from tests.fakes.exchange_server import FakeExchangeServer, candle

ROOT = Path(__file__).resolve().parent.parent
TF = 900_000
T0 = 1_780_000_000_000 // TF * TF + 7 * 60_000  # 7 minutes into an open 15m bar


@pytest.fixture()
def server() -> Iterator[FakeExchangeServer]:
    with FakeExchangeServer() as srv:
        srv.state.clock_ms = T0
        srv.state.timeout_sleep = 2.5
        yield srv


def start(state: Path, cfg: Path) -> subprocess.Popen[str]:
    log = open(state.parent / f"{state.name}.stderr", "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "cryptobot.live", "paper", "--state-dir", str(state),
                             "--config", str(cfg)], cwd=ROOT, stderr=log, text=True, env=os.environ.copy())


def wait_until(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def decisions(state: Path):  # type: ignore[no-untyped-def]
    if not (state / "cryptobot.sqlite").exists():
        return None
    try:
        store = StateStore(state, readonly=True)
    except sqlite3.OperationalError:  # the bot is creating the file right now
        return None
    try:
        return store.decisions()
    except sqlite3.OperationalError:  # ... or its schema
        return None
    finally:
        store.close()


def bar_count(state: Path) -> int:
    d = decisions(state)
    return 0 if d is None else len(d)


def stop(state: Path, proc: subprocess.Popen[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "cryptobot.live", "stop", "--state-dir", str(state)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert proc.wait(60) == 0


def test_paper_against_fake_exchange_with_controlled_clock(server: FakeExchangeServer, tmp_path: Path) -> None:
    cfg = tmp_path / "paper.yaml"
    cfg.write_text(yaml.safe_dump({"live": {"poll_seconds": 0.1, "fetch_timeout_seconds": 1.0,
                                            "api_urls": {"public": server.url, "markets": server.url}}}))
    state = tmp_path / "state"
    history = 1500  # live.history_bars default
    open_bar = T0 // TF * TF
    proc = start(state, cfg)
    try:
        wait_until(lambda: bar_count(state) >= history)
        d = decisions(state)
        assert len(d) == history and d["warmup"].all()
        assert d["ts"].iloc[-1] == open_bar - TF  # the still-open bar is never used
        # a bar closes on the exchange's clock: exactly one new decision
        server.state.clock_ms = open_bar + TF + 1_000
        wait_until(lambda: bar_count(state) == history + 1)
        time.sleep(0.5)
        d = decisions(state)
        assert len(d) == history + 1 and d["ts"].iloc[-1] == open_bar and d["warmup"].iloc[-1] == 0
        # faults during the fetch delay the next decision, never skip or repeat it
        server.state.faults.extend(["429", "502", "timeout", "500"])
        server.state.clock_ms = open_bar + 2 * TF + 1_000
        wait_until(lambda: bar_count(state) == history + 2)
        assert not server.state.faults
        stop(state, proc)
        # downtime: five bars close while the bot is down; the restart catches them up in order
        server.state.clock_ms = open_bar + 7 * TF + 1_000
        proc = start(state, cfg)
        wait_until(lambda: bar_count(state) == history + 7)
        time.sleep(0.5)
        stop(state, proc)
    finally:
        proc.kill()
    d = decisions(state)
    ts = d["ts"].to_numpy()
    assert len(d) == history + 7
    np.testing.assert_array_equal(ts, open_bar - history * TF + TF * np.arange(history + 7))
    assert d["seq"].tolist() == list(range(history + 7))
    assert ts[-1] + TF <= server.state.clock_ms
    # the stored bars are the exchange's closed candles
    np.testing.assert_array_equal(d[["open", "high", "low", "close", "volume"]].to_numpy(),
                                  np.array([candle(int(t), TF, server.state.base_price) for t in ts]))
    lines = [json.loads(x) for x in (state / "live.log").read_text().splitlines()]
    failures = [x for x in lines if x["event"] == "fetch_failed"]
    assert len(failures) >= 3 and any("RateLimit" in x["error"] or "DDoS" in x["error"] for x in failures)
    bars_logged = [x["seq"] for x in lines if x["event"] == "bar"]
    assert len(bars_logged) == len(set(bars_logged)) == history + 7
