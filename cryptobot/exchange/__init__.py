"""Exchange adapters for the live loop: closed bars from public market data, and brokers that act on decisions.

`cryptobot.exchange.public.ClosedBars` reads bars through ccxt's public API with the exchange's clock deciding which bars are closed;
`cryptobot.exchange.paper.PaperBroker` acts on nothing outside (the execution kernel simulates its fills). A real-money broker
implements the same `Broker` protocol and plugs into the same loop. Import the submodules directly: a
replay needs no network client (ccxt is slow to import).
"""
