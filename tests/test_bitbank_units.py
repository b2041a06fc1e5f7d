"""Orders as units against the fake bitbank over HTTP, with the unit book in a real SQLite file.

The fake's matching engine is fed bars by the test: market orders fill at the next bar's open, stops on
the bar's range (a gap fills at the open), limits when the range trades through them.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cryptobot.exchange.bitbank_margin import BitbankError, BitbankMarginClient, Category
from cryptobot.exchange.order_units import EntryRefused, OrderIntent, OrderUnits
from cryptobot.live.state import StateStore
from tests.fakes.bitbank_server import FakeBitbankServer, FaultPlan

KEY, SECRET = "KEYMARKER-77aa", "SECRETMARKER-88bb"
ORDER = "/v1/user/spot/order:POST"
D = Decimal


@pytest.fixture()
def server() -> Iterator[FakeBitbankServer]:
    with FakeBitbankServer(api_key=KEY, api_secret=SECRET) as srv:
        yield srv


def make_units(srv: FakeBitbankServer, state: Path, **kw: object) -> OrderUnits:
    """Units on the live bot's own order book: the `order_intents`/`order_units` tables of its state database."""
    client = BitbankMarginClient(KEY, SECRET, private_url=srv.private_url, public_url=srv.url,
                                 timeout_seconds=0.3, backoff_seconds=0.01)
    return OrderUnits(client, StateStore(state), retry_delay_seconds=0.01, **kw)  # type: ignore[arg-type]


def stored_intents(state: Path) -> list[OrderIntent]:
    store = StateStore(state, readonly=True)
    try:
        return store.load_intents()
    finally:
        store.close()


def entries(srv: FakeBitbankServer) -> list[dict[str, object]]:
    return [b for b in srv.bank.created if (b["side"], b["position_side"]) in {("buy", "long"), ("sell", "short")}]


def by_type(srv: FakeBitbankServer, otype: str) -> list[dict[str, object]]:
    return [o for o in srv.bank.orders.values() if o["type"] == otype]


def test_long_unit_places_stop_and_tp_after_the_fill_and_tp_cancels_the_stop(server: FakeBitbankServer,
                                                                            tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "state")
    unit = units.open("long", D("0.001"), stop_price=D("14700000"), take_profit_price=D("15300000"))
    assert unit.state == "opening"
    assert units.sync() == []  # nothing to protect before the fill
    assert by_type(server, "stop") == []
    server.feed_bar(15_000_000, 15_050_000, 14_950_000, 15_020_000)  # entry fills at this open
    units.sync()
    stop = by_type(server, "stop")[0]
    tp = by_type(server, "limit")[0]
    assert (stop["side"], stop["position_side"], stop["trigger_price"], stop["price"]) == ("sell", "long", D(14700000), None)
    assert (tp["side"], tp["position_side"], tp["price"]) == ("sell", "long", D(15300000))
    assert stop["start_amount"] == tp["start_amount"] == D("0.0010")
    assert unit.state == "open"
    server.feed_bar(15_200_000, 15_350_000, 15_150_000, 15_300_000)  # TP trades through
    assert tp["status"] == "FULLY_FILLED" and stop["status"] == "INACTIVE"
    units.sync()
    assert stop["status"] == "CANCELED_UNFILLED"  # no OCO on bitbank: we cancelled the sibling
    assert unit.state == "closed" and unit.reason == "take_profit"
    assert server.bank.active() == [] and server.bank.position("long") == 0
    assert len(entries(server)) == 1


def test_stop_triggers_on_the_bar_range_and_gap_fills_at_the_open(server: FakeBitbankServer, tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "s")
    unit = units.open("long", D("0.002"), stop_price=D("14700000"), take_profit_price=D("15300000"))
    server.feed_bar(15_000_000, 15_050_000, 14_950_000, 15_000_000)
    units.sync()
    server.feed_bar(14_900_000, 14_950_000, 14_600_000, 14_650_000)  # low through the trigger
    stop = by_type(server, "stop")[0]
    assert stop["status"] == "FULLY_FILLED" and stop["average_price"] == D(14700000)
    units.sync()
    assert unit.state == "closed" and unit.reason == "stop"
    assert by_type(server, "limit")[0]["status"] == "CANCELED_UNFILLED"
    # a short whose stop is gapped through: filled at the (worse) open
    short = units.open("short", D("0.001"), stop_price=D("15300000"), take_profit_price=D("14700000"))
    server.feed_bar(15_000_000, 15_050_000, 14_950_000, 15_000_000)
    units.sync()
    server.feed_bar(15_500_000, 15_600_000, 15_400_000, 15_500_000)
    stop = [o for o in by_type(server, "stop") if o["position_side"] == "short"][0]
    assert stop["average_price"] == D(15500000)
    units.sync()
    assert short.reason == "stop" and server.bank.active() == []


def test_partial_entry_fill_is_protected_then_the_stop_resized(server: FakeBitbankServer, tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "s")
    server.bank.partial_fills.extend([D("0.4")])
    units.open("long", D("0.0010"), stop_price=D("14700000"))
    server.feed_bar(15_000_000, 15_050_000, 14_950_000, 15_000_000)
    units.sync()
    stops = by_type(server, "stop")
    assert [s["start_amount"] for s in stops] == [D("0.0004")]
    server.feed_bar(15_000_000, 15_050_000, 14_950_000, 15_000_000)
    units.sync()
    stops = by_type(server, "stop")
    assert [s["status"] for s in stops] == ["CANCELED_UNFILLED", "INACTIVE"]
    assert stops[1]["start_amount"] == D("0.0010") == server.bank.position("long")


@pytest.mark.parametrize("fault", ["drop", "system_error"])
def test_lost_answer_is_looked_up_not_resent(server: FakeBitbankServer, tmp_path: Path, fault: str) -> None:
    """Accepted by the engine, answer lost (connection dropped / 70001): found by the lookup, never resent."""
    units = make_units(server, tmp_path / "s")
    server.bank.plan.script(ORDER, fault)
    unit = units.open("long", D("0.001"), stop_price=D("14700000"))
    assert len(entries(server)) == 1  # the order exists once
    entry = units.unit_intents(unit, "entry")[0]
    assert entry.status == "placed" and entry.order_id == next(iter(server.bank.orders))


@pytest.mark.parametrize("fault", ["timeout", "500_html"])
def test_unprocessed_submission_is_looked_up_then_sent_once_more(server: FakeBitbankServer, tmp_path: Path,
                                                               fault: str) -> None:
    units = make_units(server, tmp_path / "s")
    server.bank.plan.script(ORDER, fault)
    unit = units.open("long", D("0.001"), stop_price=D("14700000"))
    assert len(entries(server)) == 1
    lookups = [e for e in server.bank.log if e["target"].startswith("/v1/user/spot/active_orders")]
    assert lookups, "the lookup must happen before the resend"
    assert units.unit_intents(unit, "entry")[0].status == "placed"


def test_busy_is_resent_without_lookup_and_maintenance_halts(server: FakeBitbankServer, tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "s")
    server.bank.plan.script(ORDER, "busy")
    units.open("long", D("0.001"), stop_price=D("14700000"))
    assert len(entries(server)) == 1
    assert not any(e["target"].startswith("/v1/user/spot/active_orders") for e in server.bank.log)
    other = make_units(server, tmp_path / "t")
    server.bank.positions.clear()
    server.bank.plan.script(ORDER, "maintenance")
    with pytest.raises(BitbankError) as info:
        other.open("long", D("0.001"), stop_price=D("14700000"))
    assert info.value.category is Category.HALT
    assert other.open_units() == []


def test_restart_after_a_lost_answer_resolves_the_intent_from_sqlite(server: FakeBitbankServer, tmp_path: Path) -> None:
    """Answer lost and the lookups fail too: the intent stays 'sending' on disk; a restart finds the order."""
    db = tmp_path / "state"
    units = make_units(server, db)
    server.bank.plan.script(ORDER, "drop")
    server.bank.plan.script("/v1/user/spot/active_orders:GET", *["503_html"] * 5)
    with pytest.raises(BitbankError):
        units.open("long", D("0.001"), stop_price=D("14700000"))
    assert [i.status for i in stored_intents(db)] == ["sending"]
    restarted = make_units(server, db)  # a new process: only the state database survives
    events = restarted.sync()
    assert any(e.key.startswith("recovered:") for e in events)
    intent = stored_intents(db)[0]
    assert intent.status == "placed" and intent.order_id in server.bank.orders
    with pytest.raises(EntryRefused, match="already open"):
        restarted.open("long", D("0.001"), stop_price=D("14700000"))
    server.feed_bar(15_000_000, 15_050_000, 14_950_000, 15_000_000)
    restarted.sync()
    assert len(entries(server)) == 1 and len(by_type(server, "stop")) == 1


def test_margin_status_checked_before_every_entry(server: FakeBitbankServer, tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "s")
    server.bank.margin_state = "CALL"
    with pytest.raises(EntryRefused, match="CALL"):
        units.open("long", D("0.001"), stop_price=D("14700000"))
    server.bank.margin_state = "NORMAL"
    server.bank.margin_ratio = D("105")  # margin call at 80 %, buffer 30 points
    with pytest.raises(EntryRefused, match="maintenance ratio"):
        units.open("long", D("0.001"), stop_price=D("14700000"))
    server.bank.margin_ratio = D("111")
    units.open("long", D("0.001"), stop_price=D("14700000"))
    assert len(entries(server)) == 1
    assert sum(e["target"] == "/v1/user/margin/status" for e in server.bank.log) == 3


def test_never_long_and_short_at_once(server: FakeBitbankServer, tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "s")
    server.bank.positions[("btc_jpy", "long")] = {"open_amount": D("0.01"), "average_price": D("15000000")}
    with pytest.raises(EntryRefused, match="does not track"):
        units.open("short", D("0.001"), stop_price=D("15300000"))
    server.bank.positions.clear()
    units.open("long", D("0.001"), stop_price=D("14700000"))
    with pytest.raises(EntryRefused, match="one position"):
        units.open("short", D("0.001"), stop_price=D("15300000"))
    assert len(entries(server)) == 1


def test_minimum_size_rising_skips_the_entry(server: FakeBitbankServer, tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "s")
    server.bank.min_amount = D("0.005")
    with pytest.raises(EntryRefused, match="below the exchange's current minimum 0.005"):
        units.open("long", D("0.001"), stop_price=D("14700000"))
    assert server.bank.created == []
    server.bank.min_amount = D("0.0001")
    unit = units.open("long", D("0.00129"), stop_price=D("14700000.4"))
    assert unit.amount == D("0.0012") and unit.stop_price == D("14700000")


def test_rejected_entry_closes_the_unit_and_is_not_resent(server: FakeBitbankServer, tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "s")
    server.bank.circuit_break = True  # market orders refused with 70020
    unit = units.open("long", D("0.001"), stop_price=D("14700000"))
    assert unit.state == "closed" and "70020" in (unit.reason or "")
    assert sum(e["target"] == "/v1/user/spot/order" for e in server.bank.log) == 1


def test_position_gone_and_foreign_orphans_are_cleaned(server: FakeBitbankServer, tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "s")
    unit = units.open("long", D("0.001"), stop_price=D("14700000"), take_profit_price=D("15300000"))
    server.feed_bar(15_000_000, 15_050_000, 14_950_000, 15_000_000)
    units.sync()
    server.bank.positions.clear()  # closed outside the bot (operator, losscut)
    events = units.sync()
    assert unit.state == "closed" and unit.reason == "position gone"
    assert any(e.level == "critical" and e.key == f"position-gone:{unit.unit_id}" for e in events)
    assert server.bank.active() == []
    # a stop left by someone else with no position behind it
    server.bank.positions[("btc_jpy", "short")] = {"open_amount": D("0.001"), "average_price": D("15000000")}
    code, stray = server.bank.create({"pair": "btc_jpy", "side": "buy", "type": "stop", "amount": "0.001",
                                      "position_side": "short", "trigger_price": "15500000"})
    assert code == 0 and stray is not None
    server.bank.positions.clear()
    events = units.sync()
    assert [e.key for e in events] == [f"orphan:{stray['order_id']}"]
    assert server.bank.orders[stray["order_id"]]["status"] == "CANCELED_UNFILLED"


def test_close_exits_at_market_and_keeps_the_stop_until_filled(server: FakeBitbankServer, tmp_path: Path) -> None:
    units = make_units(server, tmp_path / "s")
    unit = units.open("short", D("0.001"), stop_price=D("15300000"), take_profit_price=D("14700000"))
    server.feed_bar(15_000_000, 15_050_000, 14_950_000, 15_000_000)
    units.sync()
    units.close(unit, "signal exit")
    stop = by_type(server, "stop")[0]
    assert stop["status"] == "INACTIVE"  # still protected while the exit is pending
    server.feed_bar(15_010_000, 15_020_000, 14_990_000, 15_000_000)
    units.sync()
    assert unit.state == "closed" and unit.reason == "signal exit"
    assert stop["status"] == "CANCELED_UNFILLED" and server.bank.active() == []
    assert server.bank.position("short") == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_random_faults_never_double_an_order(tmp_path: Path, seed: int) -> None:
    """30 % of all private requests fail (every transient kind); the ledger still has one entry, one stop."""
    kinds = ("timeout", "drop", "429", "500_html", "503_html", "busy", "too_frequent", "system_error")
    plan = FaultPlan(seed=seed, rate=0.3, kinds=kinds)
    with FakeBitbankServer(api_key=KEY, api_secret=SECRET, plan=plan, timeout_sleep=0.4) as srv:
        units = make_units(srv, tmp_path / "s")
        try:
            units.open("long", D("0.001"), stop_price=D("14700000"), take_profit_price=D("15300000"))
        except BitbankError as exc:
            assert exc.category is Category.RETRY  # unresolved: the intent waits in SQLite for sync()
        srv.feed_bar(15_000_000, 15_050_000, 14_950_000, 15_000_000)
        for _ in range(6):
            try:
                units.sync()
            except BitbankError as exc:
                assert exc.category is Category.RETRY
        plan.rate = 0.0
        units.sync()
        assert plan.injected, "the plan injected faults"
        assert len(entries(srv)) == 1
        active_stops = [o for o in by_type(srv, "stop") if o["status"] == "INACTIVE"]
        assert [o["start_amount"] for o in active_stops] == [srv.bank.position("long")] == [D("0.0010")]
        assert len([o for o in by_type(srv, "limit") if o["status"] == "UNFILLED"]) == 1


def test_fault_plan_is_reproducible() -> None:
    a, b = FaultPlan(seed=7, rate=0.5), FaultPlan(seed=7, rate=0.5)
    assert [a.next("x") for _ in range(50)] == [b.next("x") for _ in range(50)]
    assert a.injected == b.injected and a.injected
