"""Walk-forward evaluation of the ML gate: retrain (optionally re-tune) on each train window, then backtest
the next, unseen window with and without the gate. Only out-of-sample numbers are reported.

Each test window is backtested on its own bars (the strategies warm up inside it, the same for the gated
and the ungated run). The gate's features at a test bar are computed from every bar up to it (past data,
known at that bar), so every test bar has a probability: no test bar is traded ungated in the gated run.
`signals_without_probability` counts the signal bars where that still failed (too little history); the
gated numbers are only gated where it is 0. Labels of the train window are built from train-window bars
only, and samples whose label outcome falls in the last `ml.embargo_bars` bars of the train window do not
train (the embargo between training and test, as in `research.cv`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from tqdm import tqdm

from cryptobot.config import Config
from cryptobot.data import timeframe_to_ms, timestamps_ms
from cryptobot.features import compute_features
from research.backtest import run as backtest
from research.cv import walk_forward
from research.dataset import build_dataset
from research.training import ensemble, make_models, model_weights
from research.tuning import make_objective, params_of


def window_bars(text: str, ohlcv: pd.DataFrame) -> int:
    """'5000' bars, or a duration like '90d', '12w', '36h' converted with the data's bar length."""
    if re.fullmatch(r"\d+", text):
        return int(text)
    match = re.fullmatch(r"(\d+)([hdw])", text)
    if not match:
        raise ValueError(f"window {text!r}: give a number of bars (5000) or a duration (90d, 12w, 36h)")
    ts = timestamps_ms(ohlcv)
    bar_ms = int(np.median(np.diff(ts))) if ts.size > 1 else 1
    return max(1, timeframe_to_ms(text) // bar_ms)


@dataclass
class WindowResult:
    train_first: pd.Timestamp
    train_last: pd.Timestamp
    test_first: pd.Timestamp
    test_last: pd.Timestamp
    train_end_position: int
    test_start_position: int
    ungated: dict[str, float]
    gated: dict[str, float]
    gated_signals: int
    signals_without_probability: int


def run_walkforward(ohlcv: pd.DataFrame, cfg: Config, train: int, test: int, expanding: bool = False,
                    tune_trials: int = 0, progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    windows = list(walk_forward(len(ohlcv), train, test, expanding))
    if not windows:
        raise ValueError(f"{len(ohlcv)} bars cannot hold one train window of {train} and a test window of {test}")
    rows = []
    for train_idx, test_idx in tqdm(windows, desc="walk-forward", unit="window", disable=not progress):
        train_df, test_df = ohlcv.iloc[train_idx], ohlcv.iloc[test_idx]
        params, weights, threshold = None, model_weights(cfg), cfg.ml.threshold or 0.5
        if tune_trials:
            study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.ml.seed))
            study.optimize(make_objective(train_df, cfg), n_trials=tune_trials)
            params, weights, threshold = params_of(study.best_trial.params)
        data = build_dataset(train_df, cfg)
        fit = data.label_end < len(train_df) - cfg.ml.embargo_bars
        models = make_models(cfg, params)
        for model in models.values():
            model.fit(data.X[fit], data.y[fit])
        history = compute_features(ohlcv.iloc[: int(test_idx[-1]) + 1], cfg.features).to_numpy()
        feats = history[int(test_idx[0]):]
        ok = np.isfinite(feats).all(axis=1)
        probs = {name: np.full(len(test_df), np.nan) for name in models}
        for name, model in models.items():
            probs[name][ok] = model.predict_proba(feats[ok])[:, 1]
        gate = ensemble(probs, weights)
        gated_cfg = cfg.with_overrides({"ml.threshold": threshold})
        plain_run = backtest(test_df, cfg.with_overrides({"ml.enabled": False}))  # the ungated comparison
        plain = plain_run.stats
        gated = backtest(test_df, gated_cfg, ml_gate=gate).stats
        signal_bars = plain_run.signals["action"].to_numpy() != 0
        keep = ("sharpe", "total_return", "max_drawdown", "trade_count", "win_rate")
        rows.append(WindowResult(train_df.index[0], train_df.index[-1], test_df.index[0], test_df.index[-1],
                                 int(train_idx[-1]), int(test_idx[0]), {k: plain[k] for k in keep},
                                 {k: gated[k] for k in keep}, int((signal_bars & np.isfinite(gate)).sum()),
                                 int((signal_bars & ~np.isfinite(gate)).sum())))
    frame = pd.DataFrame([{
        "train_first": r.train_first, "train_last": r.train_last, "test_first": r.test_first, "test_last": r.test_last,
        "train_end_position": r.train_end_position, "test_start_position": r.test_start_position,
        **{f"ungated_{k}": v for k, v in r.ungated.items()}, **{f"gated_{k}": v for k, v in r.gated.items()},
        "gated_signals": r.gated_signals, "signals_without_probability": r.signals_without_probability,
    } for r in rows])
    summary = {
        "windows": len(rows), "train_bars": train, "test_bars": test, "expanding": expanding, "tune_trials": tune_trials,
        "embargo_bars": cfg.ml.embargo_bars, "gated_signals": int(frame["gated_signals"].sum()),
        "signals_without_probability": int(frame["signals_without_probability"].sum()),
        "out_of_sample": {
            kind: {"mean_sharpe": float(frame[f"{kind}_sharpe"].mean()),
                   "compounded_return": float(np.prod(1 + frame[f"{kind}_total_return"]) - 1),
                   "trades": int(frame[f"{kind}_trade_count"].sum()),
                   "worst_drawdown": float(frame[f"{kind}_max_drawdown"].max())}
            for kind in ("ungated", "gated")
        },
    }
    return frame, summary
