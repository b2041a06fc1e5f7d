"""Decision-tree ensembles as flat arrays, evaluated by numba (LightGBM, XGBoost and RandomForest alike).

A forest is: per node `feature` (−1 for a leaf), `threshold`, `left`, `right`, `default_left` (where NaN
goes) and `value` (leaf output); `roots` holds each tree's first node. Libraries differ only in the split
test, which `mode` selects so the result equals each library's own prediction:
  MODE_LE_F64  x <= threshold in float64            (LightGBM)
  MODE_LT_F32  float32(x) < float32(threshold)      (XGBoost works in float32)
  MODE_LE_F32X float32(x) <= threshold (float64)    (scikit-learn casts X to float32)
"""

from __future__ import annotations

import numpy as np
from numba import njit

MODE_LE_F64, MODE_LT_F32, MODE_LE_F32X = 0, 1, 2


@njit(cache=True)
def forest_sum(x: np.ndarray, roots: np.ndarray, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
               right: np.ndarray, default_left: np.ndarray, value: np.ndarray, mode: int) -> float:
    """Sum of the leaf values reached by one row over all trees."""
    total = 0.0
    for t in range(roots.shape[0]):
        node = roots[t]
        while feature[node] >= 0:
            v = x[feature[node]]
            if v != v:
                go_left = default_left[node]
            elif mode == MODE_LE_F64:
                go_left = v <= threshold[node]
            elif mode == MODE_LT_F32:
                go_left = np.float32(v) < np.float32(threshold[node])
            else:
                go_left = np.float64(np.float32(v)) <= threshold[node]
            node = left[node] if go_left else right[node]
        total += value[node]
    return total


@njit(cache=True)
def forest_sums(X: np.ndarray, roots: np.ndarray, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
                right: np.ndarray, default_left: np.ndarray, value: np.ndarray, mode: int) -> np.ndarray:
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = forest_sum(X[i], roots, feature, threshold, left, right, default_left, value, mode)
    return out
