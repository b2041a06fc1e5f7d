"""A fake bitbank on 127.0.0.1: the public candles of `FakeExchangeServer` plus the private REST API.

What it checks like the real one (reference/bitbank-api.md §1, §4, §10): both signing methods over the raw
request target (GET, incl. `/v1` and the query exactly as received) or the raw body bytes (POST); the
time-window acceptance rule `request_time < now + 1000 and now - request_time <= window`; increasing
nonces; paths without `/v1` (20018); UPDATE / QUERY rate limits (6 / 10 per second → HTTP 429); order
parameters (`trigger_price`, not `triggerPrice`; `position_side`; stops cannot open; closes cannot exceed
the position; minimum size from `min_amount`).

The matching engine is driven by the test: `feed_bar(o, h, l, c)` fills market orders at the bar's open
(optionally only partly, from `partial_fills`), then stops on the bar's range (a gap fills at the open),
then limits; one aggregated position per (pair, side). Faults come from a seeded `FaultPlan`:
`timeout` (never processed, no answer in time), `drop` (processed, answer lost), `429`, `500_html`,
`503_html`, `maintenance` (10007), `busy` (10008), `too_frequent` (10009), `system_error` (70001, after
processing, as the real engine may have accepted it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from aiohttp import web

from tests.fakes.exchange_server import FakeExchangeServer

UPDATE_PATHS = {"/v1/user/spot/order:POST", "/v1/user/spot/cancel_order:POST", "/v1/user/spot/cancel_orders:POST"}
FAULT_KINDS = ("timeout", "drop", "429", "500_html", "503_html", "maintenance", "busy", "too_frequent",
               "system_error")
BODY_FAULT_CODES = {"maintenance": 10007, "busy": 10008, "too_frequent": 10009}
OPENING = {("buy", "long"), ("sell", "short")}
JSON_BODY = web.RequestKey("json_body", dict)


class FaultPlan:
    """Which request gets which fault: scripted per endpoint, or drawn from a seeded RNG (reproducible)."""

    def __init__(self, seed: int = 0, rate: float = 0.0, kinds: Iterable[str] = FAULT_KINDS,
                 endpoints: Iterable[str] | None = None):
        self.rng = random.Random(seed)
        self.rate = rate
        self.kinds = tuple(kinds)
        self.endpoints = set(endpoints) if endpoints is not None else None
        self.scripted: dict[str, deque[str]] = {}
        self.injected: list[tuple[str, str]] = []

    def script(self, endpoint: str, *faults: str) -> None:
        """Queue faults for the next requests to `endpoint` ("/v1/user/spot/order:POST")."""
        for fault in faults:
            if fault not in FAULT_KINDS and fault != "ok":
                raise ValueError(f"unknown fault {fault!r}; known: {FAULT_KINDS}")
        self.scripted.setdefault(endpoint, deque()).extend(faults)

    def next(self, endpoint: str) -> str | None:
        queue = self.scripted.get(endpoint)
        fault: str | None = None
        if queue:
            fault = queue.popleft()
        elif self.rate and (self.endpoints is None or endpoint in self.endpoints) and self.rng.random() < self.rate:
            fault = self.rng.choice(self.kinds)
        if fault == "ok":
            fault = None
        if fault:
            self.injected.append((endpoint, fault))
        return fault


def dec(text: Any) -> Decimal:
    return Decimal(str(text))


def fmt(value: Decimal | None, digits: int | None = None) -> str | None:
    if value is None:
        return None
    if digits is not None:
        value = value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_DOWN)
    return format(value, "f")


@dataclass
class Bitbank:
    """The fake's account and matching-engine state (tests read and set it directly)."""

    api_key: str = "fake-key"
    api_secret: str = "fake-secret"
    clock_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    plan: FaultPlan = field(default_factory=FaultPlan)
    timeout_sleep: float = 0.6
    enforce_rate_limits: bool = True
    amount_digits: int = 4
    price_digits: int = 0
    unit_amount: Decimal = Decimal("0.0001")
    min_amount: Decimal = Decimal("0.0001")
    exchange_status: str = "NORMAL"
    margin_state: str = "NORMAL"
    margin_ratio: Decimal | None = None  # total_margin_balance_percentage; None = no positions
    margin_call_percentage: Decimal = Decimal("80")
    losscut_percentage: Decimal = Decimal("50")
    circuit_break: bool = False
    taker_fee: Decimal = Decimal("0.001")
    maker_fee: Decimal = Decimal("0")
    partial_fills: deque[Decimal] = field(default_factory=deque)  # fraction filled by the next market fills
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)  # every accepted create body, as received
    rejected: list[tuple[str, int]] = field(default_factory=list)  # (endpoint, code) of every error answer
    log: list[dict[str, Any]] = field(default_factory=list)  # method, path_qs, headers (no secret here)
    last_nonce: int = 0
    next_order_id: int = 1000
    next_trade_id: int = 1
    bar_ts: int = 0
    _window: dict[str, deque[float]] = field(default_factory=lambda: {"update": deque(), "query": deque()})

    # ---------------------------------------------------------------- auth
    def check_auth(self, method: str, raw_target: str, body: str, headers: Any) -> int | None:
        """The error code bitbank would answer for these credentials, or None if accepted."""
        key = headers.get("ACCESS-KEY")
        if not key:
            return 20003
        if key != self.api_key:
            return 20002
        payload = raw_target if method == "GET" else body
        signature = headers.get("ACCESS-SIGNATURE", "")
        if "ACCESS-REQUEST-TIME" in headers or "ACCESS-TIME-WINDOW" in headers:
            text_time = headers.get("ACCESS-REQUEST-TIME")
            if text_time is None:
                return 20033
            text_window = headers.get("ACCESS-TIME-WINDOW", "5000")
            if not text_time.isdigit():
                return 20037
            if not text_window.isdigit() or not 1 <= int(text_window) <= 60_000:
                return 20038
            now, request_time, window = self.clock_ms(), int(text_time), int(text_window)
            if not request_time < now + 1000:
                return 20034
            if not now - request_time <= window:
                return 20035
            prefix = text_time + text_window
        elif "ACCESS-NONCE" in headers:
            nonce = headers["ACCESS-NONCE"]
            if not nonce.isdigit():
                return 20004
            prefix = nonce
        else:
            return 20036
        expected = hmac.new(self.api_secret.encode(), (prefix + payload).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return 20005
        if "ACCESS-REQUEST-TIME" not in headers:
            if int(prefix) <= self.last_nonce:
                return 20039
            self.last_nonce = int(prefix)
        return None

    def over_rate_limit(self, klass: str) -> bool:
        now = time.monotonic()
        window = self._window[klass]
        while window and now - window[0] >= 1.0:
            window.popleft()
        window.append(now)
        limit = 6 if klass == "update" else 10
        return self.enforce_rate_limits and len(window) > limit

    # ---------------------------------------------------------------- views
    def position(self, side: str, pair: str = "btc_jpy") -> Decimal:
        return self.positions.get((pair, side), {}).get("open_amount", Decimal(0))

    def order_view(self, order: dict[str, Any]) -> dict[str, Any]:
        view = {
            "order_id": order["order_id"], "pair": order["pair"], "side": order["side"],
            "position_side": order["position_side"], "type": order["type"],
            "start_amount": fmt(order["start_amount"]), "remaining_amount": fmt(order["remaining_amount"]),
            "executed_amount": fmt(order["executed_amount"]), "average_price": fmt(order["average_price"]),
            "user_cancelable": True, "ordered_at": order["ordered_at"], "expire_at": None,
            "status": order["status"],
        }
        if order["price"] is not None:
            view["price"] = fmt(order["price"])
        if order["trigger_price"] is not None:
            view["trigger_price"] = fmt(order["trigger_price"])
            if order.get("triggered_at"):
                view["triggered_at"] = order["triggered_at"]
        if order["type"] == "limit":
            view["post_only"] = order["post_only"]
        if order.get("canceled_at"):
            view["canceled_at"] = order["canceled_at"]
        return view

    def active(self) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["status"] in ("INACTIVE", "UNFILLED", "PARTIALLY_FILLED")]

    # ---------------------------------------------------------------- orders
    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """(error code or 0, order view) for a create-order body."""
        for name, code in (("pair", 30009), ("side", 30013), ("type", 30015)):
            if name not in body:
                return code, None
        pair, side, otype = body["pair"], body["side"], body["type"]
        pside = body.get("position_side")
        if pair != "btc_jpy":
            return 40017, None
        if side not in ("buy", "sell"):
            return 40021, None
        if otype not in ("limit", "market", "stop", "stop_limit", "take_profit", "stop_loss"):
            return 40024, None
        if pside is None:
            return 60001, None  # spot order: this fake account holds no spot balance
        if pside not in ("long", "short"):
            return 40164, None
        if self.exchange_status == "HALT":
            return 70004, None
        if "amount" not in body and otype not in ("take_profit", "stop_loss"):
            return 30001, None
        if otype in ("stop", "stop_limit", "take_profit", "stop_loss") and "trigger_price" not in body:
            return 30101, None
        if otype in ("limit", "stop_limit") and "price" not in body:
            return 30012, None
        if body.get("post_only") is not None and otype != "limit":
            return 40114, None
        if otype == "market" and self.circuit_break:
            return 70020, None
        opening = (side, pside) in OPENING
        if opening and otype in ("stop", "stop_limit"):
            return 40200, None
        if opening and self.margin_state != "NORMAL":
            return 50059, None
        q = Decimal(1).scaleb(-self.amount_digits)
        amount = dec(body["amount"]).quantize(q, rounding=ROUND_DOWN) if "amount" in body else None
        if amount is not None:
            if amount < self.unit_amount:
                return 60004, None
            if amount < self.min_amount:
                return 70010, None
            if not opening and amount > self.position(pside, pair):
                return 50062, None
        if len(self.active()) >= 30:
            return 60011, None
        self.next_order_id += 1
        order = {
            "order_id": self.next_order_id, "pair": pair, "side": side, "position_side": pside, "type": otype,
            "start_amount": amount, "remaining_amount": amount, "executed_amount": Decimal(0),
            "average_price": Decimal(0), "price": dec(body["price"]) if "price" in body else None,
            "trigger_price": dec(body["trigger_price"]) if "trigger_price" in body else None,
            "post_only": bool(body.get("post_only", False)) and not self.circuit_break,
            "ordered_at": self.clock_ms(), "status": "INACTIVE" if "trigger_price" in body else "UNFILLED",
            "placed_bar": self.bar_ts,
        }
        self.orders[order["order_id"]] = order
        self.created.append(dict(body))
        return 0, self.order_view(order)

    def cancel(self, pair: str, order_id: int) -> tuple[int, dict[str, Any] | None]:
        order = self.orders.get(order_id)
        if order is None or order["pair"] != pair:
            return 50009, None
        if order["status"] == "FULLY_FILLED":
            return 50027, None
        if order["status"].startswith("CANCELED"):
            return 50026, None
        order["status"] = "CANCELED_PARTIALLY_FILLED" if order["executed_amount"] else "CANCELED_UNFILLED"
        order["canceled_at"] = self.clock_ms()
        return 0, self.order_view(order)

    # ---------------------------------------------------------------- matching engine
    def feed_bar(self, o: float, h: float, low: float, c: float, ts: int | None = None) -> None:
        """One bar of market data: market orders fill at its open, stops on its range, then limits.

        When a stop and a limit of the same position are both inside the bar, the stop goes first (the
        backtest's rule). Closing fills never exceed the position; the rest is cancelled.
        """
        self.bar_ts = ts if ts is not None else self.bar_ts + 1
        bo, bh, bl = dec(o), dec(h), dec(low)
        for order in sorted(self.active(), key=lambda x: x["order_id"]):
            if order["type"] == "market" and order["placed_bar"] < self.bar_ts:
                share = self.partial_fills.popleft() if self.partial_fills else Decimal(1)
                qty = (order["remaining_amount"] * share).quantize(Decimal(1).scaleb(-self.amount_digits),
                                                                   rounding=ROUND_DOWN)
                self._fill(order, qty if qty > 0 else order["remaining_amount"], bo, "taker")
        for kind in ("stop", "limit"):
            for order in sorted(self.active(), key=lambda x: x["order_id"]):
                if order["type"] != kind or order["placed_bar"] >= self.bar_ts:
                    continue
                if kind == "stop":
                    t = order["trigger_price"]
                    if order["side"] == "sell" and bl <= t:
                        order["triggered_at"] = self.clock_ms()
                        self._fill(order, order["remaining_amount"], min(bo, t), "taker")
                    elif order["side"] == "buy" and bh >= t:
                        order["triggered_at"] = self.clock_ms()
                        self._fill(order, order["remaining_amount"], max(bo, t), "taker")
                else:
                    p = order["price"]
                    if order["side"] == "sell" and bh >= p:
                        self._fill(order, order["remaining_amount"], max(bo, p), "maker")
                    elif order["side"] == "buy" and bl <= p:
                        self._fill(order, order["remaining_amount"], min(bo, p), "maker")

    def _fill(self, order: dict[str, Any], qty: Decimal, price: Decimal, maker_taker: str) -> None:
        key = (order["pair"], order["position_side"])
        pos = self.positions.setdefault(key, {"open_amount": Decimal(0), "average_price": Decimal(0)})
        opening = (order["side"], order["position_side"]) in OPENING
        profit = Decimal(0)
        if not opening:
            qty = min(qty, pos["open_amount"])
            if qty <= 0:
                order["status"] = "CANCELED_PARTIALLY_FILLED" if order["executed_amount"] else "CANCELED_UNFILLED"
                order["canceled_at"] = self.clock_ms()
                return
            sign = 1 if order["position_side"] == "long" else -1
            profit = sign * (price - pos["average_price"]) * qty
            pos["open_amount"] -= qty
        else:
            total = pos["open_amount"] + qty
            pos["average_price"] = (pos["average_price"] * pos["open_amount"] + price * qty) / total
            pos["open_amount"] = total
        done = order["executed_amount"]
        order["average_price"] = (order["average_price"] * done + price * qty) / (done + qty)
        order["executed_amount"] = done + qty
        order["remaining_amount"] -= qty
        order["status"] = "FULLY_FILLED" if order["remaining_amount"] <= 0 else "PARTIALLY_FILLED"
        if not opening and order["remaining_amount"] > 0 and pos["open_amount"] <= 0:
            order["status"] = "CANCELED_PARTIALLY_FILLED"
            order["canceled_at"] = self.clock_ms()
        rate = self.maker_fee if maker_taker == "maker" else self.taker_fee
        self.trades.append({
            "trade_id": self.next_trade_id, "pair": order["pair"], "order_id": order["order_id"],
            "side": order["side"], "position_side": order["position_side"], "type": order["type"],
            "amount": fmt(qty), "price": fmt(price), "maker_taker": maker_taker, "fee_amount_base": "0",
            "fee_amount_quote": "0", "fee_occurred_amount_quote": fmt(rate * qty * price, 4),
            "profit_loss": fmt(profit, 4), "interest": "0", "executed_at": self.clock_ms(),
        })
        self.next_trade_id += 1


class FakeBitbankServer(FakeExchangeServer):
    """The fake exchange with bitbank's private REST API, checked signatures and a seeded fault plan."""

    def __init__(self, **state: Any) -> None:
        super().__init__()
        self.bank = Bitbank(**state)

    @property
    def private_url(self) -> str:
        return self.url + "/v1"

    def feed_bar(self, o: float, h: float, low: float, c: float, ts: int | None = None) -> None:
        """Feed one bar to the matching engine (on the server's loop, so no request sees half a bar)."""
        self.on_loop(lambda: self.bank.feed_bar(o, h, low, c, ts))

    def _middlewares(self) -> list[Any]:
        return [*super()._middlewares(), self._private]

    def _add_routes(self, app: web.Application) -> None:
        super()._add_routes(app)
        r = app.router
        r.add_get("/v1/spot/status", self.spot_status)
        r.add_get("/v1/user/assets", self.assets)
        r.add_get("/v1/user/margin/status", self.margin_status)
        r.add_get("/v1/user/margin/positions", self.margin_positions)
        r.add_post("/v1/user/spot/order", self.create_order)
        r.add_get("/v1/user/spot/order", self.get_order)
        r.add_post("/v1/user/spot/cancel_order", self.cancel_order)
        r.add_post("/v1/user/spot/cancel_orders", self.cancel_orders)
        r.add_post("/v1/user/spot/orders_info", self.orders_info)
        r.add_get("/v1/user/spot/active_orders", self.active_orders)
        r.add_get("/v1/user/spot/trade_history", self.trade_history)
        r.add_get("/btc_jpy/ticker", self.ticker)
        r.add_route("*", "/user/{tail:.*}", self.missing_v1)

    # ---------------------------------------------------------------- middleware: faults, auth, limits
    @web.middleware
    async def _private(self, request: web.Request, handler: Any) -> web.StreamResponse:
        bank = self.bank
        private = request.path.startswith("/v1/user/")
        if not private and not request.path.startswith("/v1/spot/"):
            return await handler(request)
        endpoint = f"{request.path}:{request.method}"
        body = (await request.read()).decode()
        bank.log.append({"method": request.method, "target": request.raw_path, "headers": dict(request.headers),
                         "body": body})
        klass = "update" if endpoint in UPDATE_PATHS else "query"
        if bank.over_rate_limit(klass):
            bank.rejected.append((endpoint, 429))
            return web.json_response({"success": 0, "data": {"code": 10009}}, status=429)
        fault = bank.plan.next(endpoint)
        if fault == "timeout":
            await asyncio.sleep(bank.timeout_sleep)
            return web.json_response({"success": 0, "data": {"code": 10005}})
        if fault == "429":
            return web.Response(status=429, text="<html><body>429 Too Many Requests</body></html>",
                                content_type="text/html")
        if fault in ("500_html", "503_html"):
            return web.Response(status=int(fault[:3]), text="<html><body>bad gateway</body></html>",
                                content_type="text/html")
        if fault in BODY_FAULT_CODES:
            return web.json_response({"success": 0, "data": {"code": BODY_FAULT_CODES[fault]}})
        if private:
            code = bank.check_auth(request.method, request.raw_path, body, request.headers)
            if code is not None:
                bank.rejected.append((endpoint, code))
                return web.json_response({"success": 0, "data": {"code": code}}, status=400)
        request[JSON_BODY] = json.loads(body) if body else {}
        response = await handler(request)
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()  # processed, but the client never hears back
        if fault == "system_error":
            return web.json_response({"success": 0, "data": {"code": 70001}})
        return response

    @staticmethod
    def ok(data: Any) -> web.Response:
        return web.json_response({"success": 1, "data": data})

    def error(self, request: web.Request, code: int) -> web.Response:
        self.bank.rejected.append((f"{request.path}:{request.method}", code))
        return web.json_response({"success": 0, "data": {"code": code}}, status=400)

    # ---------------------------------------------------------------- routes
    async def missing_v1(self, request: web.Request) -> web.Response:
        return self.error(request, 20018)

    async def bitbank_pairs(self, request: web.Request) -> web.Response:
        b = self.bank
        pair = {
            "name": "btc_jpy", "base_asset": "btc", "quote_asset": "jpy",
            "maker_fee_rate_base": "0", "taker_fee_rate_base": "0", "maker_fee_rate_quote": fmt(b.maker_fee),
            "taker_fee_rate_quote": fmt(b.taker_fee), "margin_open_maker_fee_rate_quote": fmt(b.maker_fee),
            "margin_open_taker_fee_rate_quote": fmt(b.taker_fee), "margin_close_maker_fee_rate_quote": fmt(b.maker_fee),
            "margin_close_taker_fee_rate_quote": fmt(b.taker_fee), "margin_long_interest": "0.0004",
            "margin_short_interest": "0.0004", "unit_amount": fmt(b.unit_amount), "limit_max_amount": "1000",
            "market_max_amount": "10", "market_allowance_rate": "0.2", "price_digits": b.price_digits,
            "amount_digits": b.amount_digits, "is_enabled": True, "stop_order": False,
            "stop_order_and_cancel": False, "stop_market_order": False, "stop_stop_order": False,
            "stop_stop_limit_order": False, "stop_margin_long_order": False, "stop_margin_short_order": False,
            "stop_buy_order": False, "stop_sell_order": False,
        }
        return self.ok({"pairs": [pair]})

    async def spot_status(self, request: web.Request) -> web.Response:
        b = self.bank
        return self.ok({"statuses": [{"pair": "btc_jpy", "status": b.exchange_status,
                                      "min_amount": fmt(b.min_amount)}]})

    async def ticker(self, request: web.Request) -> web.Response:
        return self.ok({"sell": "15001000", "buy": "15000000", "high": "15100000", "low": "14900000",
                        "open": "14950000", "last": "15000500", "vol": "123.4567", "timestamp": self.bank.clock_ms()})

    async def assets(self, request: web.Request) -> web.Response:
        return self.ok({"assets": [
            {"asset": "jpy", "free_amount": "1000000.0000", "amount_precision": 4, "onhand_amount": "1000000.0000",
             "locked_amount": "0.0000", "withdrawing_amount": "0.0000", "stop_deposit": False,
             "stop_withdrawal": False, "collateral_ratio": "1"},
            {"asset": "btc", "free_amount": "0.00000000", "amount_precision": 8, "onhand_amount": "0.00000000",
             "locked_amount": "0.00000000", "withdrawing_amount": "0.00000000", "stop_deposit": False,
             "stop_withdrawal": False, "collateral_ratio": "0.8"},
        ]})

    async def margin_status(self, request: web.Request) -> web.Response:
        b = self.bank
        has = any(p["open_amount"] > 0 for p in b.positions.values())
        ratio = b.margin_ratio if b.margin_ratio is not None else (Decimal("250.00") if has else None)
        return self.ok({
            "status": b.margin_state, "total_margin_balance_percentage": fmt(ratio, 2),
            "total_margin_balance": "1000000.0000", "margin_position_profit_loss": "0.0000",
            "unrealized_cost": "0.0000", "total_margin_position_product": "0.0000",
            "open_margin_position_product": "0.0000", "open_margin_order_product": "0.0000",
            "total_position_maintenance_margin": "0.0000", "total_long_position_maintenance_margin": "0.0000",
            "total_short_position_maintenance_margin": "0.0000", "total_open_order_maintenance_margin": "0.0000",
            "total_long_open_order_maintenance_margin": "0.0000",
            "total_short_open_order_maintenance_margin": "0.0000",
            "margin_call_percentage": fmt(b.margin_call_percentage, 0) if ratio is not None else None,
            "losscut_percentage": fmt(b.losscut_percentage, 0) if ratio is not None else None,
            "buy_credit": "1000000.0000", "sell_credit": "1000000.0000",
            "available_balances": [{"pair": "btc_jpy", "long": "1000000.0000", "short": "1000000.0000"}],
        })

    async def margin_positions(self, request: web.Request) -> web.Response:
        positions = [
            {"pair": pair, "position_side": side, "open_amount": fmt(p["open_amount"]),
             "product": fmt(p["open_amount"] * p["average_price"], 4), "average_price": fmt(p["average_price"], 0),
             "unrealized_fee_amount": "0", "unrealized_interest_amount": "0"}
            for (pair, side), p in self.bank.positions.items() if p["open_amount"] > 0
        ]
        return self.ok({"notice": {"what": None, "occurred_at": None, "amount": None, "due_date_at": None},
                        "payables": {"amount": "0"}, "positions": positions,
                        "losscut_threshold": {"individual": "0", "company": "0"}})

    async def create_order(self, request: web.Request) -> web.Response:
        code, view = self.bank.create(request[JSON_BODY])
        return self.error(request, code) if code else self.ok(view)

    async def get_order(self, request: web.Request) -> web.Response:
        q = request.query
        if "order_id" not in q:
            return self.error(request, 30006)
        order = self.bank.orders.get(int(q["order_id"]))
        if order is None or order["pair"] != q.get("pair"):
            return self.error(request, 50009)
        return self.ok(self.bank.order_view(order))

    async def cancel_order(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY]
        code, view = self.bank.cancel(body.get("pair", ""), int(body.get("order_id", 0)))
        return self.error(request, code) if code else self.ok(view)

    async def cancel_orders(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY]
        ids = body.get("order_ids") or []
        if len(ids) > 30:
            return self.error(request, 40015)
        views = [v for v in (self.bank.cancel(body.get("pair", ""), int(i))[1] for i in ids) if v is not None]
        return self.ok({"orders": views})

    async def orders_info(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY]
        orders = [self.bank.orders[int(i)] for i in body.get("order_ids", []) if int(i) in self.bank.orders]
        return self.ok({"orders": [self.bank.order_view(o) for o in orders if o["pair"] == body.get("pair")]})

    async def active_orders(self, request: web.Request) -> web.Response:
        q = request.query
        orders = [o for o in self.bank.active() if o["pair"] == q.get("pair", o["pair"])]
        if "since" in q:
            orders = [o for o in orders if o["ordered_at"] >= int(q["since"])]
        if "end" in q:
            orders = [o for o in orders if o["ordered_at"] <= int(q["end"])]
        orders.sort(key=lambda o: -o["order_id"])
        if "count" in q:
            orders = orders[: int(q["count"])]
        return self.ok({"orders": [self.bank.order_view(o) for o in orders]})

    async def trade_history(self, request: web.Request) -> web.Response:
        q = request.query
        trades = [t for t in self.bank.trades if t["pair"] == q.get("pair", t["pair"])]
        if "order_id" in q:
            trades = [t for t in trades if t["order_id"] == int(q["order_id"])]
        if "since" in q:
            trades = [t for t in trades if t["executed_at"] >= int(q["since"])]
        if "end" in q:
            trades = [t for t in trades if t["executed_at"] <= int(q["end"])]
        trades.sort(key=lambda t: t["trade_id"], reverse=q.get("order", "desc") == "desc")
        return self.ok({"trades": trades[: min(int(q.get("count", 1000)), 1000)]})

