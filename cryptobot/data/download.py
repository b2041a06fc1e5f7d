"""Download OHLCV history through ccxt into the Parquet store.

One generic pager (ask from `since`, continue after the last bar received) with small per-exchange quirk
overrides, freqtrade-style. bitbank's candlestick endpoint serves one UTC day per request for timeframes up
to 1 hour and one calendar year for 4 hours and more; ccxt's `fetch_ohlcv` always sends a `YYYYMMDD`
segment, so the bitbank pager walks days (or years, overriding the segment with `YYYY`) itself.

Guarantees: resumes after the last stored bar; retries network errors, 429 and 5xx with exponential
back-off; never stores the still-open bar (`now < open + timeframe`); writes the store atomically every few
pages, so an interrupted download leaves a valid file and the next run continues from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import ccxt
import numpy as np
import pandas as pd
from tqdm import tqdm

from cryptobot.cli_errors import UserError
from cryptobot.data.frames import make_frame, ms_to_iso, timeframe_to_ms
from cryptobot.data.store import Store, StoreKey
from cryptobot.timeunits import DAY_MS, HOUR_MS

RETRYABLE = (ccxt.NetworkError, ccxt.RateLimitExceeded, ccxt.ExchangeNotAvailable)


class DownloadError(UserError, RuntimeError):
    """A download that could not complete; what was stored so far stays valid."""


@dataclass
class RetryPolicy:
    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield min(self.backoff_seconds * 2**attempt, self.max_backoff_seconds)


def make_exchange(exchange_id: str, api_urls: dict[str, str] | None = None, timeout_ms: int = 10_000) -> Any:
    """A ccxt client with its rate limiter on; `api_urls` points named APIs at a mirror or a local server."""
    if exchange_id not in ccxt.exchanges:
        raise DownloadError(f"unknown ccxt exchange id {exchange_id!r}; see ccxt.exchanges for the list")
    client = getattr(ccxt, exchange_id)({"enableRateLimit": True, "timeout": timeout_ms})
    if api_urls:
        api = client.urls["api"]
        if isinstance(api, str):
            client.urls["api"] = next(iter(api_urls.values()))
        else:
            for name, url in api_urls.items():
                if name not in api:
                    raise DownloadError(f"{exchange_id} has no API named {name!r}; it has {sorted(api)}")
                api[name] = url
    return client


def call_with_retry(fn: Callable[[], Any], policy: RetryPolicy, what: str, log: Callable[[str], None]) -> Any:
    delays = policy.delays()
    while True:
        try:
            return fn()
        except RETRYABLE as exc:
            delay = next(delays, None)
            if delay is None:
                raise DownloadError(
                    f"{what}: still failing after {policy.attempts} attempts ({type(exc).__name__}: {exc}); "
                    "what was downloaded so far is stored — rerun the same command to resume"
                ) from exc
            log(f"{what}: {type(exc).__name__}, retrying in {delay:.2f}s")
            time.sleep(delay)


class Pager:
    """Generic: request `limit` bars from `since`, then continue after the last bar received."""

    limit = 1000

    def __init__(self, client: Any, symbol: str, timeframe: str):
        self.client, self.symbol, self.timeframe = client, symbol, timeframe
        self.tf_ms = timeframe_to_ms(timeframe)

    def pages(self, since: int, until: int) -> int:
        return max(1, -(-(until - since) // (self.tf_ms * self.limit)))

    def fetch(self, since: int, until: int) -> Iterator[tuple[int, Callable[[], list[list[Any]]]]]:
        """Yield (next since, request) pairs; the caller retries a request and reports the rows back."""
        cursor = since
        while cursor < until:
            start = cursor
            yield start, partial(self.client.fetch_ohlcv, self.symbol, self.timeframe, since=start, limit=self.limit)
            cursor = self.advance(start)

    def advance(self, start: int) -> int:
        last = getattr(self, "_last_seen", None)
        if last is not None and last >= start:
            return last + self.tf_ms
        return start + self.tf_ms * self.limit  # nothing there: skip the empty window

    def seen(self, rows: list[list[Any]]) -> None:
        self._last_seen = max((int(r[0]) for r in rows), default=None)


class BitbankPager(Pager):
    """bitbank: one UTC day per request up to 1h candles, one calendar year from 4h up."""

    def __init__(self, client: Any, symbol: str, timeframe: str):
        super().__init__(client, symbol, timeframe)
        self.yearly = self.tf_ms >= 4 * HOUR_MS

    def _starts(self, since: int, until: int) -> list[int]:
        if self.yearly:
            first = pd.Timestamp(since, unit="ms", tz="UTC").year
            last = pd.Timestamp(until - 1, unit="ms", tz="UTC").year
            return [int(pd.Timestamp(year=y, month=1, day=1, tz="UTC").value // 1_000_000) for y in range(first, last + 1)]
        return list(range(since - since % DAY_MS, until, DAY_MS))

    def pages(self, since: int, until: int) -> int:
        return len(self._starts(since, until))

    def fetch(self, since: int, until: int) -> Iterator[tuple[int, Callable[[], list[list[Any]]]]]:
        for start in self._starts(since, until):
            params = {"yyyymmdd": pd.Timestamp(start, unit="ms", tz="UTC").strftime("%Y")} if self.yearly else {}
            yield start, partial(self.client.fetch_ohlcv, self.symbol, self.timeframe, since=start, params=params)


PAGERS: dict[str, type[Pager]] = {"bitbank": BitbankPager}


@dataclass
class DownloadResult:
    key: StoreKey
    new_rows: int
    total_rows: int
    first_ms: int | None
    last_ms: int | None


def download(
    exchange: str,
    symbol: str,
    timeframe: str,
    since: int,
    until: int | None = None,
    store: Store | None = None,
    client: Any = None,
    retry: RetryPolicy | None = None,
    flush_every: int = 20,
    progress: bool = True,
    now_ms: Callable[[], int] | None = None,
    log: Callable[[str], None] = print,
) -> DownloadResult:
    """Fetch closed bars in [since, until) (until defaults to now) into the store, resuming after the last stored bar."""
    store = store or Store()
    retry = retry or RetryPolicy()
    client = client or make_exchange(exchange)
    clock = now_ms or (lambda: int(time.time() * 1000))
    key = StoreKey(exchange, symbol.upper(), timeframe)
    tf_ms = timeframe_to_ms(timeframe)
    last_stored = store.last_timestamp(key)
    start = since - since % tf_ms
    if last_stored is not None and last_stored + tf_ms > start:
        start = last_stored + tf_ms
        log(f"{key}: resuming after the last stored bar {ms_to_iso(last_stored)}")
    stop = min(until if until is not None else clock(), clock())
    call_with_retry(client.load_markets, retry, f"{exchange}: load markets", log)
    if symbol.upper() not in client.markets:
        raise DownloadError(f"{exchange} has no market {symbol!r}; e.g. {sorted(client.markets)[:5]}")
    pager = PAGERS.get(exchange, Pager)(client, symbol.upper(), timeframe)
    buffer: list[list[Any]] = []
    new_rows = 0

    def flush() -> None:
        nonlocal buffer, new_rows
        if not buffer:
            return
        arr = np.asarray([[float(x) for x in row[:6]] for row in buffer], dtype=np.float64)
        ts = arr[:, 0].astype(np.int64)
        closed = (ts >= start) & (ts < stop) & (ts + tf_ms <= clock())
        if closed.any():
            frame = make_frame(ts[closed], arr[closed, 1:6])
            before = store.last_timestamp(key)
            store.write(key, frame[~frame.index.duplicated(keep="last")].sort_index())
            new_rows += int(np.count_nonzero(ts[closed] > (before if before is not None else -1)))
        buffer = []

    if start >= stop:
        log(f"{key}: already up to date")
    else:
        bar = tqdm(total=pager.pages(start, stop), desc=f"{key}", unit="page", disable=not progress)
        pending = 0
        for page_start, request in pager.fetch(start, stop):
            rows = call_with_retry(request, retry, f"{key}: page from {ms_to_iso(page_start)}", log)
            pager.seen(rows)
            buffer.extend(rows)
            pending += 1
            bar.update(1)
            if pending >= flush_every:
                flush()
                pending = 0
        flush()
        bar.close()
    stored = store.read(key) if store.exists(key) else None
    return DownloadResult(
        key,
        new_rows,
        0 if stored is None else len(stored),
        None if stored is None or stored.empty else int(stored.index[0].value // 1_000_000),
        None if stored is None or stored.empty else int(stored.index[-1].value // 1_000_000),
    )
