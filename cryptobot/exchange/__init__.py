"""Exchange adapters for the live loop: closed bars from public market data, and brokers that act on decisions.

`ClosedBars` reads bars through ccxt's public API with the exchange's clock deciding which bars are closed;
`PaperBroker` acts on nothing outside (the execution kernel simulates its fills). A real-money broker
implements the same `Broker` protocol and plugs into the same loop.
"""

from cryptobot.exchange.paper import Broker, PaperBroker
from cryptobot.exchange.public import ClosedBars

__all__ = ["Broker", "ClosedBars", "PaperBroker"]
