"""Run the `freqtrade` command line fully offline: exchange markets come from markets.json, not the network.

freqtrade loads the exchange's markets through ccxt at start-up, also for backtesting, and has no
offline mode (maintainers: freqtrade/freqtrade issues 5526, 6077, 12456). This launcher replaces that one
network call (`Exchange._load_async_markets`) with ccxt's `set_markets` on a static market description and
then runs freqtrade's own `main()` unchanged: `python ft_offline.py backtesting --config ... `.
Leverage tiers come from the file freqtrade ships for binance dry-run/backtesting; fees from `--fee`.
"""

import json
import sys
from pathlib import Path

from freqtrade.exchange.exchange import Exchange
from freqtrade.main import main

MARKETS = json.loads((Path(__file__).resolve().parent / "markets.json").read_text())


def _load_markets_offline(self: Exchange, reload: bool = False) -> None:
    self._api_async.set_markets(MARKETS)


Exchange._load_async_markets = _load_markets_offline

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
