"""Overfitting statistics for a whole grid: the deflated Sharpe ratio and the probability of backtest overfitting.

- Deflated Sharpe ratio (Bailey & López de Prado, 2014): the probability that the best trial's true Sharpe
  exceeds the Sharpe expected from the best of N unskilled trials, corrected for the best trial's skewness
  and kurtosis and the sample length.
- Probability of backtest overfitting by combinatorially symmetric cross-validation (Bailey, Borwein,
  López de Prado & Zhu, 2015): split time into S blocks; for every choice of S/2 blocks as in-sample, take
  the in-sample best trial and the relative rank of its out-of-sample performance; PBO is the share of
  choices where that rank is at or below the median (logit ≤ 0).

Both work from per-trial return moments (per block for CSCV), so a grid of any size needs bounded memory.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.stats import norm

EULER_GAMMA = 0.5772156649015329


def expected_max_sharpe(sharpe_variance: float, n_trials: int) -> float:
    """E[max SR] of n_trials unskilled trials whose Sharpe estimates have this variance (per period)."""
    if n_trials < 2 or sharpe_variance <= 0:
        return 0.0
    a = norm.ppf(1.0 - 1.0 / n_trials)
    b = norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def probabilistic_sharpe(sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """P(true SR > benchmark) for a per-period Sharpe `sr` over n_obs returns (kurtosis not in excess)."""
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if n_obs < 2 or denom <= 0:
        return float("nan")
    return float(norm.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)))


@dataclass
class DeflatedSharpe:
    best_sharpe: float  # per period
    expected_max_sharpe: float  # per period, under the null
    deflated_sharpe: float  # probability in [0, 1]
    n_trials: int
    n_obs: int


def deflated_sharpe(sharpes: np.ndarray, best_index: int, n_obs: int, skew: float, kurtosis: float) -> DeflatedSharpe:
    finite = sharpes[np.isfinite(sharpes)]
    sr0 = expected_max_sharpe(float(np.var(finite, ddof=1)) if finite.size > 1 else 0.0, int(finite.size))
    best = float(sharpes[best_index])
    return DeflatedSharpe(best, sr0, probabilistic_sharpe(best, sr0, n_obs, skew, kurtosis), int(finite.size), n_obs)


@njit(cache=True)
def _block_sharpes(n: np.ndarray, s1: np.ndarray, s2: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Per-trial Sharpe of the returns in the chosen blocks, from per-block count/sum/sum of squares."""
    trials = n.shape[0]
    out = np.empty(trials)
    for t in range(trials):
        cnt = 0.0
        a = 0.0
        b = 0.0
        for k in blocks:
            cnt += n[t, k]
            a += s1[t, k]
            b += s2[t, k]
        if cnt < 2:
            out[t] = np.nan
            continue
        mean = a / cnt
        var = (b - cnt * mean * mean) / (cnt - 1.0)
        out[t] = mean / np.sqrt(var) if var > 0.0 else (0.0 if mean == 0.0 else np.inf * np.sign(mean))
    return out


@dataclass
class PBOResult:
    pbo: float
    logits: np.ndarray
    n_splits: int
    n_blocks: int


def probability_of_backtest_overfitting(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> PBOResult:
    """CSCV over the block moments of each trial: arrays (trials, S) with S even."""
    trials, blocks = n.shape
    if blocks % 2 or blocks < 2:
        raise ValueError(f"CSCV needs an even number of blocks, got {blocks}")
    if trials < 2:
        return PBOResult(float("nan"), np.zeros(0), 0, blocks)
    logits = []
    for train in itertools.combinations(range(blocks), blocks // 2):
        test = np.array([k for k in range(blocks) if k not in train], dtype=np.int64)
        is_sr = _block_sharpes(n, s1, s2, np.array(train, dtype=np.int64))
        oos_sr = _block_sharpes(n, s1, s2, test)
        if not np.isfinite(is_sr).any():
            continue
        best = int(np.nanargmax(np.where(np.isfinite(is_sr), is_sr, -np.inf)))
        oos = np.where(np.isfinite(oos_sr), oos_sr, -np.inf)
        rank = (oos < oos[best]).sum() + 0.5 * ((oos == oos[best]).sum() - 1) + 1  # 1 = worst … trials = best
        omega = rank / (trials + 1.0)
        logits.append(math.log(omega / (1.0 - omega)))
    arr = np.array(logits)
    return PBOResult(float((arr <= 0).mean()) if arr.size else float("nan"), arr, int(arr.size), blocks)
