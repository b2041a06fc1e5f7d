"""Cross-validation for overlapping financial labels: purge and embargo (López de Prado), walk-forward.

`PurgedTimeSeriesSplit` follows scikit-learn's splitter API (works with `cross_val_score`). Folds come from
`TimeSeriesSplit`, so training always precedes its test fold. A training sample is dropped when its label
window [start, end] reaches into the test fold (purge — from each sample's own label end when given, else a
fixed number of samples) or ends within `embargo` bars before it. López de Prado's embargo guards the bars
*after* a test fold, which forward-only folds never train on; here it is the same guard against serial
correlation on the side where training data does sit (scikit-learn's `gap`): at least `embargo` bars lie
between the last training label's outcome and the first test bar.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.model_selection import TimeSeriesSplit


class PurgedTimeSeriesSplit:
    def __init__(self, n_splits: int = 5, purge: int = 0, embargo: int = 0, label_end: np.ndarray | None = None,
                 positions: np.ndarray | None = None):
        if n_splits < 2:
            raise ValueError("n_splits must be at least 2")
        if purge < 0 or embargo < 0:
            raise ValueError("purge and embargo are numbers of bars, >= 0")
        self.n_splits = n_splits
        self.purge = purge
        self.embargo = embargo
        self.label_end = None if label_end is None else np.asarray(label_end)
        self.positions = None if positions is None else np.asarray(positions)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(X)
        pos = np.arange(n) if self.positions is None else self.positions  # bar position of each sample
        end = pos + self.purge if self.label_end is None else np.maximum(self.label_end, pos + self.purge)
        for train, test in TimeSeriesSplit(n_splits=self.n_splits).split(np.zeros(n)):
            keep = end[train] < pos[test[0]] - self.embargo
            yield train[keep], test


def walk_forward(n: int, train: int, test: int, expanding: bool = False,
                 step: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive (train, test) index windows: rolling (fixed `train` length) or expanding from 0."""
    if train < 1 or test < 1:
        raise ValueError("train and test windows need at least one bar")
    start = 0
    step = step or test
    while start + train + test <= n:
        lo = 0 if expanding else start
        yield np.arange(lo, start + train), np.arange(start + train, start + train + test)
        start += step
