"""`python -m research.bench live`: the live loop's per-bar decision time, start to first decision, replay speed.

Per bar (in process, on the shipped 15m sample): the decision alone (features + strategies + combiner + ML
gate + risk + execution step) and the decision plus its SQLite transaction, p50/p99, with and without the
demo bundle's ML gate. Start to first decision: a fresh `python -m cryptobot.live paper --replay` process
with a warm numba cache, from spawn to its first per-bar log line (design target ≤ 5 s). Replay
throughput: bars/s of a whole `--speed max` replay, from its start line to its done line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cryptobot.config import load_config
from cryptobot.data import load_frame, timestamps_ms, write_csv
from cryptobot.live.engine import Engine
from cryptobot.live.state import StateStore
from cryptobot.ml import load_bundle
from research.bench.features import machine

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "sample" / "bitbank_BTC-JPY_15m_2018.csv.gz"
BUNDLE = ROOT / "models" / "demo" / "bundle"


def per_bar(bars: int, ml: bool, state_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds per bar: (decision only, decision + SQLite transaction)."""
    cfg = load_config(overrides={"ml.enabled": ml, "ml.bundle_dir": str(BUNDLE)})
    frame = load_frame(DATA).iloc[:bars]
    ts, values = timestamps_ms(frame), frame[["open", "high", "low", "close", "volume"]].to_numpy("float64")
    engine = Engine(cfg, "15m", load_bundle(BUNDLE) if ml else None)
    store = StateStore(state_dir)
    decide, total = np.empty(bars), np.empty(bars)
    try:
        for i in range(bars):
            bar = (int(ts[i]), *values[i].tolist())
            t0 = time.perf_counter()
            rec = engine.step(bar)
            t1 = time.perf_counter()
            store.write_bar(rec, engine.states())
            t2 = time.perf_counter()
            decide[i], total[i] = (t1 - t0) * 1e6, (t2 - t0) * 1e6
    finally:
        store.close()
    return decide, total


def start_to_first_decision(tmp: Path) -> float:
    small = tmp / "bitbank_BTC-JPY_15m_head.csv"
    write_csv(load_frame(DATA).iloc[:50], small)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cryptobot.live", "paper", "--replay", str(small), "--state-dir",
                             str(tmp / "start")], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    elapsed = float("nan")
    for line in proc.stderr:
        if '"event": "bar"' in line:
            elapsed = time.perf_counter() - t0
            break
    proc.stderr.read()
    proc.wait()
    return elapsed


def replay_throughput(tmp: Path) -> tuple[int, float]:
    state = tmp / "replay"
    proc = subprocess.run([sys.executable, "-m", "cryptobot.live", "paper", "--replay", str(DATA), "--speed", "max",
                           "--state-dir", str(state)], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in proc.stderr.splitlines() if x.startswith("{")]
    from datetime import datetime

    stamp = {x["event"]: datetime.fromisoformat(x["time"]).timestamp() for x in lines if x["event"] in ("start", "replay_done")}
    bars = next(x["bars"] for x in lines if x["event"] == "replay_done")
    return bars, bars / (stamp["replay_done"] - stamp["start"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.bench live", description=__doc__)
    parser.add_argument("--bars", type=int, default=5000, help="bars of the 15m sample for the per-bar timing")
    args = parser.parse_args(argv)
    print(machine())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        per_bar(200, True, tmp / "warm")  # load the numba caches before timing
        for ml in (False, True):
            decide, total = per_bar(args.bars, ml, tmp / f"bar_{ml}")
            label = "with ML gate" if ml else "rules only  "
            print(f"per bar, {label}: decision p50 {np.percentile(decide, 50):7.1f} µs  p99 "
                  f"{np.percentile(decide, 99):7.1f} µs | decision + SQLite transaction p50 "
                  f"{np.percentile(total, 50):7.1f} µs  p99 {np.percentile(total, 99):7.1f} µs")
        first = start_to_first_decision(tmp)
        print(f"start to first decision (fresh process, warm numba cache): {first:.2f} s  (target ≤ 5 s)")
        bars, rate = replay_throughput(tmp)
        print(f"replay --speed max: {bars:,} bars at {rate:,.0f} bars/s (one transaction and one log line per bar)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
