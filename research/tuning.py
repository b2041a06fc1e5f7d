"""Optuna tuning of the ensemble: each model's hyper-parameters, the vote weights and the decision threshold.

The objective is the out-of-fold **net Sharpe of the strategies gated by the ensemble**: purged
out-of-fold probabilities gate the strategies' entries in a backtest through the shared kernels, costs
included; log loss is recorded beside it. Folds report their (negative) log loss so the median pruner can
stop hopeless trials early. Studies live in any Optuna storage: a local SQLite or journal file by default
(a killed run resumes), or a SQLAlchemy URL such as PostgreSQL so several `tune` processes on several
machines work on one study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from cryptobot.config import Config
from research.backtest import run as backtest
from research.dataset import Dataset, build_dataset
from research.training import ensemble, out_of_fold, scores

SPACE_DOC = {
    "lightgbm": "n_estimators 20–400 (log), learning_rate 0.01–0.3 (log), num_leaves 7–63, max_depth 3–10",
    "xgboost": "n_estimators 20–400 (log), learning_rate 0.01–0.3 (log), max_depth 2–10",
    "random_forest": "n_estimators 20–300 (log), max_depth 3–14, min_samples_leaf 1–50 (log)",
    "weights": "each 0–1, normalised", "threshold": "0.3–0.8",
}


def open_storage(storage: str | None, study: str, default_dir: Path) -> Any:
    """`None` → SQLite file under default_dir; `journal:PATH` → Optuna journal file; else an SQLAlchemy URL."""
    if storage is None:
        default_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(default_dir / f'{study}.sqlite3').resolve()}"
    if storage.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(storage.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    return storage


def suggest(trial: optuna.trial.BaseTrial) -> tuple[dict[str, dict[str, Any]], dict[str, float], float]:
    params: dict[str, dict[str, Any]] = {
        "lightgbm": {"n_estimators": trial.suggest_int("lgb_n_estimators", 20, 400, log=True),
                     "learning_rate": trial.suggest_float("lgb_learning_rate", 0.01, 0.3, log=True),
                     "num_leaves": trial.suggest_int("lgb_num_leaves", 7, 63),
                     "max_depth": trial.suggest_int("lgb_max_depth", 3, 10)},
        "xgboost": {"n_estimators": trial.suggest_int("xgb_n_estimators", 20, 400, log=True),
                    "learning_rate": trial.suggest_float("xgb_learning_rate", 0.01, 0.3, log=True),
                    "max_depth": trial.suggest_int("xgb_max_depth", 2, 10)},
        "random_forest": {"n_estimators": trial.suggest_int("rf_n_estimators", 20, 300, log=True),
                          "max_depth": trial.suggest_int("rf_max_depth", 3, 14),
                          "min_samples_leaf": trial.suggest_int("rf_min_samples_leaf", 1, 50, log=True)},
    }
    raw = {m: trial.suggest_float(f"w_{m}", 0.0, 1.0) for m in ("lightgbm", "xgboost", "random_forest")}
    total = sum(raw.values())
    weights = {m: (v / total if total > 0 else 1 / 3) for m, v in raw.items()}
    threshold = trial.suggest_float("threshold", 0.3, 0.8)
    return params, weights, threshold


def params_of(best: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, float], float]:
    """Turn a trial's flat parameters back into (model params, weights, threshold)."""
    return suggest(optuna.trial.FixedTrial(best))


def gated_sharpe(ohlcv: pd.DataFrame, cfg: Config, data: Dataset, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """Backtest the strategies with out-of-fold probabilities as the ML gate, over the out-of-fold period."""
    covered = np.isfinite(prob)
    if not covered.any():
        return {"sharpe": float("nan"), "trades": 0, "total_return": float("nan")}
    start = int(data.positions[covered][0])
    gate = np.full(len(ohlcv), np.nan)
    gate[data.positions[covered]] = prob[covered]
    gated_cfg = cfg.with_overrides({"ml.threshold": threshold})
    stats = backtest(ohlcv.iloc[start:], gated_cfg, ml_gate=gate[start:]).stats
    return {"sharpe": stats["sharpe"], "trades": stats["trade_count"], "total_return": stats["total_return"]}


def make_objective(ohlcv: pd.DataFrame, cfg: Config) -> Any:
    data = build_dataset(ohlcv, cfg)

    def objective(trial: optuna.Trial) -> float:
        params, weights, threshold = suggest(trial)

        def on_fold(fold: int, loss: float) -> None:
            trial.report(-loss, fold)
            if trial.should_prune():
                raise optuna.TrialPruned()

        tuned = cfg.with_overrides({"ml.weights": weights})
        oof = out_of_fold(data, tuned, params, on_fold=on_fold)
        prob = ensemble(oof, weights)
        result = gated_sharpe(ohlcv, cfg, data, prob, threshold)
        trial.set_user_attr("log_loss", scores(data.y, prob, threshold)["log_loss"])
        trial.set_user_attr("trades", result["trades"])
        trial.set_user_attr("total_return", result["total_return"])
        return result["sharpe"] if np.isfinite(result["sharpe"]) else -1e9

    return objective


def rdb_storage(url: str, attempts: int = 6) -> Any:
    """Open an SQLAlchemy-URL storage; workers starting together on a fresh database race to create Optuna's
    schema, so a failed creation is retried after a short random pause."""
    import random
    import time

    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.3 + random.random())
    raise AssertionError("unreachable")


def tune(ohlcv: pd.DataFrame, cfg: Config, study_name: str, storage: Any, trials: int | None,
         timeout: float | None = None, seed: int | None = None) -> optuna.Study:
    if isinstance(storage, str):
        storage = rdb_storage(storage)
    sampler = optuna.samplers.TPESampler(seed=cfg.ml.seed if seed is None else seed)
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=sampler, pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    study.optimize(make_objective(ohlcv, cfg), n_trials=trials, timeout=timeout, gc_after_trial=True)
    return study
