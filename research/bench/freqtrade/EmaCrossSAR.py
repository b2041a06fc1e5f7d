"""The backtest bench's rules in freqtrade: EMA(10)/EMA(30) of close, stop and reverse on every cross.

Golden cross (EMA10 crosses above EMA30 at a bar's close): exit a short, enter long; death cross: exit a
long, enter short; freqtrade fills both at the next bar's open and, with shorting enabled, reverses on the
same bar (backtesting runs its per-bar loop a second time when a position closed and the opposite signal
is present). Fixed size of 1 unit of the base currency (stake = rate × 1 at leverage 1), 5 % stop-loss
from the entry price, no ROI exit, no trailing stop; fee 0.1 % is passed with --fee.
"""

import pandas as pd
import talib
from freqtrade.strategy import IStrategy
from pandas import DataFrame


class EmaCrossSAR(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1m"
    can_short = True
    stoploss = -0.05
    minimal_roi = {"0": 1000.0}  # never: exits are crosses and the stop only
    trailing_stop = False
    use_exit_signal = True
    exit_profit_only = False
    ignore_roi_if_entry_signal = False
    process_only_new_candles = True
    startup_candle_count = 0  # the whole file is backtested; EMAs are NaN (no signal) until bar 30, as ours

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        close = dataframe["close"].to_numpy(dtype=float)
        diff = pd.Series(talib.EMA(close, 10) - talib.EMA(close, 30), index=dataframe.index)
        prev = diff.shift(1)
        dataframe["golden"] = ((diff > 0) & (prev <= 0)).astype(int)
        dataframe["death"] = ((diff < 0) & (prev >= 0)).astype(int)
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["enter_long"] = dataframe["golden"]
        dataframe["enter_short"] = dataframe["death"]
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["exit_long"] = dataframe["death"]
        dataframe["exit_short"] = dataframe["golden"]
        return dataframe

    def custom_stake_amount(self, pair: str, current_time, current_rate: float, proposed_stake: float,
                            min_stake: float | None, max_stake: float, leverage: float, entry_tag: str | None,
                            side: str, **kwargs) -> float:
        return current_rate * 1.0  # 1 unit of BTC at leverage 1

    def leverage(self, pair: str, current_time, current_rate: float, proposed_leverage: float,
                 max_leverage: float, entry_tag: str | None, side: str, **kwargs) -> float:
        return 1.0
