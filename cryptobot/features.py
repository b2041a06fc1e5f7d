"""The 15 model features (seed spec §3): names and order. One constant, written into every model bundle."""

from __future__ import annotations

FEATURE_ORDER: tuple[str, ...] = (
    "close",
    "volume",
    "rsi_14",
    "macd",
    "atr_14",
    "bb_position",
    "ema_20",
    "ema_50",
    "volume_ratio",
    "donchian_high_20",
    "donchian_low_20",
    "channel_position",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
)
