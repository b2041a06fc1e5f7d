"""Walk-forward evaluation of the ML gate: retrain (optionally re-tune) on each train window, then backtest
the next, unseen window with and without the gate. Only out-of-sample numbers are reported.

Each test window is backtested on its own bars (features warm up inside it), so nothing from the train
window or later leaks into it; labels of the train window are built from train-window bars only.
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
from research.training import ensemble, make_models
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


def run_walkforward(ohlcv: pd.DataFrame, cfg: Config, train: int, test: int, expanding: bool = False,
                    tune_trials: int = 0, progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    windows = list(walk_forward(len(ohlcv), train, test, expanding))
    if not windows:
        raise ValueError(f"{len(ohlcv)} bars cannot hold one train window of {train} and a test window of {test}")
    rows = []
    for train_idx, test_idx in tqdm(windows, desc="walk-forward", unit="window", disable=not progress):
        train_df, test_df = ohlcv.iloc[train_idx], ohlcv.iloc[test_idx]
        params, weights, threshold = None, dict(cfg.ml.weights), cfg.ml.threshold or 0.5
        if tune_trials:
            study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.ml.seed))
            study.optimize(make_objective(train_df, cfg), n_trials=tune_trials)
            params, weights, threshold = params_of(study.best_trial.params)
        data = build_dataset(train_df, cfg)
        models = make_models(cfg, params)
        for model in models.values():
            model.fit(data.X, data.y)
        feats = compute_features(test_df, cfg.features).to_numpy()
        ok = np.isfinite(feats).all(axis=1)
        probs = {name: np.full(len(test_df), np.nan) for name in models}
        for name, model in models.items():
            probs[name][ok] = model.predict_proba(feats[ok])[:, 1]
        gate = ensemble(probs, weights)
        gated_cfg = Config.model_validate({**cfg.model_dump(), "ml": {**cfg.ml.model_dump(), "threshold": threshold}})
        plain = backtest(test_df, cfg).stats
        gated = backtest(test_df, gated_cfg, ml_gate=gate).stats
        keep = ("sharpe", "total_return", "max_drawdown", "trade_count", "win_rate")
        rows.append(WindowResult(train_df.index[0], train_df.index[-1], test_df.index[0], test_df.index[-1],
                                 int(train_idx[-1]), int(test_idx[0]), {k: plain[k] for k in keep},
                                 {k: gated[k] for k in keep}))
    frame = pd.DataFrame([{
        "train_first": r.train_first, "train_last": r.train_last, "test_first": r.test_first, "test_last": r.test_last,
        "train_end_position": r.train_end_position, "test_start_position": r.test_start_position,
        **{f"ungated_{k}": v for k, v in r.ungated.items()}, **{f"gated_{k}": v for k, v in r.gated.items()},
    } for r in rows])
    summary = {
        "windows": len(rows), "train_bars": train, "test_bars": test, "expanding": expanding, "tune_trials": tune_trials,
        "out_of_sample": {
            kind: {"mean_sharpe": float(frame[f"{kind}_sharpe"].mean()),
                   "compounded_return": float(np.prod(1 + frame[f"{kind}_total_return"]) - 1),
                   "trades": int(frame[f"{kind}_trade_count"].sum()),
                   "worst_drawdown": float(frame[f"{kind}_max_drawdown"].max())}
            for kind in ("ungated", "gated")
        },
    }
    return frame, summary
