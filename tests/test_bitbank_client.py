"""Our bitbank margin client against the fake bitbank over real HTTP on 127.0.0.1.

Signature vectors come from bitbank's docs (independent of our code); everything else goes through the
fake server, which checks signatures over the raw request target / body bytes like the real exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest

from cryptobot.data.download import make_exchange
from cryptobot.exchange.bitbank_margin import BitbankError, BitbankMarginClient, Category, category_of
from tests.fakes.bitbank_server import FakeBitbankServer

KEY = "KEYMARKER-5f2b"
SECRET = "SECRETMARKER-9c1d"
ORDER = "/v1/user/spot/order:POST"

# bitbank-api.md §1.3 (the official docs' examples): secret "hoge", time/nonce 1721121776490, window 1000
DOC_BODY = '{"pair": "xrp_jpy", "price": "20", "amount": "1","side": "buy", "type": "limit"}'
DOC_VECTORS = [
    ("17211217764901000", "/v1/user/assets", "9ec5745960d05573c8fb047cdd9191bd0c6ede26f07700bb40ecf1a3920abae8"),
    ("17211217764901000", DOC_BODY, "7868665738ae3f8a796224e0413c1351ddd7ec2af121db12815c0a5b74b8764c"),
    ("1721121776490", "/v1/user/assets", "f957817b95c3af6cf5e2e9dfe1503ea8088f46879d4ab73051467fd7b94f1aba"),
    ("1721121776490", DOC_BODY, "8ef83c2b991765b18c95aade7678471747c06890a23a453c76238345b5c86fb8"),
]


class FakeClock:
    """Monotonic time that only moves when the client sleeps: back-off and rate limits without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


@pytest.fixture()
def server() -> Iterator[FakeBitbankServer]:
    with FakeBitbankServer(api_key=KEY, api_secret=SECRET) as srv:
        yield srv


def client_for(srv: FakeBitbankServer, clock: FakeClock | None = None, **kw: object) -> BitbankMarginClient:
    clock = clock or FakeClock()
    kw.setdefault("timeout_seconds", 0.3)
    return BitbankMarginClient(KEY, SECRET, private_url=srv.private_url, public_url=srv.url,
                               monotonic=clock.monotonic, sleep=clock.sleep, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("prefix", "payload", "expected"), DOC_VECTORS)
def test_signature_matches_the_docs_vectors(prefix: str, payload: str, expected: str) -> None:
    assert BitbankMarginClient("k", "hoge").sign(prefix, payload) == expected


@pytest.mark.parametrize("auth", ["time_window", "nonce"])
def test_get_and_post_are_signed_as_sent_and_accepted(server: FakeBitbankServer, auth: str) -> None:
    client = client_for(server, auth=auth)
    assets = client.assets()
    assert assets["assets"][0]["free_amount"] == Decimal("1000000.0000")
    order = client.create_order("btc_jpy", "buy", "limit", amount="0.001", price="14000000", position_side="long")
    # a GET with a query: signed over /v1 + path + "?" + query exactly as it went over the wire
    got = client.order("btc_jpy", order["order_id"])
    assert got["status"] == "UNFILLED" and got["start_amount"] == Decimal("0.0010")
    get_log = server.bank.log[-1]
    assert get_log["target"] == f"/v1/user/spot/order?pair=btc_jpy&order_id={order['order_id']}"
    assert server.bank.rejected == []
    # the POST body received is byte-for-byte what was signed
    post = next(e for e in server.bank.log if e["method"] == "POST")
    prefix = (post["headers"]["ACCESS-NONCE"] if auth == "nonce"
              else post["headers"]["ACCESS-REQUEST-TIME"] + post["headers"]["ACCESS-TIME-WINDOW"])
    assert client.sign(prefix, post["body"]) == post["headers"]["ACCESS-SIGNATURE"]


def test_get_signed_like_post_is_rejected_by_the_fake(server: FakeBitbankServer) -> None:
    """The seed's 20003/20005 bug: a GET signed without /v1 + query must fail, so the fake really checks."""
    import requests

    client = client_for(server)
    headers = client._auth_headers("")  # what signing the (empty) body instead of the path would give
    r = requests.get(server.private_url + "/user/assets", headers=headers, timeout=5)
    assert r.json() == {"success": 0, "data": {"code": 20005}}
    headers = client._auth_headers("/user/assets")  # path without /v1
    r = requests.get(server.private_url + "/user/assets", headers=headers, timeout=5)
    assert r.json()["data"]["code"] == 20005
    r = requests.get(server.url + "/user/assets", headers=client._auth_headers("/user/assets"), timeout=5)
    assert r.json()["data"]["code"] == 20018


def test_time_window_acceptance_rule(server: FakeBitbankServer) -> None:
    base = 1_800_000_000_000
    server.bank.clock_ms = lambda: base
    for offset, window, accepted in [(0, 5000, True), (-5000, 5000, True), (-5001, 5000, False),
                                     (999, 5000, True), (1000, 5000, False), (-1500, 1000, False)]:
        client = client_for(server, clock_ms=lambda off=offset: base + off, time_window_ms=window, max_retries=0)
        if accepted:
            client.assets()
        else:
            with pytest.raises(BitbankError) as info:
                client.assets()
            assert info.value.code in (20034, 20035)
            assert info.value.category is Category.RETRY


def test_nonce_must_increase(server: FakeBitbankServer) -> None:
    client = client_for(server, auth="nonce", clock_ms=lambda: 1_000)
    client.assets()
    client.assets()  # same clock: the client still increases its nonce
    stale = client_for(server, auth="nonce", clock_ms=lambda: 5, max_retries=0)
    with pytest.raises(BitbankError) as info:
        stale.assets()
    assert info.value.code == 20039


def test_decimals_everywhere(server: FakeBitbankServer) -> None:
    client = client_for(server)
    status = client.margin_status()
    assert status["total_margin_balance"] == Decimal("1000000.0000")
    assert status["total_margin_balance_percentage"] is None
    assert isinstance(status["available_balances"][0]["long"], Decimal)
    assert status["status"] == "NORMAL"
    pairs = client.pairs()["pairs"][0]
    assert pairs["unit_amount"] == Decimal("0.0001") and pairs["amount_digits"] == 4
    assert client.ticker("btc_jpy")["sell"] == Decimal("15001000")


@pytest.mark.parametrize(
    ("fault", "code", "category"),
    [("maintenance", 10007, Category.HALT), ("busy", 10008, Category.RETRY), ("too_frequent", 10009, Category.RETRY),
     ("500_html", None, Category.RETRY), ("503_html", None, Category.RETRY), ("429", None, Category.RETRY),
     ("timeout", None, Category.RETRY), ("system_error", 70001, Category.RETRY)],
)
def test_each_fault_kind_gets_its_category(server: FakeBitbankServer, fault: str, code: int | None,
                                            category: Category) -> None:
    server.bank.plan.script("/v1/user/assets:GET", fault)
    with pytest.raises(BitbankError) as info:
        client_for(server, max_retries=0).assets()
    assert info.value.code == code
    assert info.value.category is category


def test_queries_retry_with_bounded_backoff(server: FakeBitbankServer) -> None:
    clock = FakeClock()
    server.bank.plan.script("/v1/user/assets:GET", "500_html", "busy", "timeout")
    client = client_for(server, clock, backoff_seconds=0.5)
    assert client.assets()["assets"]
    assert clock.sleeps == [0.5, 1.0, 2.0]
    server.bank.plan.script("/v1/user/assets:GET", *["503_html"] * 10)
    with pytest.raises(BitbankError) as info:
        client.assets()
    assert info.value.http_status == 503
    attempts = [e for e in server.bank.log if e["target"] == "/v1/user/assets"]
    assert len(attempts) == 4 + 5  # 3 faults + the success, then 1 + max_retries (4) for the exhausted call


def test_halt_and_fail_codes_are_not_retried(server: FakeBitbankServer) -> None:
    clock = FakeClock()
    server.bank.plan.script("/v1/user/assets:GET", "maintenance")
    with pytest.raises(BitbankError) as info:
        client_for(server, clock).assets()
    assert info.value.category is Category.HALT and clock.sleeps == []
    wrong_key = BitbankMarginClient("other", SECRET, private_url=server.private_url)
    with pytest.raises(BitbankError) as info:
        wrong_key.assets()
    assert info.value.code == 20002 and info.value.category is Category.HALT
    assert category_of(60004) is Category.FAIL and category_of(99999) is Category.FAIL


@pytest.mark.parametrize("fault", ["timeout", "drop", "500_html", "system_error"])
def test_order_submission_is_never_retried_and_flags_uncertainty(server: FakeBitbankServer, fault: str) -> None:
    server.bank.plan.script(ORDER, fault)
    client = client_for(server)
    with pytest.raises(BitbankError) as info:
        client.create_order("btc_jpy", "buy", "market", amount="0.001", position_side="long")
    assert info.value.maybe_executed
    assert sum(e["target"] == "/v1/user/spot/order" and e["method"] == "POST" for e in server.bank.log) == 1


def test_busy_order_submission_is_known_not_executed(server: FakeBitbankServer) -> None:
    server.bank.plan.script(ORDER, "busy")
    with pytest.raises(BitbankError) as info:
        client_for(server).create_order("btc_jpy", "buy", "market", amount="0.001", position_side="long")
    assert info.value.category is Category.RETRY and not info.value.maybe_executed
    assert server.bank.orders == {}


def test_rate_limit_classes_pace_requests() -> None:
    clock = FakeClock()
    client = BitbankMarginClient("k", "s", monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(10):
        client._limiters["query"].acquire()
    assert clock.sleeps == []
    client._limiters["query"].acquire()  # the 11th query inside one second waits for the window
    assert clock.sleeps == [pytest.approx(1.05)]
    for _ in range(6):
        client._limiters["update"].acquire()
    assert len(clock.sleeps) == 1
    client._limiters["update"].acquire()
    assert len(clock.sleeps) == 2


def test_client_stays_under_the_fakes_rate_limits(server: FakeBitbankServer) -> None:
    """12 queries in a burst: the limiter paces them so the fake (10/s) never answers 429."""
    client = BitbankMarginClient(KEY, SECRET, private_url=server.private_url, public_url=server.url)
    for _ in range(12):
        client.assets()
    assert server.bank.rejected == []
    unpaced = BitbankMarginClient(KEY, SECRET, private_url=server.private_url, public_url=server.url,
                                  max_retries=0)
    unpaced._limiters["query"].per_second = 100  # without pacing the fake's limit does bite
    with pytest.raises(BitbankError) as info:
        for _ in range(12):
            unpaced.assets()
    assert info.value.http_status == 429 and info.value.category is Category.RETRY


def test_protective_orders_need_trigger_price_and_position_side(server: FakeBitbankServer) -> None:
    client = client_for(server)
    with pytest.raises(ValueError, match="position_side"):
        client.create_order("btc_jpy", "buy", "market", amount="0.001")
    with pytest.raises(ValueError, match="trigger_price"):
        client.create_order("btc_jpy", "sell", "stop", amount="0.001", position_side="long")
    with pytest.raises(ValueError, match="type"):
        client.create_order("btc_jpy", "sell", "losscut", amount="0.001", position_side="long")
    with pytest.raises(ValueError, match="post_only"):
        client.create_order("btc_jpy", "buy", "market", amount="0.001", position_side="long", post_only=True)
    assert [e for e in server.bank.log if e["method"] == "POST"] == []


def test_stop_is_sent_as_trigger_price_and_camel_case_would_be_refused(server: FakeBitbankServer) -> None:
    client = client_for(server)
    client.create_order("btc_jpy", "buy", "market", amount="0.001", position_side="long")
    server.feed_bar(15_000_000, 15_010_000, 14_990_000, 15_000_000)
    stop = client.create_order("btc_jpy", "sell", "stop", amount="0.001", position_side="long",
                               trigger_price="14700000")
    assert stop["status"] == "INACTIVE" and stop["trigger_price"] == Decimal("14700000")
    assert server.bank.created[-1]["trigger_price"] == "14700000" and "triggerPrice" not in server.bank.created[-1]
    # the seed's 30101: the camelCase spelling is not a trigger price to bitbank
    code, _ = server.bank.create({"pair": "btc_jpy", "side": "sell", "type": "stop", "amount": "0.001",
                                  "position_side": "long", "triggerPrice": "14700000"})
    assert code == 30101


def test_amount_and_price_rounded_to_pair_precision(server: FakeBitbankServer) -> None:
    server.bank.price_digits = 0
    server.bank.amount_digits = 4
    client = client_for(server)
    client.create_order("btc_jpy", "buy", "limit", amount=Decimal("0.00129999"), price=Decimal("14000000.6"),
                        position_side="long")
    assert server.bank.created[-1]["amount"] == "0.0012"  # truncated: never more than asked
    assert server.bank.created[-1]["price"] == "14000001"
    assert client.round_amount("btc_jpy", "0.00019") == Decimal("0.0001")
    with pytest.raises(ValueError, match="rounds to 0"):
        client.create_order("btc_jpy", "buy", "market", amount="0.00009", position_side="long")


def test_min_amount_follows_spot_status(server: FakeBitbankServer) -> None:
    client = client_for(server)
    assert client.min_amount("btc_jpy") == Decimal("0.0001")
    server.bank.min_amount = Decimal("0.01")  # bitbank raises the minimum under load
    assert client.min_amount("btc_jpy") == Decimal("0.01")
    with pytest.raises(BitbankError) as info:
        client.create_order("btc_jpy", "buy", "market", amount="0.005", position_side="long")
    assert info.value.code == 70010 and info.value.category is Category.FAIL


def test_cancel_and_queries(server: FakeBitbankServer) -> None:
    client = client_for(server)
    a = client.create_order("btc_jpy", "buy", "limit", amount="0.001", price="14000000", position_side="long")
    b = client.create_order("btc_jpy", "buy", "limit", amount="0.002", price="13900000", position_side="long")
    active = client.active_orders("btc_jpy")["orders"]
    assert {o["order_id"] for o in active} == {a["order_id"], b["order_id"]}
    info = client.orders_info("btc_jpy", [a["order_id"], b["order_id"]])["orders"]
    assert [o["start_amount"] for o in info] == [Decimal("0.0010"), Decimal("0.0020")]
    assert client.cancel_order("btc_jpy", a["order_id"])["status"] == "CANCELED_UNFILLED"
    with pytest.raises(BitbankError) as err:
        client.cancel_order("btc_jpy", a["order_id"])
    assert err.value.code == 50026
    assert client.cancel_orders("btc_jpy", [b["order_id"]])["orders"][0]["status"] == "CANCELED_UNFILLED"
    assert client.active_orders("btc_jpy")["orders"] == []
    with pytest.raises(ValueError):
        client.cancel_orders("btc_jpy", list(range(31)))


def test_partial_fill_and_trade_history(server: FakeBitbankServer) -> None:
    client = client_for(server)
    server.bank.partial_fills.extend([Decimal("0.4")])
    order = client.create_order("btc_jpy", "buy", "market", amount="0.0010", position_side="long")
    server.feed_bar(15_000_000, 15_010_000, 14_990_000, 15_000_000)
    got = client.order("btc_jpy", order["order_id"])
    assert got["status"] == "PARTIALLY_FILLED" and got["executed_amount"] == Decimal("0.0004")
    server.feed_bar(15_100_000, 15_110_000, 15_090_000, 15_100_000)
    got = client.order("btc_jpy", order["order_id"])
    assert got["status"] == "FULLY_FILLED"
    # 0.0004 @ 15,000,000 + 0.0006 @ 15,100,000 → 15,060,000 average (hand calculation)
    assert got["average_price"] == Decimal("15060000")
    trades = client.trade_history("btc_jpy", order_id=order["order_id"], order="asc")["trades"]
    assert [t["amount"] for t in trades] == [Decimal("0.0004"), Decimal("0.0006")]
    pos = client.margin_positions()["positions"]
    assert pos[0]["position_side"] == "long" and pos[0]["open_amount"] == Decimal("0.0010")


def test_secrets_never_in_repr_logs_or_errors(server: FakeBitbankServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(server)
    texts = [repr(client), str(client)]
    server.bank.plan.script("/v1/user/assets:GET", "500_html", "timeout", "maintenance")
    with pytest.raises(BitbankError) as info:
        client.assets()
    texts += [str(info.value), repr(info.value), repr(info.value.__cause__), repr(info.value.__context__)]
    for fault in ("drop", "timeout"):
        server.bank.plan.script(ORDER, fault)
        with pytest.raises(BitbankError) as info:
            client.create_order("btc_jpy", "buy", "market", amount="0.001", position_side="long")
        texts += [str(info.value), repr(info.value), repr(info.value.__cause__), repr(info.value.__context__)]
    texts.append(caplog.text)
    joined = "\n".join(texts)
    assert "retry" in caplog.text  # the retries were logged...
    assert KEY not in joined and SECRET not in joined  # ...without the key or the secret


def test_ccxt_public_data_from_the_same_fake(server: FakeBitbankServer) -> None:
    """The real ccxt client reads candles from the fake bitbank (the routes of the download fake)."""
    exchange = make_exchange("bitbank", {"public": server.url, "markets": server.url}, timeout_ms=5000)
    bars = exchange.fetch_ohlcv("BTC/JPY", "1h", limit=5)  # type: ignore[attr-defined]
    assert bars and all(len(b) == 6 for b in bars)
    assert any("/candlestick/1hour/" in r for r in server.state.requests)


def test_constructor_refuses_missing_keys() -> None:
    with pytest.raises(ValueError, match="key and secret"):
        BitbankMarginClient("", "x")
    with pytest.raises(ValueError, match="time_window_ms"):
        BitbankMarginClient("k", "s", time_window_ms=60_001)
