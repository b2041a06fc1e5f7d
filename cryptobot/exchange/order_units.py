"""Orders as units on bitbank margin: an entry with its stop-loss and take-profit, sent and tracked together.

bitbank has no OCO, no client order id and no reduce-only flag, and the seed bot paid for each of these
(plain-limit stops read as new positions, orphan stops after a take-profit, a restart that forgot a
position and doubled it). The rules here:

- The stop-loss is always `type="stop"` with `trigger_price` (market on trigger; never a plain limit, never
  stop_limit); the take-profit is a limit in the closing direction. `position_side` is always explicit.
- Protective orders are placed once the entry has filled (a stop cannot open a position) and resized when
  a partial fill grows the position; when one of them fills, the other is cancelled; protective orders
  whose position is gone are cancelled, ours or not.
- One position at a time: never long and short together; no entry while the exchange holds a position
  this unit book does not know, or when the margin account is not NORMAL or its maintenance ratio is too
  close to the margin-call level (`margin_status()` before every entry); no entry below the current
  minimum size (`spot_status()`, it rises under load).
- Every order intent gets our own id and is persisted (`OrderStore`) *before* it is sent. When the answer
  to a submission is lost, the order is looked up by (pair, side, type, position_side, amount, price,
  trigger, time window) before anything is resent; an intent still unresolved after a crash is resolved
  the same way by `sync()`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from cryptobot.exchange.bitbank_margin import (
    TERMINAL_STATUSES,
    BitbankError,
    BitbankMarginClient,
    Category,
    wall_ms,
)

log = logging.getLogger(__name__)

ACTIVE_STATUSES = frozenset({"INACTIVE", "UNFILLED", "PARTIALLY_FILLED"})
PROTECTIVE_ROLES = ("stop", "take_profit")
CLOSE_SIDE = {"long": "sell", "short": "buy"}
OPEN_SIDE = {"long": "buy", "short": "sell"}


class EntryRefused(Exception):
    """An entry was not sent; `reason` says why (the bar loop records it and skips the bar)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class OrderIntent:
    """One order we mean to have on the exchange; `order_id` is known once bitbank has confirmed it.

    status: new → sending → placed | rejected | not_placed. `sending` survives a crash or a lost answer and
    means "look it up before doing anything else".
    """

    intent_id: str
    unit_id: str
    role: str  # entry | stop | take_profit | exit
    pair: str
    side: str
    type: str
    position_side: str
    amount: Decimal
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    status: str = "new"
    order_id: int | None = None
    created_ms: int = 0
    sent_ms: int | None = None
    error: str | None = None


@dataclass
class OrderUnit:
    """An entry and its protection. state: opening → open → closed (with `reason`)."""

    unit_id: str
    pair: str
    position_side: str
    amount: Decimal
    stop_price: Decimal
    take_profit_price: Decimal | None
    state: str = "opening"
    reason: str | None = None
    intent_ids: list[str] = field(default_factory=list)
    adopted_amount: Decimal = Decimal(0)  # a position found on the exchange and adopted (`--adopt`), no entry order


@dataclass(frozen=True)
class UnitEvent:
    """What `sync()` did or found; `key` is stable per incident so alerts can be deduplicated."""

    level: str  # critical | warning | info
    key: str
    message: str


class OrderStore(Protocol):
    """Durable storage for units and intents; every save must be committed before it returns."""

    def save_intent(self, intent: OrderIntent) -> None: ...
    def load_intents(self) -> list[OrderIntent]: ...
    def save_unit(self, unit: OrderUnit) -> None: ...
    def load_units(self) -> list[OrderUnit]: ...


def to_json(obj: OrderIntent | OrderUnit) -> str:
    return json.dumps({k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(obj).items()})


_DECIMAL_FIELDS = {"amount", "price", "trigger_price", "stop_price", "take_profit_price", "adopted_amount"}


def _from_json(text: str) -> dict[str, Any]:
    data = json.loads(text)
    return {k: (Decimal(v) if k in _DECIMAL_FIELDS and v is not None else v) for k, v in data.items()}


def intent_from_json(text: str) -> OrderIntent:
    return OrderIntent(**_from_json(text))


def unit_from_json(text: str) -> OrderUnit:
    return OrderUnit(**_from_json(text))


class OrderUnits:
    """The unit book for one pair on top of `BitbankMarginClient` and an `OrderStore`.

    `margin_buffer_pct`: no entry while the maintenance ratio is within this many percentage points of the
    margin-call ratio. `lookup_slack_ms`: how far around the send time a lost order is looked for.
    `submit_attempts`: how often a submission refused as "not processed" (busy, 429, or looked up and not
    found) is sent again.
    """

    def __init__(self, client: BitbankMarginClient, store: OrderStore, pair: str = "btc_jpy", *,
                 margin_buffer_pct: Decimal = Decimal("30"), lookup_slack_ms: int = 5_000,
                 submit_attempts: int = 3, retry_delay_seconds: float = 1.0,
                 clock_ms: Callable[[], int] | None = None, sleep: Callable[[float], None] = time.sleep,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.client = client
        self.store = store
        self.pair = pair
        self.margin_buffer_pct = margin_buffer_pct
        self.lookup_slack_ms = lookup_slack_ms
        self.submit_attempts = submit_attempts
        self.retry_delay_seconds = retry_delay_seconds
        self._clock_ms = clock_ms or wall_ms
        self._sleep = sleep
        self._new_id = new_id
        self.hook: Callable[[str, OrderIntent], None] | None = None  # crash tests: called around each send
        self.units = {u.unit_id: u for u in store.load_units()}
        self.intents = {i.intent_id: i for i in store.load_intents()}

    # ------------------------------------------------------------------ queries
    def open_units(self) -> list[OrderUnit]:
        return [u for u in self.units.values() if u.state != "closed"]

    def unit_intents(self, unit: OrderUnit, role: str | None = None) -> list[OrderIntent]:
        found = [self.intents[i] for i in unit.intent_ids if i in self.intents]
        return [i for i in found if role is None or i.role == role]

    def tracked_positions(self) -> dict[str, Decimal]:
        """What the unit book accounts for per side: filled entries minus filled closes of the open units."""
        out = {"long": Decimal(0), "short": Decimal(0)}
        for unit in self.open_units():
            out[unit.position_side] += self._open_amount(unit, self._orders_of(unit))
        return out

    def exchange_positions(self) -> dict[str, Decimal]:
        return self._exchange_positions()

    def _exchange_positions(self) -> dict[str, Decimal]:
        out = {"long": Decimal(0), "short": Decimal(0)}
        for p in self.client.margin_positions().get("positions", []):
            if p.get("pair") == self.pair and p.get("position_side") in out:
                out[p["position_side"]] += Decimal(p["open_amount"])
        return out

    # ------------------------------------------------------------------ entry
    def open(self, position_side: str, amount: Decimal, stop_price: Decimal,
             take_profit_price: Decimal | None = None, *, entry_type: str = "market",
             price: Decimal | None = None) -> OrderUnit:
        """Check the account, persist the unit and its entry intent, then send the entry.

        Raises EntryRefused (nothing sent) when a rule forbids the entry; the unit's stop and take-profit
        follow in `sync()` once the entry has filled.
        """
        if position_side not in OPEN_SIDE:
            raise ValueError(f"position_side={position_side!r} must be 'long' or 'short'")
        if entry_type not in ("market", "limit"):
            raise ValueError(f"entry_type={entry_type!r} must be 'market' or 'limit'")
        long = position_side == "long"
        if take_profit_price is not None and (stop_price < take_profit_price) != long:
            raise ValueError(f"a {position_side} needs stop_price {'<' if long else '>'} take_profit_price, "
                             f"got {stop_price} and {take_profit_price}")
        if price is not None and (stop_price < price) != long:
            raise ValueError(f"stop_price {stop_price} is on the wrong side of the entry price {price}")
        if self.open_units():
            raise EntryRefused("a unit is already open: one position at a time")
        held = self._exchange_positions()
        if any(v > 0 for v in held.values()):
            sides = ", ".join(f"{k} {v}" for k, v in held.items() if v > 0)
            raise EntryRefused(f"the exchange holds a position this bot does not track ({sides}): reconcile first")
        self._check_margin()
        rounded = self.client.round_amount(self.pair, amount)
        minimum = self.client.min_amount(self.pair)
        if rounded < minimum:
            raise EntryRefused(f"amount {rounded} is below the exchange's current minimum {minimum}")
        unit = OrderUnit(self._new_id(), self.pair, position_side, rounded,
                         self.client.round_price(self.pair, stop_price),
                         None if take_profit_price is None else self.client.round_price(self.pair, take_profit_price))
        intent = self._intent(unit, "entry", OPEN_SIDE[position_side], entry_type, rounded,
                              price=None if price is None else self.client.round_price(self.pair, price))
        self.units[unit.unit_id] = unit
        self.store.save_unit(unit)
        try:
            placed = self._submit(intent)
        except BitbankError as exc:
            if intent.status != "sending":
                self._close(unit, f"entry refused: {exc}")
            raise
        if placed is None:
            self._close(unit, f"entry refused: {intent.error}")
        return unit

    def _check_margin(self) -> None:
        status = self.client.margin_status()
        if status.get("status") != "NORMAL":
            raise EntryRefused(f"margin account status is {status.get('status')}, not NORMAL")
        ratio, call = status.get("total_margin_balance_percentage"), status.get("margin_call_percentage")
        if ratio is not None and call is not None and Decimal(ratio) < Decimal(call) + self.margin_buffer_pct:
            raise EntryRefused(f"maintenance ratio {ratio}% is within {self.margin_buffer_pct} points of the "
                               f"margin-call level {call}%")

    def close(self, unit: OrderUnit, reason: str) -> None:
        """Exit the unit's open amount at market; its stop stays until the exit has filled (`sync()`)."""
        if unit.state == "closed":
            return
        remaining = self._open_amount(unit, self._orders_of(unit))
        if remaining <= 0:
            return
        unit.reason = reason
        self.store.save_unit(unit)
        self._submit(self._intent(unit, "exit", CLOSE_SIDE[unit.position_side], "market", remaining))

    # ------------------------------------------------------------------ submission
    def _intent(self, unit: OrderUnit, role: str, side: str, type_: str, amount: Decimal, *,
                price: Decimal | None = None, trigger_price: Decimal | None = None) -> OrderIntent:
        intent = OrderIntent(self._new_id(), unit.unit_id, role, unit.pair, side, type_, unit.position_side,
                             amount, price, trigger_price, created_ms=self._clock_ms())
        unit.intent_ids.append(intent.intent_id)
        self.intents[intent.intent_id] = intent
        self.store.save_intent(intent)  # our id is durable before anything is sent
        self.store.save_unit(unit)
        return intent

    def _submit(self, intent: OrderIntent) -> dict[str, Any] | None:
        """Send once; after a lost answer, look the order up before any resend. None when refused."""
        intent.status, intent.sent_ms = "sending", self._clock_ms()
        self.store.save_intent(intent)
        last: BitbankError | None = None
        for attempt in range(self.submit_attempts):
            if attempt:
                self._sleep(self.retry_delay_seconds * 2 ** (attempt - 1))
            if self.hook is not None:
                self.hook("before_send", intent)
            try:
                order = self.client.create_order(
                    intent.pair, intent.side, intent.type, amount=intent.amount, price=intent.price,
                    position_side=intent.position_side, trigger_price=intent.trigger_price)
            except BitbankError as exc:
                last = exc
                if exc.maybe_executed:
                    found = self._lookup(intent)  # a failing lookup propagates: the intent stays "sending"
                    if found is not None:
                        return self._placed(intent, found)
                    log.warning("order %s (%s) not found after %s: sending again", intent.intent_id, intent.role, exc)
                    continue
                if exc.category is Category.RETRY:
                    continue
                intent.status, intent.error = "rejected", str(exc)
                self.store.save_intent(intent)
                if exc.category is Category.HALT:
                    raise
                return None
            return self._placed(intent, order)
        intent.status, intent.error = "not_placed", str(last)
        self.store.save_intent(intent)
        assert last is not None
        raise last

    def _placed(self, intent: OrderIntent, order: dict[str, Any]) -> dict[str, Any]:
        if self.hook is not None:
            self.hook("after_send", intent)
        intent.status, intent.order_id, intent.error = "placed", int(order["order_id"]), None
        self.store.save_intent(intent)
        return order

    def _lookup(self, intent: OrderIntent) -> dict[str, Any] | None:
        """The exchange's order matching `intent` in its time window and not claimed by another intent."""
        since = (intent.sent_ms or intent.created_ms) - self.lookup_slack_ms
        until = self._clock_ms() + self.lookup_slack_ms
        claimed = {i.order_id for i in self.intents.values() if i.order_id is not None}
        candidates = {o["order_id"]: o for o in self.client.active_orders(intent.pair, since=since).get("orders", [])}
        traded = {t["order_id"] for t in self.client.trade_history(intent.pair, since=since).get("trades", [])}
        missing = sorted(traded - candidates.keys() - claimed)
        if missing:
            for o in self.client.orders_info(intent.pair, missing).get("orders", []):
                candidates[o["order_id"]] = o
        for order_id in sorted(candidates):
            o = candidates[order_id]
            if order_id in claimed or not since <= int(o.get("ordered_at", 0)) <= until:
                continue
            if (o.get("side"), o.get("type"), o.get("position_side")) != (intent.side, intent.type, intent.position_side):
                continue
            if o.get("start_amount") != intent.amount or o.get("price") != intent.price:
                continue
            if o.get("trigger_price") != intent.trigger_price:
                continue
            return o
        return None

    # ------------------------------------------------------------------ every bar
    def sync(self) -> list[UnitEvent]:
        """Resolve unknown submissions, protect fills, cancel siblings and orphans; call on every bar."""
        events = self.resolve()
        positions = self._exchange_positions()
        for unit in self.open_units():
            events += self._sync_unit(unit, positions)
        events += self._cleanup_orphans(positions)
        for e in events:
            log.log(logging.WARNING if e.level != "info" else logging.INFO, "%s", e.message)
        return events

    def resolve(self) -> list[UnitEvent]:
        """Look up every submission whose answer is unknown (lost, or a crash while sending): placed or not."""
        events: list[UnitEvent] = []
        for intent in [i for i in self.intents.values() if i.status == "sending"]:
            found = self._lookup(intent)
            if found is not None:
                self._placed(intent, found)
                events.append(UnitEvent("warning", f"recovered:{intent.intent_id}",
                                        f"{intent.role} order {found['order_id']} found on the exchange after a lost answer"))
            else:
                intent.status, intent.error = "not_placed", "not found on the exchange"
                self.store.save_intent(intent)
        return events

    def submit(self, intent: OrderIntent) -> dict[str, Any] | None:
        """Send an intent that was never sent (status new or not_placed), e.g. after a crash before sending."""
        if intent.status not in ("new", "not_placed"):
            raise ValueError(f"intent {intent.intent_id} is {intent.status}: it must not be sent again")
        return self._submit(intent)

    def forget(self, unit: OrderUnit, reason: str) -> None:
        """Stop tracking a unit without touching the exchange (its position was taken over by an adoption)."""
        self._close(unit, reason)

    def adopt(self, position_side: str, amount: Decimal, stop_price: Decimal,
              take_profit_price: Decimal | None, unit_id: str, stop_order_id: int | None = None) -> OrderUnit:
        """Track a position found on the exchange (the operator's `--adopt`): `sync()` protects it, keeping
        the exchange's stop order `stop_order_id` as the unit's stop when there is one."""
        unit = OrderUnit(unit_id, self.pair, position_side, amount, self.client.round_price(self.pair, stop_price),
                         None if take_profit_price is None else self.client.round_price(self.pair, take_profit_price),
                         state="open", adopted_amount=amount)
        self.units[unit.unit_id] = unit
        self.store.save_unit(unit)
        if stop_order_id is not None:
            intent = self._intent(unit, "stop", CLOSE_SIDE[position_side], "stop", amount, trigger_price=unit.stop_price)
            intent.status, intent.order_id = "placed", int(stop_order_id)
            self.store.save_intent(intent)
        return unit

    def _orders_of(self, unit: OrderUnit) -> dict[str, dict[str, Any]]:
        """intent_id → the exchange's view of that order, for every placed intent of the unit."""
        placed = {i.order_id: i.intent_id for i in self.unit_intents(unit) if i.order_id is not None}
        if not placed:
            return {}
        orders = self.client.orders_info(unit.pair, sorted(placed)).get("orders", [])
        return {placed[o["order_id"]]: o for o in orders if o["order_id"] in placed}

    def _executed(self, unit: OrderUnit, orders: dict[str, dict[str, Any]], *roles: str) -> Decimal:
        adopted = unit.adopted_amount if "entry" in roles else Decimal(0)
        return adopted + sum((Decimal(orders[i.intent_id].get("executed_amount") or 0) for i in self.unit_intents(unit)
                    if i.role in roles and i.intent_id in orders), Decimal(0))

    def _open_amount(self, unit: OrderUnit, orders: dict[str, dict[str, Any]]) -> Decimal:
        return self._executed(unit, orders, "entry") - self._executed(unit, orders, "stop", "take_profit", "exit")

    def _sync_unit(self, unit: OrderUnit, positions: dict[str, Decimal]) -> list[UnitEvent]:
        orders = self._orders_of(unit)
        entries = self.unit_intents(unit, "entry")
        entry_done = all(i.status in ("rejected", "not_placed") or
                         (i.intent_id in orders and orders[i.intent_id]["status"] in TERMINAL_STATUSES)
                         for i in entries)
        filled = self._executed(unit, orders, "entry")
        remaining = self._open_amount(unit, orders)
        if unit.state == "opening" and filled > 0:
            unit.state = "open"
            self.store.save_unit(unit)
        if filled == 0:
            if entry_done:
                self._close(unit, "entry not filled")
                return [UnitEvent("info", f"unfilled:{unit.unit_id}", f"unit {unit.unit_id}: entry ended unfilled")]
            return []
        if remaining <= 0:
            why = next((i.role for i in self.unit_intents(unit) if i.role != "entry" and i.intent_id in orders
                        and orders[i.intent_id]["status"] == "FULLY_FILLED"), "closed")
            self._cancel_active(unit, orders)
            self._close(unit, unit.reason or why)
            return [UnitEvent("info", f"closed:{unit.unit_id}", f"unit {unit.unit_id} closed by {unit.reason}")]
        held = positions.get(unit.position_side, Decimal(0))
        if held < remaining:  # the positions were read before these orders: a fill in between is not a loss
            positions.update(self._exchange_positions())
            held = positions.get(unit.position_side, Decimal(0))
        if held <= 0:
            self._cancel_active(unit, orders)
            self._close(unit, "position gone")
            return [UnitEvent("critical", f"position-gone:{unit.unit_id}",
                              f"unit {unit.unit_id}: the exchange shows no {unit.position_side} position; "
                              "its protective orders were cancelled")]
        events: list[UnitEvent] = []
        target = min(remaining, held)
        events += self._protect(unit, orders, "stop", target)
        if unit.take_profit_price is not None:
            events += self._protect(unit, orders, "take_profit", target)
        return events

    def _protect(self, unit: OrderUnit, orders: dict[str, dict[str, Any]], role: str,
                 target: Decimal) -> list[UnitEvent]:
        """Make sure exactly one active `role` order covers `target`; replace one that covers a different size."""
        active = [i for i in self.unit_intents(unit, role)
                  if i.intent_id in orders and orders[i.intent_id]["status"] in ACTIVE_STATUSES]
        if len(active) == 1 and Decimal(orders[active[0].intent_id].get("remaining_amount") or 0) == target:
            return []
        for intent in active:
            self._cancel(unit.pair, intent.order_id)
        side = CLOSE_SIDE[unit.position_side]
        if role == "stop":
            intent = self._intent(unit, "stop", side, "stop", target, trigger_price=unit.stop_price)
        else:
            intent = self._intent(unit, "take_profit", side, "limit", target, price=unit.take_profit_price)
        try:
            placed = self._submit(intent)
        except BitbankError as exc:
            return [UnitEvent("critical", f"unprotected:{unit.unit_id}:{role}",
                              f"unit {unit.unit_id}: {role} for {target} could not be placed ({exc}); retrying next bar")]
        if placed is None:
            return [UnitEvent("critical", f"unprotected:{unit.unit_id}:{role}",
                              f"unit {unit.unit_id}: {role} for {target} refused: {intent.error}")]
        return [UnitEvent("info", f"protect:{intent.intent_id}", f"unit {unit.unit_id}: {role} {target} placed")]

    def _cancel_active(self, unit: OrderUnit, orders: dict[str, dict[str, Any]]) -> None:
        for intent in self.unit_intents(unit):
            if intent.intent_id in orders and orders[intent.intent_id]["status"] in ACTIVE_STATUSES:
                self._cancel(unit.pair, intent.order_id)

    def _cancel(self, pair: str, order_id: int | None) -> None:
        if order_id is None:
            return
        try:
            self.client.cancel_order(pair, order_id)
        except BitbankError as exc:
            if exc.code not in (50026, 50027):  # already cancelled / already executed: nothing left to cancel
                raise

    def _close(self, unit: OrderUnit, reason: str) -> None:
        unit.state, unit.reason = "closed", reason
        self.store.save_unit(unit)

    def _cleanup_orphans(self, positions: dict[str, Decimal]) -> list[UnitEvent]:
        """Cancel closing-direction orders with no position behind them (ours after a close, or anyone's)."""
        ours_open = {i.order_id for u in self.open_units() for i in self.unit_intents(u) if i.order_id is not None}
        events = []
        for o in self.client.active_orders(self.pair).get("orders", []):
            side, pos_side = o.get("side"), o.get("position_side")
            if pos_side not in CLOSE_SIDE or side != CLOSE_SIDE[pos_side] or o["order_id"] in ours_open:
                continue
            if positions.get(pos_side, Decimal(0)) > 0:
                continue
            self._cancel(self.pair, o["order_id"])
            events.append(UnitEvent("warning", f"orphan:{o['order_id']}",
                                    f"cancelled orphan {o['type']} order {o['order_id']} ({pos_side} position is gone)"))
        return events

