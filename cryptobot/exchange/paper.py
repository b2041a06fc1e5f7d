"""Brokers: what the live loop does with a committed decision."""

from __future__ import annotations

from typing import Protocol

from cryptobot.live.state import BarRecord


class Broker(Protocol):
    """Acts on a bar's decision after it is committed; `reconcile` runs at start, before the first decision."""

    name: str

    def reconcile(self, position: float) -> None: ...

    def act(self, record: BarRecord) -> None: ...


class PaperBroker:
    """Paper trading: the shared execution kernel fills the pending orders at the next bar's open (same fees,
    slippage, interest and risk as the backtest), so there is nothing to send and nothing to reconcile."""

    name = "paper"

    def reconcile(self, position: float) -> None:
        return None

    def act(self, record: BarRecord) -> None:
        return None
