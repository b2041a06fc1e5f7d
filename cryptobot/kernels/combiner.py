"""The signal combiner (seed spec §4.8, and the seed author's later weighted-sum fix), as one numba kernel.

Input per bar: each strategy's (action, confidence, stop-loss, take-profit) in `votes` (k, 4), its weight
and enable flag. Output: (action, confidence, stop-loss, take-profit, voters bitmask). Stop-loss and
take-profit come from the most confident strategy on the winning side (first registered on ties).
"""

from __future__ import annotations

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


@njit(cache=True)
def _finish(votes: np.ndarray, enabled: np.ndarray, side: float, confidence: float, out: np.ndarray) -> None:
    best = -1
    mask = 0
    for i in range(votes.shape[0]):
        if enabled[i] and votes[i, 0] == side:
            mask |= 1 << i
            if best < 0 or votes[i, 1] > votes[best, 1]:
                best = i
    out[OUT_ACTION] = side
    out[OUT_CONF] = min(max(confidence, 0.0), 1.0)
    out[OUT_SL] = votes[best, 2]
    out[OUT_TP] = votes[best, 3]
    out[OUT_VOTERS] = float(mask)


@njit(cache=True)
def _hold(out: np.ndarray) -> None:
    out[OUT_ACTION] = 0.0
    out[OUT_CONF] = 0.0
    out[OUT_SL] = NAN
    out[OUT_TP] = NAN
    out[OUT_VOTERS] = 0.0


@njit(cache=True)
def combine(votes: np.ndarray, weights: np.ndarray, enabled: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    """Merge the strategies' votes of one bar into one decision.

    weighted_sum: net = Σ w·conf over buys − Σ w·conf over sells, divided by the total weight of the
    enabled strategies (holds included); act when |net| >= min_score, confidence = |net|. Two buys at
    0.30/0.70 against one sell at 0.50 among five equal strategies give net +0.10: a buy, where the seed's
    averaging chose the sell and traded SELL-only for a week.

    average_confidence (the seed's rule, deterministic): if both sides vote, compare the weighted mean
    confidence of each side — a gap under min_conflict_threshold holds, else the higher side wins with its
    mean; otherwise the action with the largest total weight among buy/sell/hold wins (ties: the side of
    the first registered strategy voting for one of them), and hold wins → no trade.
    """
    k = votes.shape[0]
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
        a = votes[i, 0]
        if a > 0.0:
            buy_w += w
            buy_s += w * votes[i, 1]
        elif a < 0.0:
            sell_w += w
            sell_s += w * votes[i, 1]
        else:
            hold_w += w
    if total_w <= 0.0:
        _hold(out)
        return
    if int(c[C_METHOD]) == METHOD_WEIGHTED_SUM:
        net = (buy_s - sell_s) / total_w
        if net >= c[C_MIN_SCORE] and net > 0.0:
            _finish(votes, enabled, 1.0, net, out)
        elif -net >= c[C_MIN_SCORE] and net < 0.0:
            _finish(votes, enabled, -1.0, -net, out)
        else:
            _hold(out)
        return
    if buy_w > 0.0 and sell_w > 0.0:
        buy_avg = buy_s / buy_w
        sell_avg = sell_s / sell_w
        if abs(buy_avg - sell_avg) < c[C_MIN_CONFLICT]:
            _hold(out)
        elif buy_avg > sell_avg:
            _finish(votes, enabled, 1.0, buy_avg, out)
        else:
            _finish(votes, enabled, -1.0, sell_avg, out)
        return
    side_w = buy_w if buy_w > 0.0 else sell_w
    if side_w <= 0.0 or hold_w > side_w:
        _hold(out)
        return
    if hold_w == side_w:  # tie: first registered strategy among the tied groups decides
        for i in range(k):
            if enabled[i] and weights[i] > 0.0:
                if votes[i, 0] == 0.0:
                    _hold(out)
                    return
                break
    side = 1.0 if buy_w > 0.0 else -1.0
    _finish(votes, enabled, side, (buy_s if side > 0.0 else sell_s) / side_w, out)
