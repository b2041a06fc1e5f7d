"""`python -m research.bench ml`: bundle inference vs each library's native predict, training time per model,
and Optuna's per-trial storage overhead (in-memory, SQLite, journal file, PostgreSQL with --postgres URL).

Uses the shipped production bundle's model sizes retrained on the shipped 15m sample, so native and
bundle predictions come from the same models.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cryptobot.config import load_config
from cryptobot.data import read_csv
from cryptobot.ml import load_bundle, save_bundle
from research.bench.features import machine
from research.dataset import build_dataset
from research.training import make_models, model_weights

ROOT = Path(__file__).resolve().parents[2]
DEMO = {"ml.model_params.lightgbm.n_estimators": 60, "ml.model_params.lightgbm.num_leaves": 15,
        "ml.model_params.xgboost.n_estimators": 60, "ml.model_params.xgboost.max_depth": 4,
        "ml.model_params.random_forest.n_estimators": 40, "ml.model_params.random_forest.max_depth": 6}


def percentiles(fn: Any, rows: np.ndarray, repeat: int) -> tuple[float, float]:
    times = []
    for i in range(repeat):
        row = rows[i % len(rows)]
        t0 = time.perf_counter()
        fn(row)
        times.append(time.perf_counter() - t0)
    arr = np.array(times) * 1e6
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def optuna_overhead(storage: Any, trials: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=f"bench-{time.time_ns()}")
    t0 = time.perf_counter()
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2 + t.suggest_int("n", 1, 100) * 0.0, n_trials=trials)
    return (time.perf_counter() - t0) / trials * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.bench ml", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2000, help="one-row predictions timed (default 2000)")
    parser.add_argument("--trials", type=int, default=50, help="Optuna trials per storage (default 50)")
    parser.add_argument("--postgres", help="also measure a PostgreSQL storage at this SQLAlchemy URL")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    cfg = load_config(overrides=DEMO)
    data = build_dataset(read_csv(ROOT / "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz"), cfg)
    models = make_models(cfg)
    print("\ntraining time per model (demo sizes, one thread):")
    for name, model in models.items():
        t0 = time.perf_counter()
        model.fit(data.X, data.y)
        print(f"  {name:<14} {time.perf_counter() - t0:8.2f} s  ({len(data):,} samples)")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_bundle(save_bundle(Path(tmp) / "b", lightgbm_model=models["lightgbm"],
                                         xgboost_model=models["xgboost"], random_forest=models["random_forest"],
                                         weights=model_weights(cfg), threshold=0.5, metadata={}))
    rows = data.X[: max(1, min(len(data), 1000))]
    bundle.predict_proba(rows[0])
    print("\none-row inference, µs (p50 / p99):")
    results = {"bundle (all three, weighted)": percentiles(bundle.predict_proba, rows, args.repeat)}
    for name, model in models.items():
        model.predict_proba(rows[:1])
        results[f"native {name}"] = percentiles(lambda r, m=model: m.predict_proba(r.reshape(1, -1)), rows,
                                                max(100, args.repeat // 10))
    for name, (p50, p99) in results.items():
        print(f"  {name:<30} {p50:9.1f} / {p99:9.1f}")
    native_sum = sum(results[f"native {n}"][0] for n in models)
    print(f"  native total (sum of the three p50)  {native_sum:9.1f}   → bundle is {native_sum / results['bundle (all three, weighted)'][0]:.0f}x faster; target ≤ 1,000 µs")
    X = data.X
    t0 = time.perf_counter()
    bundle.predict_proba(X)
    batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    for model in models.values():
        model.predict_proba(X)
    native_batch = time.perf_counter() - t0
    print(f"\nbatch inference of {len(X):,} rows: bundle {batch * 1e3:.1f} ms, native (three models) "
          f"{native_batch * 1e3:.1f} ms")
    print("\nOptuna trial overhead per storage (ms per trial, trivial objective):")
    with tempfile.TemporaryDirectory() as tmp:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storages: dict[str, Any] = {"in-memory": None, "sqlite": f"sqlite:///{tmp}/bench.sqlite3",
                                    "journal file": JournalStorage(JournalFileBackend(f"{tmp}/journal.log"))}
        if args.postgres:
            storages["postgresql"] = args.postgres
        for name, storage in storages.items():
            print(f"  {name:<14} {optuna_overhead(storage, args.trials):8.2f}")
    return 0
