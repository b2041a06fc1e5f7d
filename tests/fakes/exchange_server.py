"""A fake exchange HTTP server on 127.0.0.1 speaking bitbank's public candlestick API and Binance klines.

Real sockets, real HTTP: the real ccxt client is pointed at it by overriding its API URLs. Candles are a
deterministic function of their open time, served up to the current time (wall clock or a fixed `clock_ms`) *including* the still-open
bar (as real exchanges do), so the client's closed-bar filter is exercised. Faults (429, 5xx, timeouts) are
injected per request from a queue; every request is logged for assertions. `tests/fakes/bitbank_server.py`
extends the routes with bitbank's private API.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer

TF_MS = {
    "1min": 60_000, "5min": 300_000, "15min": 900_000, "30min": 1_800_000, "1hour": 3_600_000,
    "4hour": 14_400_000, "8hour": 28_800_000, "12hour": 43_200_000, "1day": 86_400_000,
}
BINANCE_TF_MS = {"1m": 60_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
DAY_MS = 86_400_000


def candle(ts: int, tf_ms: int, base: float) -> tuple[float, float, float, float, float]:
    """Deterministic OHLCV for the bar opening at `ts` (consistent across requests and page boundaries)."""
    k = ts // tf_ms
    o = round(base * (1 + 0.05 * math.sin(k / 37.0)), 0)
    c = round(base * (1 + 0.05 * math.sin((k + 1) / 37.0)), 0)
    spread = round(base * 0.002 * (1 + (k % 5)), 0)
    return o, max(o, c) + spread, min(o, c) - spread, c, round(0.5 + (k % 11) * 0.25, 4)


@dataclass
class FakeExchange:
    """State shared with the tests: fault queue, request log, data range and holes."""

    faults: deque[str] = field(default_factory=deque)
    requests: list[str] = field(default_factory=list)
    first_ms: int = 0  # no data before this
    holes: list[tuple[int, int]] = field(default_factory=list)  # [start, end) ranges with no candles
    delay_seconds: float = 0.0
    timeout_sleep: float = 3.0
    base_price: float = 5_000_000.0
    clock_ms: int | None = None  # a fixed "now" (tests pass the same clock to the downloader); None: wall clock
    table: dict[int, tuple[float, ...]] | None = None  # real bars by open time (a shipped file) instead of `candle`

    def now(self) -> int:
        return int(time.time() * 1000) if self.clock_ms is None else self.clock_ms

    def bars(self, start: int, end: int, tf_ms: int) -> list[tuple[int, tuple[float, ...]]]:
        now = self.now()
        first = max(start, self.first_ms)
        first += (-first) % tf_ms
        out = []
        for ts in range(first, min(end, now + 1), tf_ms):
            if ts > now or any(a <= ts < b for a, b in self.holes):
                continue
            if self.table is not None:
                if ts in self.table:
                    out.append((ts, self.table[ts]))
                continue
            out.append((ts, candle(ts, tf_ms, self.base_price)))
        return out


class FakeExchangeServer(LoopbackServer):
    """Runs the aiohttp app in a background thread; use as a context manager."""

    def __init__(self) -> None:
        super().__init__()
        self.state = FakeExchange()

    def _middlewares(self) -> list[Any]:
        """Subclasses (the fake bitbank) add their own fault/auth layers after this one."""
        return [self._faults]

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{pair}/candlestick/{ctype}/{date}", self.bitbank_candles)
        app.router.add_get("/v1/spot/pairs", self.bitbank_pairs)
        app.router.add_get("/spot/pairs", self.bitbank_pairs)
        app.router.add_get("/api/v3/exchangeInfo", self.binance_exchange_info)
        app.router.add_get("/api/v3/klines", self.binance_klines)

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.state.requests.append(request.path_qs)
        if self.state.delay_seconds:
            await asyncio.sleep(self.state.delay_seconds)
        if self.state.faults:
            fault = self.state.faults.popleft()
            if fault == "429":
                return web.Response(status=429, text="Too Many Requests")
            if fault in {"500", "502", "503"}:
                return web.Response(status=int(fault), text="<html>upstream error</html>", content_type="text/html")
            if fault == "timeout":
                await asyncio.sleep(self.state.timeout_sleep)
        return await handler(request)

    # ---------------------------------------------------------------- bitbank
    async def bitbank_pairs(self, request: web.Request) -> web.Response:
        pair = {
            "name": "btc_jpy", "base_asset": "btc", "quote_asset": "jpy",
            "maker_fee_rate_base": "0", "taker_fee_rate_base": "0",
            "maker_fee_rate_quote": "0", "taker_fee_rate_quote": "0.001",
            "unit_amount": "0.0001", "limit_max_amount": "1000", "market_max_amount": "10",
            "market_allowance_rate": "0.2", "price_digits": 0, "amount_digits": 4,
            "is_enabled": True, "stop_order": False, "stop_order_and_cancel": False,
        }
        return web.json_response({"success": 1, "data": {"pairs": [pair]}})

    async def bitbank_candles(self, request: web.Request) -> web.Response:
        ctype, date = request.match_info["ctype"], request.match_info["date"]
        if request.match_info["pair"] != "btc_jpy" or ctype not in TF_MS:
            return web.json_response({"success": 0, "data": {"code": 10000}})
        tf_ms = TF_MS[ctype]
        yearly = tf_ms >= TF_MS["4hour"]
        if (yearly and len(date) != 4) or (not yearly and len(date) != 8) or not date.isdigit():
            # bitbank's documented paging: YYYYMMDD up to 1hour, YYYY from 4hour
            return web.json_response({"success": 0, "data": {"code": 10000}})
        year = int(date[:4])
        start = _utc_ms(year, 1 if yearly else int(date[4:6]), 1 if yearly else int(date[6:8]))
        end = _utc_ms(year + 1, 1, 1) if yearly else start + DAY_MS
        rows = [[f"{o:.0f}", f"{h:.0f}", f"{lo:.0f}", f"{c:.0f}", f"{v:.4f}", ts]
                for ts, (o, h, lo, c, v) in self.state.bars(start, end, tf_ms)]
        payload = {"candlestick": [{"type": ctype, "ohlcv": rows}], "timestamp": self.state.now()}
        return web.json_response({"success": 1, "data": payload})

    # ---------------------------------------------------------------- binance
    async def binance_exchange_info(self, request: web.Request) -> web.Response:
        symbol = {
            "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8,
            "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True, "ocoAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "permissions": ["SPOT"],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
            ],
        }
        return web.json_response({"timezone": "UTC", "serverTime": self.state.now(), "symbols": [symbol]})

    async def binance_klines(self, request: web.Request) -> web.Response:
        q = request.query
        tf_ms = BINANCE_TF_MS[q["interval"]]
        limit = min(int(q.get("limit", 500)), 1000)
        start = int(q.get("startTime", 0))
        end = int(q.get("endTime", 2**62))
        bars = self.state.bars(start, end + 1, tf_ms)[:limit]
        rows = [[ts, f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", f"{v:.5f}", ts + tf_ms - 1, "0", 1, "0", "0", "0"]
                for ts, (o, h, lo, c, v) in bars]
        return web.json_response(rows)


def _utc_ms(year: int, month: int, day: int) -> int:
    import calendar

    return calendar.timegm((year, month, day, 0, 0, 0)) * 1000
