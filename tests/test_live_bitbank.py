"""`live` against the fake bitbank over HTTP (a real subprocess, the real client, the state in SQLite).

Parity: the bot's orders, filled by the fake's matching engine (market at the next bar's open, stops and
take-profits on the bar's range), give the fills of the backtest's trades on the same bars — same bars,
sides, sizes and prices (to the yen tick the exchange rounds a trigger to) — and the state's own trades
equal the backtest's. The expected trades come from `research.backtest.run` on the same slice.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from cryptobot.config import load_config
from cryptobot.live.state import StateStore
from research.backtest import run as backtest
from tests.fakes.bitbank_server import FakeBitbankServer
from tests.fakes.live_harness import KEY, SECRET, TRADING, H, LiveRun, expected_fills, fill_order, slice_frame

START, COUNT = 1225, 150  # a 1h window of the 2018 file that starts flat and holds signal, stop and TP exits


@pytest.fixture()
def server() -> Iterator[FakeBitbankServer]:
    with FakeBitbankServer(api_key=KEY, api_secret=SECRET) as srv:
        yield srv


def reference(frame: pd.DataFrame) -> pd.DataFrame:
    """The backtest's closed trades that the live bot can take: entered after the warm-up, closed in the data."""
    t = backtest(frame, load_config(overrides=TRADING)).trades
    live_from = frame.index[H]
    assert not ((t.entry_time <= live_from) & (t.exit_time > live_from)).any(), "window must start flat"
    return t[(t.entry_time > live_from) & (t.exit_reason != "end_of_data")].reset_index(drop=True)


def test_live_replay_against_fake_bitbank_gives_the_backtest_trades(server: FakeBitbankServer, tmp_path: Path) -> None:
    frame = slice_frame(START, COUNT)
    ref = reference(frame)
    assert set(ref.exit_reason) == {"signal", "stop_loss", "take_profit"}
    run = LiveRun(server, tmp_path, frame)
    run.run()
    want = expected_fills(ref, run.ts)
    got = sorted([(b, side, pos, amount, price) for b, side, pos, _, amount, price in run.fills], key=fill_order)
    # the last trade may still be open at the end of the window: compare the closed round trips
    assert len(got) in (len(want), len(want) + 1)
    got = got[:len(want)]
    assert [g[:4] for g in got] == [w[:4] for w in want]
    for g, w in zip(got, want, strict=True):
        assert abs(g[4] - w[4]) < Decimal(1), (g, w)  # a trigger is on the yen tick
    # each order once: one create per fill, no stop ever placed as a plain limit
    creates = server.bank.created
    assert all(c["type"] in ("market", "stop", "limit") for c in creates)
    assert all("trigger_price" in c for c in creates if c["type"] == "stop")
    store = StateStore(run.state, readonly=True)
    try:
        state_trades = store.trades()
        diffs = store.differences()
    finally:
        store.close()
    cols = ["entry_time", "exit_time", "side", "size", "exit_reason"]
    pd.testing.assert_frame_equal(state_trades[cols].iloc[:len(ref)].reset_index(drop=True), ref[cols])
    assert diffs.empty, diffs
