"""The live kill switches and the exchange-wins correction, on the real client against the fake bitbank."""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cryptobot.config import load_config
from cryptobot.exchange.bitbank_broker import LiveBroker
from cryptobot.exchange.bitbank_margin import BitbankMarginClient
from cryptobot.execution import execution_params
from cryptobot.kernels import execution as ex
from cryptobot.live.state import StateStore
from tests.fakes.bitbank_server import FakeBitbankServer
from tests.fakes.live_harness import KEY, SECRET

HOUR = 3_600_000


@pytest.fixture()
def server() -> Iterator[FakeBitbankServer]:
    with FakeBitbankServer(api_key=KEY, api_secret=SECRET) as srv:
        yield srv


def broker(server: FakeBitbankServer, tmp_path: Path, alerts: list[tuple[str, str, str]], **risk: float) -> LiveBroker:
    cfg = load_config(overrides={"risk": risk})
    client = BitbankMarginClient(KEY, SECRET, private_url=server.private_url, public_url=server.url)
    return LiveBroker(cfg, StateStore(tmp_path), client, lambda *a: alerts.append(a))


def test_each_exchange_switch_trips_on_its_own_condition(server: FakeBitbankServer, tmp_path: Path) -> None:
    alerts: list[tuple[str, str, str]] = []
    assert broker(server, tmp_path, alerts).anomalies(0, HOUR, HOUR) == []  # fake spread 6.7e-5, fresh bar
    assert broker(server, tmp_path, alerts, max_spread=1e-5).anomalies(0, HOUR, HOUR)[0].startswith("spread:")
    assert broker(server, tmp_path, alerts, max_latency_ms=1e-3).anomalies(0, HOUR, HOUR)[0].startswith("latency:")
    assert broker(server, tmp_path, alerts).anomalies(0, HOUR, 3 * HOUR) == ["data_age:2.0bars"]
    for status in ("BUSY", "VERY_BUSY", "HALT"):
        server.bank.exchange_status = status
        assert broker(server, tmp_path, alerts).anomalies(0, HOUR, HOUR) == [f"exchange_status:{status}"]


def test_the_exchange_position_wins_and_equity_is_unchanged(server: FakeBitbankServer, tmp_path: Path) -> None:
    alerts: list[tuple[str, str, str]] = []
    b = broker(server, tmp_path, alerts)
    cfg = load_config()
    st = ex.execution_init(execution_params(cfg, HOUR))
    st[ex.S_POS], st[ex.S_CASH], st[ex.S_SL], st[ex.S_ENTRY_PRICE] = 0.01, 1_000_000 - 10_000, 990_000.0, 1_000_000.0
    equity = st[ex.S_CASH] + st[ex.S_POS] * 1_010_000
    # the kernel holds 0.01 long; the exchange is flat (its stop fired there only)
    diffs = b.take_exchange_position(st, 0.0, math.nan, 1_010_000.0, 7)
    assert [k for k, _ in diffs] == ["position"] and st[ex.S_POS] == 0.0 and math.isnan(st[ex.S_SL])
    assert st[ex.S_CASH] == pytest.approx(equity)
    assert [a[1] for a in alerts] == ["position:7"]
    # the exchange holds 0.02 short with its stop: taken, with the exchange's average price and stop
    server.bank.positions[("btc_jpy", "short")] = {"open_amount": Decimal("0.02"), "average_price": Decimal("1005000")}
    code, _ = server.bank.create({"pair": "btc_jpy", "side": "buy", "type": "stop", "amount": "0.02",
                                  "trigger_price": "1100000", "position_side": "short"})
    assert code == 0
    size, avg = b.exchange_position()
    assert (size, avg) == (-0.02, 1005000.0)
    b.take_exchange_position(st, size, avg, 1_010_000.0, 8)
    assert st[ex.S_POS] == -0.02 and st[ex.S_ENTRY_PRICE] == 1005000.0 and st[ex.S_SL] == 1_100_000.0
    assert st[ex.S_CASH] + st[ex.S_POS] * 1_010_000 == pytest.approx(equity)
    [unit] = b.units.open_units()  # adopted into the unit book with the exchange's stop as its stop
    assert unit.position_side == "short" and unit.adopted_amount == Decimal("0.02")
    b.sync()
    assert b.protected and len(server.bank.active()) == 1  # no second stop placed
