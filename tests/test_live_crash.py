"""Crash-only state: kill -9 the replaying process at 24 seeded points (between bars, inside the bar
transaction before and after its first write, and right after the commit), restart it each time, and
compare the final state with an uninterrupted run: same trades, equity and decisions, every bar exactly once.

The kills are real SIGKILLs of a forked child running the replay command; the point is chosen by the
loop's fault-injection hook (`CRYPTOBOT_LIVE_CRASH_AT=SEQ:POINT`), so every run is deterministic.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
from pathlib import Path

import numpy as np
import pandas as pd

from cryptobot.data import load_frame, timestamps_ms
from cryptobot.live.__main__ import main as live_main
from cryptobot.live.loop import CRASH_ENV, CRASH_POINTS
from cryptobot.live.state import StateStore

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "sample" / "bitbank_BTC-JPY_4h_2018.csv.gz"


def _child(state: str, crash: str | None) -> None:
    if crash:
        os.environ[CRASH_ENV] = crash
    else:
        os.environ.pop(CRASH_ENV, None)
    os._exit(live_main(["paper", "--replay", str(DATA), "--speed", "max", "--state-dir", state]))


def run_replay(state: Path, crash: str | None = None) -> int | None:
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(str(state), crash))
    proc.start()
    proc.join(300)
    return proc.exitcode


def snapshot(state: Path) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    store = StateStore(state, readonly=True)
    try:
        decisions = store.decisions()
        saved = store.kernel_states()
        assert saved is not None
        return store.trades(), decisions, store.events(), saved.execution
    finally:
        store.close()


def test_kill_9_at_24_seeded_points_then_restart_equals_uninterrupted_run(tmp_path: Path) -> None:
    assert run_replay(tmp_path / "clean") == 0
    clean_trades, clean_decisions, clean_events, clean_exec = snapshot(tmp_path / "clean")
    n = len(clean_decisions)
    rng = random.Random(20261201)
    seqs = sorted(rng.sample(range(n), 24))
    plan = [(s, CRASH_POINTS[i % len(CRASH_POINTS)]) for i, s in enumerate(seqs)]
    state = tmp_path / "crashed"
    committed_before = 0
    for seq, point in plan:
        code = run_replay(state, f"{seq}:{point}")
        assert code == -signal.SIGKILL, (seq, point, code)
        store = StateStore(state, readonly=True)
        committed = store.bar_count()
        store.close()
        # the killed bar is committed only when the kill came after its commit
        assert committed == seq + (1 if point == "after_commit" else 0), (seq, point, committed)
        assert committed >= committed_before
        committed_before = committed
    assert run_replay(state) == 0
    trades, decisions, events, exec_state = snapshot(state)
    pd.testing.assert_frame_equal(trades, clean_trades, check_exact=True)
    np.testing.assert_array_equal(events, clean_events)
    np.testing.assert_array_equal(exec_state, clean_exec)
    cols = [c for c in clean_decisions.columns if c != "verdict"]
    pd.testing.assert_frame_equal(decisions[cols], clean_decisions[cols], check_exact=True)
    assert decisions["verdict"].tolist() == clean_decisions["verdict"].tolist()
    # every bar of the file exactly once, in order
    np.testing.assert_array_equal(decisions["ts"].to_numpy(), timestamps_ms(load_frame(DATA)))
    np.testing.assert_array_equal(decisions["seq"].to_numpy(), np.arange(n))
    # and no bar was logged as processed twice across all the runs
    logged = [json.loads(line)["seq"] for line in (state / "live.log").read_text().splitlines()
              if '"event": "bar"' in line]
    assert len(logged) == len(set(logged))
