"""Data sets for the ensemble: the 15 features at every labelled bar, with each label's outcome bar."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptobot.config import Config
from cryptobot.data.frames import timestamps_ms
from cryptobot.data.validate import infer_timeframe
from cryptobot.features import compute_features
from cryptobot.strategies import compute_signals
from research.labels import Labels, fixed_horizon, meta_labels, round_trip_cost, triple_barrier


@dataclass
class Dataset:
    X: np.ndarray
    y: np.ndarray
    positions: np.ndarray  # bar position of each sample
    label_end: np.ndarray
    labels: Labels
    index: pd.DatetimeIndex  # bar open time of each sample

    def __len__(self) -> int:
        return int(self.y.size)


def make_labels(ohlcv: pd.DataFrame, cfg: Config) -> Labels:
    ml = cfg.ml
    if ml.label == "fixed_horizon":
        return fixed_horizon(ohlcv, ml.horizon_bars, ml.fixed_horizon_return, round_trip_cost(cfg))
    if ml.label == "triple_barrier":
        return triple_barrier(ohlcv, ml.horizon_bars, ml.fixed_horizon_return * 2, ml.fixed_horizon_return,
                              round_trip_cost(cfg))
    # the data's own spacing: a training file on another timeframe than `data.timeframe` is labelled as it is
    signals = compute_signals(ohlcv, cfg, timeframe=infer_timeframe(timestamps_ms(ohlcv)))
    return meta_labels(ohlcv, signals, ml.horizon_bars, cfg)


def build_dataset(ohlcv: pd.DataFrame, cfg: Config) -> Dataset:
    """Features at each labelled bar (rows with warm-up NaN dropped) and their labels."""
    feats = compute_features(ohlcv, cfg.features).to_numpy()
    labels = make_labels(ohlcv, cfg)
    X = feats[labels.rows]
    ok = np.isfinite(X).all(axis=1)
    if ok.sum() < 50:
        raise ValueError(f"only {int(ok.sum())} labelled rows with valid features; use more data or a shorter warm-up")
    return Dataset(X[ok], labels.y[ok].astype(np.int64), labels.rows[ok], labels.end[ok], labels,
                   ohlcv.index[labels.rows[ok]])
