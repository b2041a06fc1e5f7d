"""`live` start = recovery: the refusals (no keys, an unverifiable bundle, a position the state does not
account for) with a clear message and a non-zero exit, `--adopt`, and /health's live conditions (the
exchange answering, every position's stop on the exchange)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cryptobot.live.state import StateStore
from tests.fakes.bitbank_server import FakeBitbankServer
from tests.fakes.live_harness import KEY, ROOT, SECRET, TF, H, LiveRun, health, slice_frame, wait_until

START = 1225


@pytest.fixture()
def server() -> Iterator[FakeBitbankServer]:
    with FakeBitbankServer(api_key=KEY, api_secret=SECRET) as srv:
        yield srv


def run_live(run: LiveRun, *extra: str, keys: bool = True) -> subprocess.CompletedProcess[str]:
    env = run.env()
    if not keys:
        env.pop("CRYPTOBOT__EXCHANGE__API_KEY")
        env.pop("CRYPTOBOT__EXCHANGE__API_SECRET")
    return subprocess.run([sys.executable, "-m", "cryptobot.live", "live", "--state-dir", str(run.state), "--config",
                           str(run.cfg), *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_refusals_then_adopt_then_health_reasons(server: FakeBitbankServer, tmp_path: Path) -> None:
    run = LiveRun(server, tmp_path, slice_frame(START, 10))
    out = run_live(run, keys=False)
    assert out.returncode == 2 and "CRYPTOBOT__EXCHANGE__API_KEY" in out.stderr
    for setting, name in (("execution.reverse_on_opposite=true", "reverse_on_opposite"),
                          ("costs.order_type=post_only", "order_type")):
        out = run_live(run, "--set", setting)
        assert out.returncode == 2 and name in out.stderr, out.stderr
    assert not (run.state / "cryptobot.sqlite").exists()  # refused before the state was touched
    out = run_live(run, "--set", "ml.enabled=true", "--set", f"ml.bundle_dir={tmp_path / 'no-bundle'}")
    assert out.returncode == 4 and "model_unverified" in out.stderr
    assert not server.bank.created
    # a position on the exchange that this (new) state does not account for
    bank = server.bank
    bank.positions[("btc_jpy", "long")] = {"open_amount": Decimal("0.02"), "average_price": Decimal("1000000")}
    out = run_live(run)
    assert out.returncode == 2 and "--adopt" in out.stderr, out.stderr
    out = run_live(run, "--adopt")
    assert out.returncode == 2 and "no stop order" in out.stderr, out.stderr
    code, view = bank.create({"pair": "btc_jpy", "side": "sell", "type": "stop", "amount": "0.02",
                              "trigger_price": "900000", "position_side": "long"})
    assert code == 0 and view is not None
    assert not [c for c in bank.created if c["type"] != "stop"]  # the refusals sent nothing
    run.start("--adopt")
    try:
        wait_until(lambda: run.bars_done() >= H, 120, "the warm-up", run.alive)
        # the first live bar: the kernel takes the exchange's position; the adopted stop is kept
        run.server.state.clock_ms = int(run.ts[H]) + TF
        wait_until(lambda: run.acted(H), 60, "bar acted on", run.alive)
        status, body = health(run)
        assert status == 200 and body["position"] == pytest.approx(0.02), body
        assert [o["order_id"] for o in bank.active()] == [view["order_id"]]
        # the stop disappears and cannot be placed again: 503 "without its stop-loss"
        bank.cancel("btc_jpy", view["order_id"])
        bank.plan.script("/v1/user/spot/order:POST", *["maintenance"] * 200)
        run.server.state.clock_ms = int(run.ts[H + 1]) + TF
        wait_until(lambda: run.acted(H + 1), 60, "bar acted on", run.alive)
        status, body = health(run)
        assert status == 503 and "open position without its stop-loss" in body["reasons"], body
        # the exchange stops answering: 503 "exchange not answering", the bar waits
        bank.plan.scripted.clear()
        bank.plan.script("/v1/user/margin/positions:GET", *["maintenance"] * 100_000)
        run.server.state.clock_ms = int(run.ts[H + 2]) + TF
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("exchange not" in str(r) for r in health(run)[1]["reasons"]):
            time.sleep(0.05)
        status, body = health(run)
        assert status == 503 and any(str(r).startswith("exchange not answering") for r in body["reasons"]), body
        assert not run.acted(H + 2)
        bank.plan.scripted.clear()
        wait_until(lambda: run.acted(H + 2), 60, "the delayed bar", run.alive)
        wait_until(lambda: health(run)[0] == 200, 30, "healthy again", run.alive)
    finally:
        run.stop()
    store = StateStore(run.state, readonly=True)
    try:
        kinds = store.differences()["kind"].tolist()
    finally:
        store.close()
    assert kinds[:2] == ["position_adopted", "position"]
    assert os.path.getsize(run.state / "live.log") > 0
