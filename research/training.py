"""Training the LightGBM + XGBoost + RandomForest ensemble on cost-aware labels with purged CV.

Deterministic: fixed seeds, one thread per model (`ml.n_threads`), LightGBM's deterministic mode, so the
same command reproduces the same bundle hashes. Reported scores are out-of-fold only (purged, embargoed):
the seed reported in-sample accuracy 1.0 on noise.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from cryptobot.config import Config
from cryptobot.features import FEATURE_ORDER
from cryptobot.jsonio import dumps, write_json
from cryptobot.ml import save_bundle
from cryptobot.ml.bundle import MODELS
from research.cv import PurgedTimeSeriesSplit
from research.dataset import Dataset, build_dataset


def make_models(cfg: Config, params: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    p: dict[str, dict[str, Any]] = {str(k): dict(v) for k, v in cfg.ml.model_params.items()}
    for name, extra in (params or {}).items():
        p.setdefault(name, {}).update(extra)
    seed, threads = cfg.ml.seed, cfg.ml.n_threads
    return {
        "lightgbm": lgb.LGBMClassifier(**p["lightgbm"], random_state=seed, n_jobs=threads, verbose=-1,
                                       deterministic=True, force_row_wise=True),
        "xgboost": xgb.XGBClassifier(**p["xgboost"], random_state=seed, n_jobs=threads, tree_method="hist"),
        "random_forest": RandomForestClassifier(**p["random_forest"], random_state=seed, n_jobs=threads),
    }


def splitter(cfg: Config, data: Dataset) -> PurgedTimeSeriesSplit:
    return PurgedTimeSeriesSplit(cfg.ml.cv_splits, purge=cfg.ml.horizon_bars, embargo=cfg.ml.embargo_bars,
                                 label_end=data.label_end, positions=data.positions)


def out_of_fold(data: Dataset, cfg: Config, params: dict[str, dict[str, Any]] | None = None,
                on_fold: Any = None) -> dict[str, np.ndarray]:
    """Out-of-fold P(positive) per model (NaN for samples never in a test fold, i.e. the first fold).

    `on_fold(fold, ensemble_logloss)` is called after each fold (Optuna pruning)."""
    oof = {name: np.full(len(data), np.nan) for name in MODELS}
    for fold, (train, test) in enumerate(splitter(cfg, data).split(data.X)):
        if len(np.unique(data.y[train])) < 2:
            continue
        for name, model in make_models(cfg, params).items():
            model.fit(data.X[train], data.y[train])
            oof[name][test] = model.predict_proba(data.X[test])[:, 1]
        if on_fold is not None:
            ens = ensemble(oof, model_weights(cfg))[test]
            on_fold(fold, float(log_loss(data.y[test], np.clip(ens, 1e-7, 1 - 1e-7), labels=[0, 1])))
    return oof


def model_weights(cfg: Config) -> dict[str, float]:
    """`ml.weights` keyed by plain model names (what `ensemble` and the bundle take)."""
    return {str(k): float(v) for k, v in cfg.ml.weights.items()}


def ensemble(probs: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    total = sum(weights[m] for m in MODELS)
    return sum(weights[m] * probs[m] for m in MODELS) / total  # type: ignore[return-value]


def scores(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    mask = np.isfinite(p)
    yy, pp = y[mask], np.clip(p[mask], 1e-7, 1 - 1e-7)
    two = len(np.unique(yy)) == 2
    return {
        "samples": int(mask.sum()),
        "log_loss": float(log_loss(yy, pp, labels=[0, 1])) if len(yy) else float("nan"),
        "auc": float(roc_auc_score(yy, pp)) if two else float("nan"),
        "brier": float(brier_score_loss(yy, pp)) if len(yy) else float("nan"),
        "accuracy": float(accuracy_score(yy, pp >= threshold)) if len(yy) else float("nan"),
        "positive_rate": float(yy.mean()) if len(yy) else float("nan"),
    }


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    mask = np.isfinite(p)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p[mask], edges) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            rows.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "count": int(sel.sum()),
                         "mean_predicted": float(p[mask][sel].mean()), "observed": float(y[mask][sel].mean())})
    return rows


def data_hash(ohlcv: pd.DataFrame) -> str:
    return hashlib.sha256(pd.DatetimeIndex(ohlcv.index).as_unit("ms").asi8.tobytes() + ohlcv.to_numpy().tobytes()).hexdigest()


def train(ohlcv: pd.DataFrame, cfg: Config, out: Path, params: dict[str, dict[str, Any]] | None = None,
          weights: dict[str, float] | None = None, threshold: float | None = None) -> dict[str, Any]:
    """Fit, score out-of-fold, refit on everything, write `out/bundle/`, `out/report.json`, `out/report.md`."""
    data = build_dataset(ohlcv, cfg)
    w = dict(weights or model_weights(cfg))
    thr = threshold if threshold is not None else (cfg.ml.threshold if cfg.ml.threshold is not None else 0.5)
    oof = out_of_fold(data, cfg, params)
    ens = ensemble(oof, w)
    cv = {name: scores(data.y, oof[name], thr) for name in MODELS} | {"ensemble": scores(data.y, ens, thr)}
    models = make_models(cfg, params)
    for model in models.values():
        model.fit(data.X, data.y)
    importances = {
        "lightgbm": dict(zip(FEATURE_ORDER, models["lightgbm"].booster_.feature_importance("gain").tolist(), strict=True)),
        "xgboost": dict(zip(FEATURE_ORDER, [float(v) for v in models["xgboost"].feature_importances_], strict=True)),
        "random_forest": dict(zip(FEATURE_ORDER, [float(v) for v in models["random_forest"].feature_importances_],
                                  strict=True)),
    }
    used: dict[str, dict[str, Any]] = {str(k): dict(v) for k, v in cfg.ml.model_params.items()}
    for name, extra in (params or {}).items():
        used.setdefault(name, {}).update(extra)
    metadata = {
        "label": data.labels.describe(),
        "training_range": {"first": str(ohlcv.index[0]), "last": str(ohlcv.index[-1]), "bars": len(ohlcv),
                           "samples": len(data)},
        "data_sha256": data_hash(ohlcv),
        "cv": {"splitter": "PurgedTimeSeriesSplit", "splits": cfg.ml.cv_splits, "purge": cfg.ml.horizon_bars,
               "embargo": cfg.ml.embargo_bars, "scores": cv},
        "params": used,
        "seeds": {"seed": cfg.ml.seed, "threads": cfg.ml.n_threads},
        "strategies_config_hash": cfg.config_hash(),
    }
    bundle = save_bundle(out / "bundle", lightgbm_model=models["lightgbm"], xgboost_model=models["xgboost"],
                         random_forest=models["random_forest"], weights=w, threshold=thr, metadata=metadata)
    report = {"bundle": str(bundle), "cv_scores": cv, "feature_importance": importances,
              "calibration": calibration(data.y, ens), "label": data.labels.describe(), "weights": w,
              "threshold": thr, "params": used}
    write_json(out / "report.json", report)
    (out / "report.md").write_text(report_markdown(report))
    return report


def report_markdown(report: dict[str, Any]) -> str:
    lines = ["# Training report", "", f"Label: `{dumps(report['label'])}`", "",
             "## Out-of-fold scores (purged, embargoed)", "",
             "| model | samples | log loss | AUC | Brier | accuracy | positive rate |", "|---|---|---|---|---|---|---|"]
    for name, s in report["cv_scores"].items():
        lines.append(f"| {name} | {s['samples']} | {s['log_loss']:.4f} | {s['auc']:.4f} | {s['brier']:.4f} | "
                     f"{s['accuracy']:.4f} | {s['positive_rate']:.3f} |")
    lines += ["", "## Calibration of the ensemble (out of fold)", "", "| bin | count | mean predicted | observed |",
              "|---|---|---|---|"]
    lines += [f"| {r['bin']} | {r['count']} | {r['mean_predicted']:.3f} | {r['observed']:.3f} |"
              for r in report["calibration"]]
    lines += ["", "## Feature importance (LightGBM gain)", ""]
    for feat, val in sorted(report["feature_importance"]["lightgbm"].items(), key=lambda kv: -kv[1]):
        lines.append(f"- {feat}: {val:.1f}")
    return "\n".join(lines) + "\n"
