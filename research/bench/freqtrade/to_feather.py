"""Turn the bench CSV into freqtrade's futures data files (run with the freqtrade venv's python).

`python to_feather.py bars.csv USER_DATA` writes, with freqtrade's own feather data handler, under
USER_DATA/data/binance/futures/:
  BTC_USDT_USDT-1m-futures.feather       the 1m bars themselves (same floats as the CSV)
  BTC_USDT_USDT-1h-mark.feather          1h mark candles resampled from them (binance's mark_ohlcv_timeframe; futures
                                          backtests load them)
  BTC_USDT_USDT-1h-funding_rate.feather  a zero funding rate every hour (required too; zero = no funding cost,
                                          as in cryptobot's bench: margin_interest_daily 0)
"""

import sys
from pathlib import Path

import pandas as pd
from freqtrade.data.history import get_datahandler
from freqtrade.enums import CandleType

csv, user_data = Path(sys.argv[1]), Path(sys.argv[2])
pair = "BTC/USDT:USDT"
bars = pd.read_csv(csv)
bars["date"] = pd.to_datetime(bars.pop("timestamp"), utc=True).astype("datetime64[ms, UTC]")
bars = bars[["date", "open", "high", "low", "close", "volume"]]
mark = (bars.set_index("date").resample("1h")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).reset_index())
funding = pd.DataFrame({"date": mark["date"], "funding_rate": 0.0})

(user_data / "data" / "binance" / "futures").mkdir(parents=True, exist_ok=True)
handler = get_datahandler(user_data / "data" / "binance", "feather")
handler.ohlcv_store(pair, "1m", bars, CandleType.FUTURES)
handler.ohlcv_store(pair, "1h", mark, CandleType.MARK)
handler.ohlcv_store(pair, "1h", funding, CandleType.FUNDING_RATE)
print(f"{len(bars):,} bars {bars['date'].iloc[0]} .. {bars['date'].iloc[-1]}, {len(mark)} mark/funding rows")
