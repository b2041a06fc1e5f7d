"""`live` under the fake bitbank's faults, with alerts to the fake Discord webhook and /health polled.

Each fault kind of the fake's plan hits the bot on a scripted bar — lost answers and errors on order
submissions (`drop`, `timeout`, `system_error`, `busy`), transient query failures (`429`, `500_html`,
`503_html`, `too_frequent`, absorbed by the client's back-off), `maintenance` (an incident: the bar waits
until the exchange answers), and the exchange's status leaving NORMAL (a kill switch). The exchange's
ledger must still be the backtest's (nothing doubled, nothing lost, the delayed bar processed), each
incident must give exactly one alert, /health must say why it is unhealthy, and no secret marker may
appear in the logs, the state, the alerts or /health.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cryptobot.live.state import StateStore
from tests.fakes.bitbank_server import FakeBitbankServer
from tests.fakes.discord_server import FakeDiscordServer
from tests.fakes.live_harness import KEY, SECRET, LiveRun, expected_fills, fill_order, health, slice_frame
from tests.test_live_bitbank import reference

START, COUNT = 1225, 40
ORDER = "/v1/user/spot/order:POST"


@pytest.fixture()
def server() -> Iterator[FakeBitbankServer]:
    with FakeBitbankServer(api_key=KEY, api_secret=SECRET) as srv:
        yield srv


def test_every_fault_kind_no_crash_no_double_one_alert_per_incident(server: FakeBitbankServer,
                                                                    tmp_path: Path) -> None:
    frame = slice_frame(START, COUNT)
    ref = reference(frame)
    bank = server.bank
    bodies: list[str] = []
    seen: dict[int, tuple[int, dict[str, object]]] = {}

    def on_bar(i: int) -> None:
        if i == 269:  # the entry decided at 269: answer lost; its stop: not processed in time
            bank.plan.script(ORDER, "drop", "timeout")
        if i == 280:  # processed but answered with a system error; the stop: server busy
            bank.plan.script(ORDER, "system_error", "busy")
        if i == 285:
            bank.plan.script("/v1/user/margin/positions:GET", "maintenance")
        if i == 290:
            bank.plan.script("/v1/user/spot/active_orders:GET", "429", "500_html")
        if i == 292:
            bank.plan.script("/v1/user/margin/positions:GET", "503_html", "too_frequent")
        if i in (279, 304):
            bank.exchange_status = "BUSY"
        if i in (280, 306):
            seen[i] = health(run)
            bank.exchange_status = "NORMAL"
        if i == 281:
            seen[i] = health(run)
        bodies.append(json.dumps(health(run)[1]))

    with FakeDiscordServer() as discord:
        run = LiveRun(server, tmp_path, frame, webhook=discord.webhook_url,
                      overrides={"notify.min_interval_seconds": 0.0, "notify.dedupe_cooldown_seconds": 0.0,
                                 "notify.digest_interval_seconds": 3600.0})
        run.run(on_bar=on_bar)
        messages = [m["content"] for m in discord.received]
    assert {f for _, f in bank.plan.injected} == {"drop", "timeout", "system_error", "busy", "maintenance", "429",
                                                 "500_html", "503_html", "too_frequent"}
    # the ledger is the backtest's: the lost answers were looked up, not resent; the delayed bar was processed
    want = expected_fills(ref, run.ts)
    got = sorted([(b, side, pos, amount, price) for b, side, pos, _, amount, price in run.fills], key=fill_order)
    assert [g[:4] for g in got[:len(want)]] == [w[:4] for w in want]
    for g, w in zip(got[:len(want)], want, strict=True):
        assert abs(g[4] - w[4]) < Decimal(1)
    opening = [c for c in bank.created if (c["side"], c["position_side"]) in (("buy", "long"), ("sell", "short"))]
    assert len(opening) == len(ref) + (len(got) - len(want))
    # exactly one alert per incident: one exchange outage, two exchange-status incidents
    assert sum("exchange not answering" in m for m in messages) == 1, messages
    assert sum("kill switch exchange_status tripped" in m for m in messages) == 2, messages
    assert any("exchange answering again" in m for m in messages)  # info, in the digest sent at shutdown
    # /health: 503 with the reason while the switch is on, 200 again once it cleared
    status, body = seen[280]
    assert status == 503 and "kill switch: exchange_status:BUSY" in body["reasons"], body
    status, body = seen[281]
    assert status == 200, body
    store = StateStore(run.state, readonly=True)
    try:
        verdicts = store.decisions().set_index("seq")["verdict"]
    finally:
        store.close()
    assert "skip:exchange_status:BUSY" in verdicts[279] and "skip:" in verdicts[304] and "skip:" not in verdicts[306]
    # no secret anywhere
    blobs = [(run.state / "live.log").read_bytes(), (tmp_path / "live.stderr").read_bytes(),
             *(p.read_bytes() for p in run.state.glob("cryptobot.sqlite*")), "\n".join(messages).encode(),
             "\n".join(bodies).encode()]
    for marker in (KEY, SECRET, "TOKENMARKER"):
        assert not any(marker.encode() in b for b in blobs), marker
