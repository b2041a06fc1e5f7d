"""kill -9 `live` at 20 seeded points against the fake bitbank, restart each time: the exchange's ledger is
the uninterrupted run's — the backtest's fills on these bars, which `test_live_bitbank` shows an
uninterrupted run produces — with no order sent twice, no fill lost and every position covered by its
stop before any bar's range is traded.

Crash points (`CRYPTOBOT_LIVE_CRASH_AT=SEQ:POINT`, SEQ = bar sequence number): for every entry, before
its send, after its send (the answer not yet recorded) and between the entry's fill and its stop; plus
bar points between bars, inside the bar transaction, before and after its commit (before the orders go
out), at seeded bars.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cryptobot.live.loop import CRASH_POINTS, ORDER_CRASH_POINTS
from tests.fakes.bitbank_server import FakeBitbankServer
from tests.fakes.live_harness import KEY, SECRET, H, LiveRun, expected_fills, fill_order, slice_frame
from tests.test_live_bitbank import reference

START, COUNT = 1225, 80
POINT_ORDER = {p: i for i, p in enumerate(CRASH_POINTS + ORDER_CRASH_POINTS)}


@pytest.fixture()
def server() -> Iterator[FakeBitbankServer]:
    with FakeBitbankServer(api_key=KEY, api_secret=SECRET) as srv:
        yield srv


def test_kill_9_at_20_points_leaves_the_uninterrupted_ledger(server: FakeBitbankServer, tmp_path: Path) -> None:
    frame = slice_frame(START, COUNT)
    ref = reference(frame)
    index = {t: i for i, t in enumerate(frame.index)}
    entry_seqs = sorted(index[t] - 1 for t in ref.entry_time)
    assert len(entry_seqs) >= 5
    plan = [(s, p) for s in entry_seqs[:5] for p in ORDER_CRASH_POINTS]
    rng = random.Random(20261202)
    others = sorted(rng.sample([s for s in range(H + 1, H + COUNT - 1) if s not in entry_seqs], 5))
    plan += [(s, CRASH_POINTS[k % len(CRASH_POINTS)]) for k, s in enumerate(others)]
    plan.sort(key=lambda sp: (sp[0], POINT_ORDER[sp[1]]))
    assert len(plan) >= 20
    run = LiveRun(server, tmp_path, frame, crash=[f"{s}:{p}" for s, p in plan])
    run.run()
    assert run.kills == len(plan), f"only {run.kills} of {len(plan)} crash points were reached"
    want = expected_fills(ref, run.ts)
    got = sorted([(b, side, pos, amount, price) for b, side, pos, _, amount, price in run.fills], key=fill_order)
    assert len(got) in (len(want), len(want) + 1)  # the last trade may still be open
    assert [g[:4] for g in got[:len(want)]] == [w[:4] for w in want]  # no lost and no extra fill
    for g, w in zip(got[:len(want)], want, strict=True):
        assert abs(g[4] - w[4]) < Decimal(1), (g, w)
    created = server.bank.created
    opening = [c for c in created if (c["side"], c["position_side"]) in (("buy", "long"), ("sell", "short"))]
    entries = len(ref) + (len(got) - len(want))
    assert len(opening) == entries, "an entry was sent twice"
    assert len([c for c in created if c["type"] == "stop"]) == entries, "a stop was sent twice"
    assert len([c for c in created if c["type"] == "market" and c not in opening]) == (ref.exit_reason == "signal").sum()
