"""The signal combiner (seed spec §4.8, and the seed author's later weighted-sum fix), as one numba kernel.

Input per bar: each strategy's (action, confidence, stop-loss, take-profit) in `votes` (k, 4), its weight
and enable flag. Output: (action, confidence, stop-loss, take-profit, voters bitmask). Stop-loss and
take-profit come from the most confident strategy on the winning side (first registered on ties).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

NAN = np.nan
METHOD_WEIGHTED_SUM = 0
METHOD_AVERAGE_CONFIDENCE = 1
# combiner parameter vector
C_METHOD, C_MIN_CONFLICT, C_MIN_SCORE = 0, 1, 2
# output vector
OUT_ACTION, OUT_CONF, OUT_SL, OUT_TP, OUT_VOTERS = 0, 1, 2, 3, 4
N_OUT = 5


@njit(cache=True, inline="always")
def _finish(votes: Any, enabled: Any, side: float, confidence: float) -> tuple[float, float, float, float, float]:
    best_conf = -np.inf
    sl = NAN
    tp = NAN
    mask = 0
    for i in range(len(votes)):
        if enabled[i] and votes[i][0] == side:
            mask |= 1 << i
            if votes[i][1] > best_conf or mask == 1 << i:  # the first voter, then a strictly more confident one
                best_conf, sl, tp = votes[i][1], votes[i][2], votes[i][3]
    return side, min(max(confidence, 0.0), 1.0), sl, tp, float(mask)


HOLD = (0.0, 0.0, NAN, NAN, 0.0)


@njit(cache=True, inline="always")
def combine_core(votes: Any, weights: Any, enabled: Any, method: int, min_conflict: float,
                 min_score: float) -> tuple[float, float, float, float, float]:
    """Merge the strategies' votes of one bar into one decision (action, confidence, SL, TP, voters).

    `votes[i]` = strategy i's (action, confidence, stop-loss, take-profit): rows of a (k, 4) array, or a
    tuple of tuples (the generated pipeline: the loop unrolls and the votes stay in registers).

    weighted_sum: net = Σ w·conf over buys − Σ w·conf over sells, divided by the total weight of the
    enabled strategies (holds included); act when |net| >= min_score, confidence = |net|. Two buys at
    0.30/0.70 against one sell at 0.50 among five equal strategies give net +0.10: a buy, where the seed's
    averaging chose the sell and traded SELL-only for a week.

    average_confidence (the seed's rule, deterministic): if both sides vote, compare the weighted mean
    confidence of each side — a gap under min_conflict_threshold holds, else the higher side wins with its
    mean; otherwise the action with the largest total weight among buy/sell/hold wins (ties: the side of
    the first registered strategy voting for one of them), and hold wins → no trade.
    """
    k = len(votes)
    total_w = 0.0
    buy_w = 0.0
    sell_w = 0.0
    hold_w = 0.0
    buy_s = 0.0
    sell_s = 0.0
    for i in range(k):
        if not enabled[i]:
            continue
        w = weights[i]
        total_w += w
        a = votes[i][0]
        if a > 0.0:
            buy_w += w
            buy_s += w * votes[i][1]
        elif a < 0.0:
            sell_w += w
            sell_s += w * votes[i][1]
        else:
            hold_w += w
    if total_w <= 0.0:
        return HOLD
    if method == METHOD_WEIGHTED_SUM:
        net = (buy_s - sell_s) / total_w
        if net >= min_score and net > 0.0:
            return _finish(votes, enabled, 1.0, net)
        if -net >= min_score and net < 0.0:
            return _finish(votes, enabled, -1.0, -net)
        return HOLD
    if buy_w > 0.0 and sell_w > 0.0:
        buy_avg = buy_s / buy_w
        sell_avg = sell_s / sell_w
        if abs(buy_avg - sell_avg) < min_conflict:
            return HOLD
        if buy_avg > sell_avg:
            return _finish(votes, enabled, 1.0, buy_avg)
        return _finish(votes, enabled, -1.0, sell_avg)
    side_w = buy_w if buy_w > 0.0 else sell_w
    if side_w <= 0.0 or hold_w > side_w:
        return HOLD
    if hold_w == side_w:  # tie: first registered strategy among the tied groups decides
        for i in range(k):
            if enabled[i] and weights[i] > 0.0:
                if votes[i][0] == 0.0:
                    return HOLD
                break
    side = 1.0 if buy_w > 0.0 else -1.0
    return _finish(votes, enabled, side, (buy_s if side > 0.0 else sell_s) / side_w)


@njit(cache=True)
def combine(votes: np.ndarray, weights: np.ndarray, enabled: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    """`combine_core` with the combiner parameter vector `c`, into `out` (N_OUT)."""
    (out[OUT_ACTION], out[OUT_CONF], out[OUT_SL], out[OUT_TP],
     out[OUT_VOTERS]) = combine_core(votes, weights, enabled, int(c[C_METHOD]), c[C_MIN_CONFLICT], c[C_MIN_SCORE])
