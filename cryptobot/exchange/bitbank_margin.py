"""bitbank REST client for BTC/JPY margin trading (ccxt has no bitbank margin).

One method per endpoint, named after it, parameters spelled as the API spells them. Every response's
`data` comes back with decimal strings as `Decimal`. The traps that cost the seed bot real money are made
impossible here: GET requests are signed over `/v1` + path + query exactly as sent and POST requests over
the exact body bytes sent (one serialisation, signed and transmitted); the stop trigger is sent as
`trigger_price`; an order without `position_side` (which bitbank would silently place as a *spot* order) and
a protective order without its trigger are refused before anything leaves the machine.

Errors raise `BitbankError` with the numeric `.code` (None for transport failures) and a `.category`:
`retry` (transient; queries and cancels are retried here with back-off, order submissions never are),
`fail` (this request is refused; do not resend it unchanged) or `halt` (stop trading and alert a human).
`.maybe_executed` says whether an order submission may have reached the matching engine, so the caller
must look the order up before sending anything again. Secrets never appear in reprs, logs or exceptions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import requests

log = logging.getLogger(__name__)

DEFAULT_PRIVATE_URL = "https://api.bitbank.cc/v1"
DEFAULT_PUBLIC_URL = "https://public.bitbank.cc"
MAX_TIME_WINDOW_MS = 60_000
UPDATE_PER_SECOND = 6  # new order, cancel (bitbank's UPDATE class)
QUERY_PER_SECOND = 10  # everything else (QUERY class)
MAX_IDS_PER_CANCEL = 30

ORDER_TYPES = frozenset({"limit", "market", "stop", "stop_limit", "take_profit", "stop_loss"})
TRIGGER_TYPES = frozenset({"stop", "stop_limit", "take_profit", "stop_loss"})
PRICE_TYPES = frozenset({"limit", "stop_limit"})
AMOUNT_OPTIONAL_TYPES = frozenset({"take_profit", "stop_loss"})
TERMINAL_STATUSES = frozenset({"FULLY_FILLED", "CANCELED_UNFILLED", "CANCELED_PARTIALLY_FILLED", "REJECTED"})


class Category(StrEnum):
    """What the caller should do about an error (bitbank-api.md §6, collapsed to three actions)."""

    RETRY = "retry"
    FAIL = "fail"
    HALT = "halt"


def _codes(*items: int | range) -> frozenset[int]:
    out: set[int] = set()
    for item in items:
        out.update(item if isinstance(item, range) else (item,))
    return frozenset(out)


RETRY_CODES = _codes(10001, 10003, 10005, 10008, 10009, 20034, 20035, 20039, 50010, 70001, 70002, 70003,
                     70011, 70012, 70019)
HALT_CODES = _codes(10007, 20001, 20002, 20003, 40165, range(50003, 50007), 50008, 50058, 50079, 50081,
                    70004, 70013, 70017, 70018)
# Codes after which an order submission may nevertheless have been accepted: look it up before resending.
UNCERTAIN_CODES = _codes(10001, 10003, 10005, 70001, 70002, 70003, 70012)
# Codes that say "not processed, try again later": safe to resend even an order submission.
NOT_PROCESSED_CODES = _codes(10008, 10009, 20034, 20035, 20039, 70011)

CODE_MEANINGS: dict[int, str] = {
    10000: "URL not found", 10001: "system error", 10002: "malformed request", 10003: "system error",
    10005: "timed out waiting for a response", 10007: "system maintenance", 10008: "server busy",
    10009: "requests too frequent", 20001: "API authorisation failed", 20002: "invalid ACCESS-KEY",
    20003: "ACCESS-KEY missing", 20004: "ACCESS-NONCE missing", 20005: "invalid signature",
    20018: "URL lacks /v1", 20019: "URL lacks /v1", 20033: "ACCESS-REQUEST-TIME missing",
    20034: "request time not acceptable (clock)", 20035: "not received within the time window",
    20036: "neither request time nor nonce", 20037: "invalid ACCESS-REQUEST-TIME",
    20038: "invalid ACCESS-TIME-WINDOW", 20039: "nonce not increasing", 30001: "amount missing",
    30006: "order id missing", 30007: "order id array missing", 30009: "pair missing", 30012: "price missing",
    30013: "side missing", 30015: "type missing", 30101: "trigger price missing", 40001: "invalid amount",
    40017: "invalid pair", 40020: "invalid price", 40021: "invalid side", 40024: "invalid type",
    40112: "invalid trigger price", 40114: "post_only not allowed for this type",
    40164: "invalid position_side", 40165: "pair not tradable on margin",
    40200: "a stop order cannot open a position", 50003: "account restricted", 50009: "order not found",
    50010: "order cannot be cancelled", 50026: "order already cancelled", 50027: "order already executed",
    50058: "margin account review not completed", 50059: "new margin orders restricted",
    50060: "new margin orders restricted", 50061: "exceeds amount available for opening",
    50062: "exceeds position size", 50079: "margin closing orders unavailable",
    50081: "margin closing orders unavailable", 60001: "insufficient holdings", 60004: "size below minimum",
    60011: "more than 30 open orders", 60016: "trigger price above limit",
    60018: "trigger would fire immediately", 60019: "TP/SL not in closing direction",
    70004: "trading suspended", 70009: "market orders restricted", 70010: "minimum size raised temporarily",
    70011: "busy, retry", 70013: "orders and cancels restricted", 70017: "pair suspended",
    70018: "pair suspended", 70019: "cancel already in progress", 70020: "market orders restricted (circuit break)",
    70024: "long opening restricted", 70025: "short opening restricted", 70026: "orders temporarily restricted",
}


def wall_ms() -> int:
    """Current Unix time in milliseconds (bitbank's request time, order and trade timestamps)."""
    return int(time.time() * 1000)


def category_of(code: int) -> Category:
    """Category of a bitbank body error code; an unknown code is `fail` (refuse, never resend unchanged)."""
    if code in RETRY_CODES:
        return Category.RETRY
    if code in HALT_CODES:
        return Category.HALT
    return Category.FAIL


class BitbankError(Exception):
    """A refused or failed request. `code` is bitbank's error code, None for transport failures."""

    def __init__(self, message: str, *, code: int | None, category: Category, endpoint: str,
                 http_status: int | None = None, maybe_executed: bool = False):
        super().__init__(message)
        self.code = code
        self.category = category
        self.endpoint = endpoint
        self.http_status = http_status
        self.maybe_executed = maybe_executed

    def __repr__(self) -> str:
        return (f"BitbankError(code={self.code}, category={self.category.value}, endpoint={self.endpoint!r}, "
                f"http_status={self.http_status}, maybe_executed={self.maybe_executed})")


_DECIMAL_TEXT = re.compile(r"^-?\d+(\.\d+)?$")


def to_decimals(value: Any) -> Any:
    """Recursively turn every decimal string (and JSON float) into `Decimal`; ids and timestamps stay int."""
    if isinstance(value, str) and _DECIMAL_TEXT.match(value):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list):
        return [to_decimals(v) for v in value]
    if isinstance(value, dict):
        return {k: to_decimals(v) for k, v in value.items()}
    return value


def _decimal_text(value: Decimal | str | int | float, field: str) -> str:
    """Decimal text as bitbank wants it in requests (a string, no exponent)."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{field}={value!r} is not a number") from exc
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{field}={value!r} must be a positive finite number")
    return format(number, "f")


class RateLimiter:
    """Sliding one-second window per request class: waits instead of letting the exchange answer 429.

    The window is `1 + margin` seconds long because the exchange counts arrivals, and network jitter can
    bring two requests sent one second apart closer together.
    """

    def __init__(self, per_second: int, monotonic: Callable[[], float], sleep: Callable[[float], None],
                 margin: float = 0.05):
        self.per_second = per_second
        self.window = 1.0 + margin
        self._monotonic = monotonic
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            while True:
                now = self._monotonic()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < self.per_second:
                    self._sent.append(now)
                    return
                self._sleep(self.window - (now - self._sent[0]))


class BitbankMarginClient:
    """Synchronous client for bitbank's private REST API (margin via `position_side`) and its status calls.

    `auth` chooses the signing method: "time_window" (default; ACCESS-REQUEST-TIME + ACCESS-TIME-WINDOW) or
    "nonce" (ACCESS-NONCE, strictly increasing, serialised). Queries and cancels that fail with a `retry`
    error are retried up to `max_retries` times with exponential back-off (`backoff_seconds` · 2^n, capped at
    `max_backoff_seconds`); order submissions are sent once.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        private_url: str = DEFAULT_PRIVATE_URL,
        public_url: str = DEFAULT_PUBLIC_URL,
        time_window_ms: int = 5000,
        *,
        auth: Literal["time_window", "nonce"] = "time_window",
        timeout_seconds: float = 10.0,
        max_retries: int = 4,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        clock_ms: Callable[[], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ):
        if not api_key or not api_secret:
            raise ValueError("bitbank API key and secret are required (CRYPTOBOT__EXCHANGE__API_KEY / _SECRET)")
        if not 1 <= time_window_ms <= MAX_TIME_WINDOW_MS:
            raise ValueError(f"time_window_ms={time_window_ms} must be in 1..{MAX_TIME_WINDOW_MS} (bitbank's maximum)")
        if auth not in ("time_window", "nonce"):
            raise ValueError(f"auth={auth!r} must be 'time_window' or 'nonce'")
        self._api_key = api_key
        self._api_secret = api_secret.encode()
        self.private_url = private_url.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self._private_prefix = urlsplit(self.private_url).path  # "/v1": part of every signed GET path
        self.time_window_ms = time_window_ms
        self.auth = auth
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._clock_ms = clock_ms or wall_ms
        self._sleep = sleep
        self._limiters = {
            "update": RateLimiter(UPDATE_PER_SECOND, monotonic, sleep),
            "query": RateLimiter(QUERY_PER_SECOND, monotonic, sleep),
        }
        self._session = session or requests.Session()
        self._nonce_lock = threading.Lock()
        self._last_nonce = 0
        self._pairs: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"BitbankMarginClient(private_url={self.private_url!r}, auth={self.auth!r}, api_key=<hidden>)"

    # ------------------------------------------------------------------ signing
    def sign(self, prefix: str, payload: str) -> str:
        """HMAC-SHA256 hex of `prefix + payload` (prefix = time+window or nonce; payload = path or body)."""
        return hmac.new(self._api_secret, (prefix + payload).encode(), hashlib.sha256).hexdigest()

    def _auth_headers(self, payload: str) -> dict[str, str]:
        headers = {"ACCESS-KEY": self._api_key, "Content-Type": "application/json"}
        if self.auth == "nonce":
            with self._nonce_lock:
                self._last_nonce = max(self._last_nonce + 1, self._clock_ms())
                prefix = str(self._last_nonce)
            headers["ACCESS-NONCE"] = prefix
        else:
            request_time = str(self._clock_ms())
            window = str(self.time_window_ms)
            headers["ACCESS-REQUEST-TIME"] = request_time
            headers["ACCESS-TIME-WINDOW"] = window
            prefix = request_time + window
        headers["ACCESS-SIGNATURE"] = self.sign(prefix, payload)
        return headers

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, params: Mapping[str, Any] | None, *, signed: bool,
                 klass: Literal["update", "query"], base: str | None = None, retry: bool = True) -> Any:
        """Send one call (with bounded retries of `retry` errors when `retry`), return `data` as Decimals."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        attempts = 1 + (self.max_retries if retry else 0)
        for attempt in range(attempts):
            try:
                return self._send_once(method, path, clean, signed=signed, klass=klass, base=base)
            except BitbankError as exc:
                if exc.category is not Category.RETRY or attempt == attempts - 1:
                    raise
                delay = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt)
                if exc.http_status == 429 or exc.code == 10009:
                    # the limits count per second: waiting less than the window cannot help
                    delay = max(1.0, min(self.max_backoff_seconds, delay * 2))
                log.warning("bitbank %s; retry %d/%d in %.2fs", exc, attempt + 1, attempts - 1, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _send_once(self, method: str, path: str, params: dict[str, Any], *, signed: bool,
                   klass: Literal["update", "query"], base: str | None) -> Any:
        root = base or self.private_url
        headers: dict[str, str] = {"Content-Type": "application/json"}
        body: bytes | None = None
        if method == "GET":
            query = urlencode(params)
            target = path + ("?" + query if query else "")
            if signed:
                headers = self._auth_headers(self._private_prefix + target)
        else:
            text = json.dumps(params, separators=(",", ":"))
            body = text.encode()  # the bytes signed are the bytes sent
            target = path
            if signed:
                headers = self._auth_headers(text)
        update = klass == "update"
        self._limiters[klass].acquire()
        endpoint = f"{method} {path}"
        try:
            response = self._session.request(method, root + target, data=body, headers=headers,
                                             timeout=self.timeout_seconds)
        except requests.Timeout:
            raise BitbankError(f"{endpoint}: timed out after {self.timeout_seconds}s", code=None,
                               category=Category.RETRY, endpoint=endpoint, maybe_executed=update) from None
        except requests.RequestException as exc:
            raise BitbankError(f"{endpoint}: transport error ({type(exc).__name__})", code=None,
                               category=Category.RETRY, endpoint=endpoint, maybe_executed=update) from None
        return self._parse(response, endpoint, update)

    @staticmethod
    def _parse(response: requests.Response, endpoint: str, update: bool) -> Any:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or "success" not in payload:
            # proxy / HTML error page: a transport error; an update may or may not have reached the engine
            category = Category.RETRY if status == 429 or status >= 500 else Category.FAIL
            raise BitbankError(f"{endpoint}: HTTP {status} with a non-JSON body", code=None, category=category,
                               endpoint=endpoint, http_status=status, maybe_executed=update and status >= 500)
        if payload.get("success") == 1:
            return to_decimals(payload.get("data"))
        data = payload.get("data") or {}
        code = int(data.get("code", 0)) if isinstance(data, dict) else 0
        meaning = CODE_MEANINGS.get(code, "unknown error code")
        category = Category.RETRY if status == 429 else category_of(code)
        maybe = update and code in UNCERTAIN_CODES
        raise BitbankError(f"{endpoint}: bitbank error {code} ({meaning})", code=code, category=category,
                           endpoint=endpoint, http_status=status, maybe_executed=maybe)

    # ------------------------------------------------------------------ account
    def assets(self) -> Any:
        """GET /user/assets: balances per asset."""
        return self._request("GET", "/user/assets", None, signed=True, klass="query")

    def margin_status(self) -> Any:
        """GET /user/margin/status: maintenance ratio, margin-call/losscut levels, available balances."""
        return self._request("GET", "/user/margin/status", None, signed=True, klass="query")

    def margin_positions(self) -> Any:
        """GET /user/margin/positions: one aggregated entry per (pair, position_side), notices, payables."""
        return self._request("GET", "/user/margin/positions", None, signed=True, klass="query")

    # ------------------------------------------------------------------ orders
    def create_order(self, pair: str, side: str, type: str, amount: Decimal | str | None = None,
                     price: Decimal | str | None = None, position_side: str | None = None,
                     trigger_price: Decimal | str | None = None, post_only: bool | None = None) -> Any:
        """POST /user/spot/order: one margin order, sent exactly once (never retried here).

        Amount is truncated and prices rounded to the pair's precision from `pairs()` before sending. Raises
        ValueError, before anything is sent, for a missing `position_side` (bitbank would place a spot order),
        a trigger type without `trigger_price`, a limit without `price`, `post_only` on a non-limit, or
        `losscut` (the exchange's own liquidation type).
        """
        if side not in ("buy", "sell"):
            raise ValueError(f"side={side!r} must be 'buy' or 'sell'")
        if type not in ORDER_TYPES:
            raise ValueError(f"type={type!r} must be one of {sorted(ORDER_TYPES)}")
        if position_side not in ("long", "short"):
            raise ValueError(f"position_side={position_side!r} must be 'long' or 'short': this is a margin client "
                             "and bitbank would place an order without it as a spot order")
        if type in TRIGGER_TYPES and trigger_price is None:
            raise ValueError(f"type={type!r} needs trigger_price")
        if type in PRICE_TYPES and price is None:
            raise ValueError(f"type={type!r} needs price")
        if type not in PRICE_TYPES and price is not None:
            raise ValueError(f"type={type!r} takes no price")
        if type not in AMOUNT_OPTIONAL_TYPES and amount is None:
            raise ValueError(f"type={type!r} needs amount")
        if post_only is not None and type != "limit":
            raise ValueError("post_only is only allowed with type='limit'")
        body: dict[str, Any] = {"pair": pair, "side": side, "type": type, "position_side": position_side}
        if amount is not None:
            rounded = self.round_amount(pair, amount)
            if rounded <= 0:
                raise ValueError(f"amount={amount} rounds to 0 at {pair}'s amount precision")
            body["amount"] = _decimal_text(rounded, "amount")
        if price is not None:
            body["price"] = _decimal_text(self.round_price(pair, price), "price")
        if trigger_price is not None:
            body["trigger_price"] = _decimal_text(self.round_price(pair, trigger_price), "trigger_price")
        if post_only is not None:
            body["post_only"] = bool(post_only)
        return self._request("POST", "/user/spot/order", body, signed=True, klass="update", retry=False)

    def cancel_order(self, pair: str, order_id: int) -> Any:
        """POST /user/spot/cancel_order (retried on transient errors: cancelling twice is harmless)."""
        return self._request("POST", "/user/spot/cancel_order", {"pair": pair, "order_id": int(order_id)},
                             signed=True, klass="update")

    def cancel_orders(self, pair: str, order_ids: Iterable[int]) -> Any:
        """POST /user/spot/cancel_orders, at most 30 ids per call."""
        ids = [int(i) for i in order_ids]
        if not 1 <= len(ids) <= MAX_IDS_PER_CANCEL:
            raise ValueError(f"cancel_orders takes 1..{MAX_IDS_PER_CANCEL} order ids, got {len(ids)}")
        return self._request("POST", "/user/spot/cancel_orders", {"pair": pair, "order_ids": ids},
                             signed=True, klass="update")

    def order(self, pair: str, order_id: int) -> Any:
        """GET /user/spot/order: one order (50009 once finished more than 3 months ago)."""
        return self._request("GET", "/user/spot/order", {"pair": pair, "order_id": int(order_id)},
                             signed=True, klass="query")

    def orders_info(self, pair: str, order_ids: Iterable[int]) -> Any:
        """POST /user/spot/orders_info: several orders (a query although it is a POST)."""
        return self._request("POST", "/user/spot/orders_info",
                             {"pair": pair, "order_ids": [int(i) for i in order_ids]}, signed=True, klass="query")

    def active_orders(self, pair: str, **filters: Any) -> Any:
        """GET /user/spot/active_orders; filters: count, from_id, end_id, since, end (ms)."""
        return self._request("GET", "/user/spot/active_orders", {"pair": pair, **filters}, signed=True,
                             klass="query")

    def trade_history(self, pair: str, **filters: Any) -> Any:
        """GET /user/spot/trade_history; filters: count (≤ 1000), order_id, since, end (ms), order (asc/desc)."""
        return self._request("GET", "/user/spot/trade_history", {"pair": pair, **filters}, signed=True,
                             klass="query")

    # ------------------------------------------------------------------ exchange (no auth)
    def spot_status(self) -> Any:
        """GET /spot/status: per pair `status` (NORMAL/BUSY/VERY_BUSY/HALT) and the current `min_amount`."""
        return self._request("GET", "/spot/status", None, signed=False, klass="query")

    def pairs(self) -> Any:
        """GET /spot/pairs: precision, minimum size, fees and suspension flags; refreshes the rounding cache."""
        data = self._request("GET", "/spot/pairs", None, signed=False, klass="query")
        self._pairs = {p["name"]: p for p in data.get("pairs", [])}
        return data

    def ticker(self, pair: str) -> Any:
        """GET {public}/{pair}/ticker: best bid/ask (the spread check)."""
        return self._request("GET", f"/{pair}/ticker", None, signed=False, klass="query", base=self.public_url)

    # ------------------------------------------------------------------ precision and size
    def pair_info(self, pair: str) -> dict[str, Any]:
        """The pair's settings from `pairs()` (fetched once, refreshed by calling `pairs()`)."""
        if pair not in self._pairs:
            self.pairs()
        if pair not in self._pairs:
            raise ValueError(f"pair {pair!r} is not listed by bitbank's /spot/pairs")
        return self._pairs[pair]

    def round_amount(self, pair: str, amount: Decimal | str | int | float) -> Decimal:
        """Truncate to the pair's `amount_digits` (never more than asked; bitbank truncates too)."""
        digits = int(self.pair_info(pair)["amount_digits"])
        return Decimal(_decimal_text(amount, "amount")).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_DOWN)

    def round_price(self, pair: str, price: Decimal | str | int | float) -> Decimal:
        """Round to the nearest tick of the pair's `price_digits`."""
        digits = int(self.pair_info(pair)["price_digits"])
        return Decimal(_decimal_text(price, "price")).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)

    def min_amount(self, pair: str) -> Decimal:
        """Current minimum order size: the larger of `unit_amount` and `spot_status()`'s `min_amount`.

        `min_amount` rises under load, so it is read fresh on every call.
        """
        unit = Decimal(self.pair_info(pair)["unit_amount"])
        for entry in self.spot_status().get("statuses", []):
            if entry.get("pair") == pair:
                return max(unit, Decimal(entry["min_amount"]))
        return unit

    def exchange_status(self, pair: str) -> str:
        """`spot_status()`'s status for `pair` (NORMAL, BUSY, VERY_BUSY, HALT; UNLISTED if absent)."""
        for entry in self.spot_status().get("statuses", []):
            if entry.get("pair") == pair:
                return str(entry["status"])
        return "UNLISTED"
