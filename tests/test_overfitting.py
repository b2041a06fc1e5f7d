"""Deflated Sharpe ratio and CSCV probability of backtest overfitting against independent calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from research.overfitting import (
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
    probability_of_backtest_overfitting,
)


def test_expected_max_sharpe_matches_a_monte_carlo_of_unskilled_trials() -> None:
    """E[max of N standard normals] × σ: the closed form vs simulation (independent)."""
    rng = np.random.default_rng(1)
    n, sigma = 100, 0.05
    simulated = (rng.standard_normal((20_000, n)).max(axis=1) * sigma).mean()
    assert expected_max_sharpe(sigma**2, n) == pytest.approx(simulated, rel=0.02)


def test_probabilistic_sharpe_formula() -> None:
    sr, sr0, t, skew, kurt = 0.1, 0.05, 500, -0.5, 6.0
    direct = stats.norm.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert probabilistic_sharpe(sr, sr0, t, skew, kurt) == pytest.approx(direct, rel=1e-12)


def test_deflated_sharpe_penalises_many_trials() -> None:
    sharpes = np.random.default_rng(2).normal(0.0, 0.03, 1000)
    sharpes[0] = 0.08
    many = deflated_sharpe(sharpes, 0, 2000, 0.0, 3.0)
    few = deflated_sharpe(sharpes[:5], 0, 2000, 0.0, 3.0)
    assert many.deflated_sharpe < few.deflated_sharpe
    sr0 = expected_max_sharpe(float(np.var(sharpes, ddof=1)), 1000)
    assert many.expected_max_sharpe == pytest.approx(sr0)
    expected = stats.norm.cdf((0.08 - sr0) * math.sqrt(1999) / math.sqrt(1 + (3 - 1) / 4 * 0.08**2))  # normal returns
    assert many.deflated_sharpe == pytest.approx(expected, rel=1e-9)


def block_moments(returns: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = np.array_split(returns, blocks, axis=0)
    n = np.stack([np.full(returns.shape[1], len(p), dtype=float) for p in parts], axis=1)
    s1 = np.stack([p.sum(axis=0) for p in parts], axis=1)
    s2 = np.stack([(p**2).sum(axis=0) for p in parts], axis=1)
    return n, s1, s2


def test_pbo_of_pure_noise_is_about_one_half() -> None:
    rng = np.random.default_rng(3)
    pbos = [probability_of_backtest_overfitting(*block_moments(rng.normal(0, 0.01, (1000, 50)), 10)).pbo
            for _ in range(5)]
    assert 0.3 < float(np.mean(pbos)) < 0.7


def test_pbo_of_a_dominant_true_strategy_is_near_zero() -> None:
    rng = np.random.default_rng(4)
    returns = rng.normal(0, 0.01, (1000, 50))
    returns[:, 7] += 0.004  # a genuinely better trial, in every period
    result = probability_of_backtest_overfitting(*block_moments(returns, 10))
    assert result.pbo < 0.05 and result.n_splits == math.comb(10, 5)


def test_pbo_of_an_overfit_grid_is_high() -> None:
    """Each trial is lucky in exactly one half of the sample and unlucky in the other: in-sample winners lose."""
    rng = np.random.default_rng(5)
    returns = rng.normal(0, 0.01, (800, 40))
    for j in range(40):
        first_half = j % 2 == 0
        returns[:400, j] += 0.003 if first_half else -0.003
        returns[400:, j] += -0.003 if first_half else 0.003
    assert probability_of_backtest_overfitting(*block_moments(returns, 2)).pbo == 1.0


def test_pbo_needs_even_blocks() -> None:
    n, s1, s2 = block_moments(np.ones((10, 3)), 3)
    with pytest.raises(ValueError, match="even number of blocks"):
        probability_of_backtest_overfitting(n, s1, s2)
