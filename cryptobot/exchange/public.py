"""Closed bars from an exchange's public API through ccxt, on the exchange's clock.

A bar is closed when the exchange's own time (bitbank: the `timestamp` of the candlestick response; else
the HTTP `Date` header) has reached its open time + timeframe — never by the local clock alone, which may
drift. Pages are requested with the data layer's pagers (bitbank: one UTC day per request up to 1h
candles, one year from 4h). Errors propagate: the loop retries the whole fetch later, so a failed request
delays a decision and never skips a bar.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import numpy as np

from cryptobot.data.download import PAGERS, Pager, make_exchange
from cryptobot.data.frames import make_frame, timeframe_to_ms
from cryptobot.data.validate import validate_frame

Bar = tuple[int, float, float, float, float, float]


class ClosedBars:
    """`after(ts)`: the closed bars opening after `ts`, in order; `latest(n)`: the last n closed bars."""

    def __init__(self, exchange: str, symbol: str, timeframe: str, api_urls: dict[str, str] | None = None,
                 timeout_ms: int = 10_000, client: Any = None):
        self.client = client or make_exchange(exchange, api_urls or None, timeout_ms=timeout_ms)
        self.client.enableLastJsonResponse = True  # the response body carries the exchange's time
        self.exchange, self.symbol, self.timeframe = exchange, symbol.upper(), timeframe
        self.tf_ms = timeframe_to_ms(timeframe)
        self.exchange_ms: int | None = None  # the exchange's time at the last response
        self._markets = False

    def _response_time(self) -> int:
        body = getattr(self.client, "last_json_response", None)
        if isinstance(body, dict):
            data = body.get("data")
            if isinstance(data, dict) and isinstance(data.get("timestamp"), (int, float)):
                return int(data["timestamp"])
        headers = getattr(self.client, "last_response_headers", None) or {}
        date = next((v for k, v in headers.items() if k.lower() == "date"), None)
        if date:
            return int(email.utils.parsedate_to_datetime(date).timestamp() * 1000)
        return int(time.time() * 1000)

    def _pager(self) -> Pager:
        if not self._markets:
            self.client.load_markets()
            self._markets = True
        return PAGERS.get(self.exchange, Pager)(self.client, self.symbol, self.timeframe)

    def now(self) -> int:
        """The exchange's current time (one small request; the local clock only picks the page)."""
        guess = self.exchange_ms or int(time.time() * 1000)
        pager = self._pager()
        _, request = next(iter(pager.fetch(guess - guess % self.tf_ms, guess + 1)))
        request()
        self.exchange_ms = self._response_time()
        return self.exchange_ms

    def after(self, after_ts: int) -> list[Bar]:
        """Closed bars with open time > `after_ts`, validated, in time order (empty when none closed yet)."""
        now = self.now()
        start = after_ts + self.tf_ms
        if start + self.tf_ms > now:
            return []
        rows: dict[int, list[Any]] = {}
        pager = self._pager()
        for _, request in pager.fetch(start, now + 1):
            page = request()
            pager.seen(page)
            now = max(now, self._response_time())
            for r in page:
                ts = int(r[0])
                if ts >= start and ts + self.tf_ms <= now:
                    rows[ts] = r
        self.exchange_ms = now
        return self._validated([rows[t] for t in sorted(rows)])

    def latest(self, count: int) -> list[Bar]:
        """The last `count` closed bars (a fresh state's warm-up history)."""
        now = self.now()
        last_closed = now - now % self.tf_ms - self.tf_ms
        return self.after(last_closed - count * self.tf_ms)[-count:]

    def _validated(self, rows: list[list[Any]]) -> list[Bar]:
        if not rows:
            return []
        arr = np.asarray([[float(x) for x in r[:6]] for r in rows], dtype=np.float64)
        frame = make_frame(arr[:, 0].astype(np.int64), arr[:, 1:6])
        validate_frame(frame, source=f"{self.exchange} {self.symbol} {self.timeframe} (live)",
                       timeframe=self.timeframe).raise_for_errors()
        return [(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in arr]
