"""The 15 model features (seed spec §3): names and order, the batch wrapper and the live stepper.

`FEATURE_ORDER` is the one constant written into every model bundle and checked at load. The numbers come
from `cryptobot.kernels.features`; this module only converts pandas ↔ numpy and names columns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cryptobot.config import FeaturesConfig
from cryptobot.data.frames import ohlcv_arrays
from cryptobot.kernels import features as nb
from cryptobot.prefault import populated

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


def layout_digest(shape: str) -> str:
    """Digest of a kernel layout (`nb.derive(...).shape`): saved states carry it, another layout is refused."""
    return hashlib.sha256(shape.encode()).hexdigest()[:16]


LAYOUT_DIGEST = layout_digest(nb.derive(nb.PARAMS, nb.STATE, nb.BUFFERS).shape)


def feature_params(params: FeaturesConfig | None = None) -> np.ndarray:
    """The kernel's parameter vector: each declared parameter (`nb.PARAMS`) read from the config field of its name."""
    cfg = params or FeaturesConfig()
    return np.array([float(getattr(cfg, name)) for name, _ in nb.PARAMS], dtype=np.float64)


def feature_warmups(params: FeaturesConfig | None = None) -> dict[str, int]:
    """Per feature: leading bars that are NaN (its first valid value's index) on gap-free input."""
    w = nb.features_warmup(feature_params(params))
    return {name: int(w[i]) for i, name in enumerate(FEATURE_ORDER)}


def compute_features(ohlcv: pd.DataFrame, params: FeaturesConfig | None = None) -> pd.DataFrame:
    """All 15 features in one fused numba pass; same index as the input, NaN during warm-up.

    The close and volume columns are the input's own (copy-on-write) unless a bar was skipped.
    """
    p = feature_params(params)
    o, h, lo, c, v = ohlcv_arrays(ohlcv)
    columns = nb.feature_columns(c.shape[0])
    with populated(columns):
        bad = nb.features_batch_into(nb.features_init(p), p, o, h, lo, c, v, columns)
    if bad:  # a skipped bar has NaN features, its close and volume included
        close, volume = (pd.Series(nb.input_column(x, o, h, lo, c, v), index=ohlcv.index) for x in (c, v))
    else:  # the inputs themselves, shared copy-on-write (pandas copies when either side is modified)
        close, volume = ohlcv["close"].astype(np.float64), ohlcv["volume"].astype(np.float64)
    data = dict(zip(FEATURE_ORDER, (close, volume, *columns), strict=True))
    return pd.DataFrame(data, index=ohlcv.index, copy=False)


def require_layout(found: str, expected: str, what: str, kind: str = "layout") -> None:
    """Refuse a saved state made by another kernel layout (its values would be read at wrong offsets).

    The one check for every kernel's saved state: features, strategies, execution.
    """
    if found != expected:
        raise ValueError(f"saved {what} has {kind} {found or 'none'!r}, this version uses {expected!r}; "
                         "rebuild the state from history")


def check_layout(saved: Mapping[str, Any], what: str) -> None:
    """Refuse a saved state made by another feature-kernel layout."""
    require_layout(str(np.asarray(saved.get("layout", ""))), LAYOUT_DIGEST, what, "feature layout")


class FeatureStepper:
    """Features one closed bar at a time, for the live adapter: O(1) per bar, one numba call, no allocation.

    `get_state()` returns plain arrays the live adapter persists; `set_state()` restores them, and the
    continuation is identical to an uninterrupted run.
    """

    def __init__(self, params: FeaturesConfig | None = None):
        self.params = feature_params(params)
        self._layout = nb.feature_layout(self.params)
        self._state = nb.features_init(self.params)
        self._out = np.empty(nb.N_FEATURES, dtype=np.float64)
        self.warmup = int(nb.features_warmup(self.params).max())

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> np.ndarray:
        """Features of this bar in FEATURE_ORDER, as a new array the caller owns."""
        return self.update_into(open, high, low, close, volume).copy()

    def update_into(self, open: float, high: float, low: float, close: float, volume: float) -> np.ndarray:
        """Like `update` without allocating: returns the internal buffer, which the next call overwrites."""
        nb.features_step(self._state, self.params, self._layout, open, high, low, close, volume, self._out)
        return self._out

    @property
    def bars_seen(self) -> int:
        return int(self._state[nb.FS.bars])

    @property
    def ready(self) -> bool:
        return self.bars_seen > self.warmup

    def get_state(self) -> dict[str, np.ndarray]:
        """Parameters, state and the kernel's layout digest (a state is only valid for the layout that made it)."""
        return {"layout": np.array(LAYOUT_DIGEST), "params": self.params.copy(), "state": self._state.copy()}

    def set_state(self, saved: dict[str, np.ndarray]) -> None:
        check_layout(saved, "feature state")
        params = np.asarray(saved["params"], dtype=np.float64)
        state = np.asarray(saved["state"], dtype=np.float64)
        if params.shape != self.params.shape or not np.array_equal(params, self.params):
            raise ValueError("saved feature state was made with other feature parameters; rebuild it from history")
        if state.shape != self._state.shape:
            raise ValueError(f"saved feature state has {state.size} values, expected {self._state.size}")
        self._state = state.copy()
