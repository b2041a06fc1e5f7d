"""The live broker: the execution kernel's committed decisions sent to bitbank margin as order units.

The kernel decides at a bar's close exactly as in the backtest and paper (entries and signal exits for
the next open, stops and take-profits on the bar's range); this broker makes the exchange hold the same
position: an entry goes out as an `OrderUnits` unit (market entry, then its `stop` with `trigger_price`
and its take-profit once the fill is seen), a signal exit as a market close of the open unit. The
exchange is the truth: after every bar the kernel's position is compared with the exchange's and the
exchange wins (the kernel takes its size, side and average price; the difference is recorded and
alerted), and every `live.reconcile_every_bars` bars (and at start) the active orders and recent trades
are checked for anything the unit book does not know.

Acting is idempotent per bar: order intent ids are derived from the bar's sequence number
(`<seq>.entry.<n>`, `<seq>.exit.<n>`) and persisted in the state database before sending, so a restart
after a crash anywhere re-acts the last committed bar without sending anything twice: an unknown
submission is looked up first, a never-sent one is sent.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np

from cryptobot.config import Config
from cryptobot.exchange.bitbank_margin import BitbankError, BitbankMarginClient
from cryptobot.exchange.order_units import ACTIVE_STATUSES, EntryRefused, OrderIntent, OrderUnits, UnitEvent
from cryptobot.kernels import execution as ex
from cryptobot.live.state import BarRecord, StateStore

Alert = Callable[[str, str, str], None]  # level, dedupe key, message
Difference = tuple[str, str]  # kind, detail (JSON)
EPS = 1e-9


class StartRefused(RuntimeError):
    """`live` must not start (the message says what to do)."""


def pair_of(symbol: str) -> str:
    """ccxt's "BTC/JPY" → bitbank's "btc_jpy"."""
    return symbol.replace("/", "_").lower()


def _tick_round(price: float, up: bool) -> Decimal:
    """A trigger/limit price on the yen tick, rounded so it fires exactly when the kernel's float level would
    on tick prices (a long's stop and a short's take-profit down, the others up)."""
    return Decimal(repr(float(price))).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR)


def _amount(x: float) -> Decimal:
    return Decimal(repr(round(float(x), 8)))


class LiveBroker:
    """Sends the kernel's decisions to bitbank and keeps the kernel's position equal to the exchange's."""

    name = "bitbank"

    def __init__(self, cfg: Config, store: StateStore, client: BitbankMarginClient, alert: Alert,
                 hook: Callable[[str, int], None] | None = None):
        self.cfg, self.store, self.client, self.alert = cfg, store, client, alert
        self.pair = pair_of(cfg.exchange.symbol)
        self._tag: str | None = None
        self._count = 0
        self.units = OrderUnits(client, store, self.pair, new_id=self._new_id, retry_delay_seconds=0.5)
        self._hook = hook
        if hook is not None:
            self.units.hook = self._send_hook
        self.protected = True  # every open position has its stop on the exchange (last known)
        self._seen: set[str] = set()  # foreign orders/trades already recorded and alerted
        self.bar_seq = -1  # the last committed bar: its number names the crash points of the sends it causes

    # ---------------------------------------------------------------- ids and fault injection
    def _new_id(self) -> str:
        if self._tag is None:
            return uuid.uuid4().hex
        self._count += 1
        return f"{self._tag}.{self._count - 1}"

    def _send_hook(self, where: str, intent: OrderIntent) -> None:
        """Crash points around every send, numbered by the last committed bar (the one that caused it)."""
        assert self._hook is not None
        if where == "before_send" and intent.role == "stop":
            self._hook("before_stop", self.bar_seq)
        self._hook(where, self.bar_seq)

    # ---------------------------------------------------------------- positions
    def exchange_position(self) -> tuple[float, float]:
        """(signed size, average price) of the exchange's margin position on the pair."""
        size, value = 0.0, 0.0
        for p in self.client.margin_positions().get("positions", []):
            if p.get("pair") != self.pair:
                continue
            sign = 1.0 if p.get("position_side") == "long" else -1.0
            amount = float(p["open_amount"])
            size += sign * amount
            value += amount * float(p.get("average_price") or 0)
        return size, (value / abs(size) if abs(size) > EPS else math.nan)

    def _tracked(self) -> float:
        t = self.units.tracked_positions()
        return float(t["long"] - t["short"])

    def _active_stop(self, side: str) -> tuple[Decimal, int] | None:
        """(trigger price, order id) of an active stop order protecting `side` on the exchange."""
        for o in self.client.active_orders(self.pair).get("orders", []):
            if o.get("type") == "stop" and o.get("position_side") == side and o.get("status") in ACTIVE_STATUSES:
                return Decimal(o["trigger_price"]), int(o["order_id"])
        return None

    # ---------------------------------------------------------------- start = recovery
    def start(self, st: np.ndarray, last: BarRecord | None, acted: bool, adopt: bool, seq: int | None) -> None:
        """Resolve unknown submissions, finish acting on the last committed bar, then compare the exchange's
        position with what the unit book accounts for: a difference refuses the start unless `adopt`."""
        self.bar_seq = last.seq if last is not None else -1
        for e in self.units.resolve():
            self._alert_event(e)
        if last is not None and not acted:
            self.act(last, st)
        size, avg = self.exchange_position()
        tracked = self._tracked()
        if abs(size - tracked) > EPS:
            detail = json.dumps({"exchange": size, "tracked": tracked, "kernel": float(st[ex.S_POS])})
            if not adopt:
                raise StartRefused(
                    f"the exchange holds a {self.pair} position of {size:+g} BTC but this state accounts for "
                    f"{tracked:+g}; check it on bitbank, then restart with --adopt to take the exchange's position "
                    "(its stop is kept or placed), or close it on the exchange first")
            self._adopt(st, size, avg, seq)
            self.store.record_differences(seq, [("position_adopted", detail)])
            self.alert("warning", "adopted", f"adopted the exchange's position {size:+g} BTC (state had {tracked:+g})")
        self.sync()

    def _adopt(self, st: np.ndarray, size: float, avg: float, seq: int | None) -> None:
        """The unit book takes the exchange's position; its stop is the exchange's active one or the kernel's."""
        for unit in self.units.open_units():
            self.units.forget(unit, "replaced by the exchange's position")
        if abs(size) <= EPS:
            return
        side = "long" if size > 0 else "short"
        found = self._active_stop(side)
        stop, stop_order_id = found if found is not None else (None, None)
        if stop is None and math.isfinite(st[ex.S_SL]) and st[ex.S_POS] * size > 0:
            stop = _tick_round(st[ex.S_SL], up=size < 0)
        if stop is None:
            raise StartRefused(f"--adopt: the exchange's {side} position {abs(size):g} BTC has no stop order and the "
                               "state knows no stop level; place a stop on bitbank (or close the position) first")
        tp = st[ex.S_TP] if st[ex.S_POS] * size > 0 and math.isfinite(st[ex.S_TP]) else None
        self.units.adopt(side, _amount(abs(size)), stop, None if tp is None else _tick_round(tp, up=size > 0),
                         unit_id=f"adopted.{seq}.{int(time.time() * 1000)}", stop_order_id=stop_order_id)

    # ---------------------------------------------------------------- every bar / poll
    def sync(self) -> None:
        """The unit book's per-bar work (protect fills, cancel siblings and orphans), alerted."""
        events = self.units.sync()
        for e in events:
            self._alert_event(e)
        self.protected = not any(e.key.startswith("unprotected:") for e in events) and not any(
            u.state == "open" and not self._stop_placed(u.unit_id) for u in self.units.open_units())

    def _stop_placed(self, unit_id: str) -> bool:
        unit = self.units.units[unit_id]
        return any(i.status == "placed" for i in self.units.unit_intents(unit, "stop"))

    def needs_poll(self) -> bool:
        """An entry waiting for its fill or a position waiting for its stop: sync between bars too."""
        return any(u.state == "opening" or not self._stop_placed(u.unit_id) for u in self.units.open_units())

    def _alert_event(self, e: UnitEvent) -> None:
        self.alert(e.level, e.key, e.message)

    def take_exchange_position(self, st: np.ndarray, size: float, avg: float, close: float,
                               seq: int) -> list[Difference]:
        """After the kernel's step: the exchange's position (read before the step) wins over the kernel's."""
        old = float(st[ex.S_POS])
        if abs(size - old) <= EPS:
            return []
        self._take_position(st, size, avg, close, seq)
        self.alert("warning", f"position:{seq}", f"position differs from the exchange at bar {seq}: state {old:+g}, "
                                                 f"exchange {size:+g}; the exchange's is taken")
        if abs(size - self._tracked()) > EPS:
            try:
                self._adopt(st, size, avg, seq)
            except StartRefused as exc:  # a position nobody protects: /health says so until a stop exists
                self.protected = False
                self.alert("critical", f"unprotected:exchange:{seq}", f"untracked exchange position: {exc}")
        return [("position", json.dumps({"kernel": old, "exchange": size, "exchange_avg_price": avg}))]

    def _take_position(self, st: np.ndarray, size: float, avg: float, close: float, seq: int) -> None:
        old = float(st[ex.S_POS])
        st[ex.S_CASH] += (old - size) * close  # equity at this close is unchanged by the correction
        st[ex.S_POS] = size
        if abs(size) <= EPS:
            st[ex.S_POS] = 0.0
            st[ex.S_SL] = st[ex.S_TP] = math.nan
            st[ex.S_PEND_EXIT] = 0.0
            st[ex.S_INTEREST] = 0.0
        elif old * size <= 0:
            st[ex.S_ENTRY_PRICE] = avg
            st[ex.S_ENTRY_BAR] = seq
            st[ex.S_ENTRY_FEE] = 0.0
            st[ex.S_INTEREST] = 0.0
            found = self._active_stop("long" if size > 0 else "short")
            st[ex.S_SL] = float(found[0]) if found is not None else math.nan
            st[ex.S_TP] = math.nan

    def foreign(self) -> list[Difference]:
        """Active orders and recent trades that belong to no intent of this bot (recorded and alerted once)."""
        ours = {i.order_id for i in self.units.intents.values() if i.order_id is not None}
        out: list[Difference] = []
        for o in self.client.active_orders(self.pair).get("orders", []):
            if o["order_id"] not in ours:
                out.append(("unknown_order", json.dumps({"order_id": o["order_id"], "type": o.get("type"),
                                                         "side": o.get("side"), "position_side": o.get("position_side")})))
        for t in self.client.trade_history(self.pair, count=100).get("trades", []):
            if t["order_id"] not in ours:
                out.append(("unknown_trade", json.dumps({"trade_id": t["trade_id"], "order_id": t["order_id"]})))
        out = [d for d in out if d[1] not in self._seen]
        for kind, detail in out:
            self._seen.add(detail)
            self.alert("warning", f"{kind}:{detail}", f"reconcile: {kind} not placed by this bot: {detail}")
        return out

    # ---------------------------------------------------------------- acting on a committed bar
    def act(self, rec: BarRecord, st: np.ndarray) -> list[str]:
        """Send the bar's orders (idempotent per bar); returns the reasons of orders not sent."""
        skipped: list[str] = []
        for kind, side, amount, _price, reason in rec.orders:
            prefix = f"{rec.seq}.{kind}."
            mine = [i for i in self.units.intents.values() if i.intent_id.startswith(prefix)]
            unit_id = f"{prefix}0"
            if kind == "entry" and unit_id in self.units.units:
                unit = self.units.units[unit_id]
                mine = self.units.unit_intents(unit, "entry")
            if mine:
                for intent in mine:
                    if intent.status in ("new", "not_placed") and self._unit_open(intent.unit_id):
                        self._send(intent)
                continue
            self._tag, self._count = prefix.rstrip("."), 0
            try:
                if kind == "exit":
                    for unit in self.units.open_units():
                        self.units.close(unit, reason)
                else:
                    pos_side = "long" if side > 0 else "short"
                    tp = float(st[ex.S_PEND_TP])
                    self.units.open(pos_side, _amount(amount), _tick_round(st[ex.S_PEND_SL], up=side < 0),
                                    None if not math.isfinite(tp) else _tick_round(tp, up=side > 0),
                                    entry_type="market")
            except EntryRefused as exc:
                skipped.append(exc.reason)
                self.alert("warning", f"entry_refused:{rec.seq}", f"entry at bar {rec.seq} not sent: {exc.reason}")
            except BitbankError as exc:
                skipped.append(str(exc))
                self.alert("critical" if exc.category == "halt" else "warning", f"order_failed:{rec.seq}:{kind}",
                           f"{kind} order at bar {rec.seq} failed: {exc}")
            finally:
                self._tag = None
        return skipped

    def _unit_open(self, unit_id: str) -> bool:
        unit = self.units.units.get(unit_id)
        return unit is not None and unit.state != "closed"

    def _send(self, intent: OrderIntent) -> None:
        try:
            self.units.submit(intent)
        except BitbankError as exc:
            self.alert("warning", f"order_failed:{intent.intent_id}", f"{intent.role} order failed: {exc}")

    # ---------------------------------------------------------------- kill switches from the exchange
    def anomalies(self, bar_open_ms: int, bar_ms: int, now_ms: int) -> list[str]:
        """Exchange status, spread, API latency and data age: the reasons to skip this bar's new decisions."""
        risk = self.cfg.risk
        reasons = []
        status = self.client.exchange_status(self.pair)
        if status != "NORMAL":
            reasons.append(f"exchange_status:{status}")
        started = time.monotonic()
        ticker = self.client.ticker(self.pair)
        latency_ms = (time.monotonic() - started) * 1000
        if latency_ms > risk.max_latency_ms:
            reasons.append(f"latency:{latency_ms:.0f}ms")
        bid, ask = float(ticker.get("buy") or 0), float(ticker.get("sell") or 0)
        mid = (bid + ask) / 2
        if mid <= 0 or (ask - bid) / mid > risk.max_spread:
            reasons.append(f"spread:{(ask - bid) / mid if mid > 0 else float('inf'):.4f}")
        age_bars = (now_ms - (bar_open_ms + bar_ms)) / bar_ms
        if age_bars > risk.max_data_age_bars:
            reasons.append(f"data_age:{age_bars:.1f}bars")
        return reasons


def make_client(cfg: Config) -> BitbankMarginClient:
    """The bitbank client from the config; keys come only from the environment (refused when missing).

    Refused too: settings whose paper fills the exchange cannot reproduce (a post-only entry at the close,
    a reversal that opens while the old position is still being closed)."""
    if cfg.costs.order_type != "market":
        raise StartRefused(f"costs.order_type={cfg.costs.order_type!r}: live sends market entries only; set it to "
                           "market (and backtest with it)")
    if cfg.execution.reverse_on_opposite:
        raise StartRefused("execution.reverse_on_opposite=true: live holds one unit at a time and cannot open the "
                           "opposite side in the bar its close is sent; set it to false (and backtest with it)")
    key, secret = cfg.exchange.api_key, cfg.exchange.api_secret
    if key is None or secret is None or not key.get_secret_value() or not secret.get_secret_value():
        raise StartRefused("live trading needs the API keys in the environment: CRYPTOBOT__EXCHANGE__API_KEY and "
                           "CRYPTOBOT__EXCHANGE__API_SECRET (a key with order + read permissions, no withdrawal)")
    return BitbankMarginClient(key.get_secret_value(), secret.get_secret_value(), private_url=cfg.live.private_url,
                               public_url=cfg.live.public_url, timeout_seconds=cfg.live.fetch_timeout_seconds)

