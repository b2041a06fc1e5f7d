"""The built-in strategies registered from their kernel declarations (`cryptobot.kernels.strategies.BUILTINS`).

Each declared parameter is read by name from `strategies.<name>.<parameter>`; the few that come from
elsewhere in the config are named in `_FROM_ELSEWHERE`. Importing this module registers them, in order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cryptobot.config import Config
from cryptobot.data.frames import timeframe_to_ms
from cryptobot.features import FEATURE_ORDER, feature_params
from cryptobot.kernels import features as fk
from cryptobot.kernels import strategies as sk
from cryptobot.strategies.registry import ParamsFn, StrategySpec, register

ValueFn = Callable[[Config, int], float]

# Parameters that are not a field of the strategy's own config section: (config, base timeframe ms) -> value.
_FROM_ELSEWHERE: dict[str, dict[str, ValueFn]] = {
    "multi_timeframe": {
        "base_ms": lambda cfg, ms: float(ms),
        "htf_ms": lambda cfg, ms: float(timeframe_to_ms(cfg.data.higher_timeframe)),
        "htf_ema_period": lambda cfg, ms: float(cfg.features.ema_slow),
        "htf_atr_period": lambda cfg, ms: float(cfg.features.atr_period),
    },
}


def _feature_warmup(cfg: Config, *names: str) -> int:
    w = fk.features_warmup(feature_params(cfg.features))
    return int(max(w[FEATURE_ORDER.index(n)] for n in names))


def _higher_timeframe_warmup(cfg: Config, ms: int) -> int:
    htf_bars = cfg.features.ema_slow + cfg.strategies.multi_timeframe.trend_lookback + 1
    return int(-(-htf_bars * timeframe_to_ms(cfg.data.higher_timeframe) // ms))


_WARMUP: dict[str, Callable[[Config, int], int]] = {
    "atr_based": lambda cfg, ms: _feature_warmup(cfg, "atr_14", "bb_position", "rsi_14"),
    "mochipoy_alert": lambda cfg, ms: max(_feature_warmup(cfg, "ema_50", "macd", "atr_14"),
                                          cfg.strategies.mochipoy_alert.rci_period - 1),
    "multi_timeframe": _higher_timeframe_warmup,
    "donchian_channel": lambda cfg, ms: _feature_warmup(cfg, "channel_position", "volume_ratio", "atr_14") + 1,
    "adx_trend_strength": lambda cfg, ms: _feature_warmup(cfg, "adx_14", "volume_ratio", "atr_14") + 1,
    "ema_cross": lambda cfg, ms: cfg.strategies.ema_cross.slow,
}


def _packer(layout: sk.Layout) -> ParamsFn:
    """Config → parameter vector, each declared parameter by its name."""
    elsewhere = _FROM_ELSEWHERE.get(layout.name, {})

    def params(cfg: Config, base_ms: int) -> np.ndarray:
        section = getattr(cfg.strategies, layout.name)
        return np.array([elsewhere[n](cfg, base_ms) if n in elsewhere else float(getattr(section, n))
                         for n in layout.P._fields], dtype=np.float64)

    return params


def _register(layout: sk.Layout, core: object, step: object, size: Callable[[np.ndarray], int]) -> None:
    name = layout.name
    register(StrategySpec(
        name=name,
        step=step,
        params=_packer(layout),
        state_size=lambda p: int(size(p)),
        warmup=_WARMUP[name],
        enabled=lambda cfg: bool(getattr(cfg.strategies, name).enabled),
        weight=lambda cfg: float(getattr(cfg.strategies, name).weight),
        layout=layout,
        core=core,
    ))


for _builtin in sk.BUILTINS:
    _register(*_builtin)
