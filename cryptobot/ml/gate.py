"""The ML gate's inputs, computed one way for the backtest and the live bot.

A bar whose feature row is not finite (warm-up, a bad bar) has no probability: NaN, which the execution
kernel treats as a closed gate. The threshold is `ml.threshold` when set, else the bundle's own.
"""

from __future__ import annotations

import numpy as np

from cryptobot.config import Config
from cryptobot.ml.bundle import Bundle


def gate_probabilities(bundle: Bundle, features: np.ndarray) -> np.ndarray:
    """P(positive) for each row of a (n, 15) feature matrix in FEATURE_ORDER; NaN where a row is not finite."""
    rows = np.atleast_2d(np.asarray(features, dtype=np.float64))
    out = np.full(rows.shape[0], np.nan)
    ok = np.isfinite(rows).all(axis=1)
    if ok.any():
        out[ok] = bundle.predict_proba(rows[ok])
    return out


def gate_threshold(config: Config, bundle: Bundle) -> float:
    """The probability an entry needs: the config override, else the threshold the bundle was tuned with."""
    return float(config.ml.threshold) if config.ml.threshold is not None else bundle.threshold
