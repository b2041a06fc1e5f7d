"""Labels, purged CV, deterministic training, promotion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import KFold, cross_val_score

from cryptobot.config import Config, load_config
from cryptobot.data import make_frame, read_csv
from cryptobot.jsonio import strict_loads
from cryptobot.ml import load_bundle
from research.cv import PurgedTimeSeriesSplit, walk_forward
from research.labels import fixed_horizon, meta_labels, triple_barrier
from research.promote import promote

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"ml.model_params.lightgbm.n_estimators": 20, "ml.model_params.xgboost.n_estimators": 20,
         "ml.model_params.random_forest.n_estimators": 10, "ml.model_params.random_forest.max_depth": 5,
         "ml.cv_splits": 3}


def bars(closes: list[float], highs: list[float] | None = None, lows: list[float] | None = None) -> pd.DataFrame:
    c = np.array(closes, dtype=float)
    h = np.array(highs, dtype=float) if highs else c
    lo = np.array(lows, dtype=float) if lows else c
    ts = np.arange(c.size, dtype=np.int64) * 3_600_000
    return make_frame(ts, {"open": c, "high": h, "low": lo, "close": c, "volume": np.ones(c.size)})


def test_fixed_horizon_is_net_of_costs_and_leaves_the_tail_unlabelled() -> None:
    df = bars([100, 100.6, 100.8, 100, 99])
    labels = fixed_horizon(df, horizon=1, threshold=0.003, cost=0.002)
    assert labels.rows.tolist() == [0, 1, 2, 3]  # the last bar has no next close: no label, not a 0
    assert labels.y.tolist() == [1, 0, 0, 0]  # +0.6 % − 0.2 % cost > 0.3 %; +0.199 % − 0.2 % is not
    assert labels.end.tolist() == [1, 2, 3, 4]


def test_triple_barrier_takes_the_lower_barrier_first_in_one_bar() -> None:
    df = bars([100, 100, 100, 100], highs=[100, 100.5, 103, 100], lows=[100, 99.5, 97, 100])
    labels = triple_barrier(df, horizon=3, up=0.02, down=0.02, cost=0.0)
    assert labels.y[0] == 0 and labels.end[0] == 2  # both barriers inside bar 2: the lower counts


def test_meta_labels_follow_the_strategy_entries() -> None:
    df = bars([100, 100, 101, 103, 103, 103], highs=[100, 100, 101, 103.5, 103, 103], lows=[100, 99.9, 100.5, 102, 102.5, 103])
    signals = pd.DataFrame({"action": [1, 0, 0, 0, 0, 0], "stop_loss": [98.0] + [np.nan] * 5,
                            "take_profit": [103.0] + [np.nan] * 5}, index=df.index)
    cfg = Config.model_validate({"costs": {"taker_fee": 0.001, "slippage_bps": 0.0}})
    labels = meta_labels(df, signals, horizon=4, cfg=cfg)
    assert labels.rows.tolist() == [0] and labels.y.tolist() == [1] and labels.end.tolist() == [3]
    short = signals.assign(action=[-1, 0, 0, 0, 0, 0], stop_loss=[102.0] + [np.nan] * 5, take_profit=[95.0] + [np.nan] * 5)
    assert meta_labels(df, short, horizon=4, cfg=cfg).y.tolist() == [0]  # the stop at 102 is hit on bar 3


def split_errors(splitter: PurgedTimeSeriesSplit, end: np.ndarray, embargo: int) -> list[str]:
    """What is wrong with each fold: training at or after the test fold, a training label window reaching into
    the test fold or ending within `embargo` bars before it, or a sample dropped that the rule keeps."""
    errors = []
    for k, (train, test) in enumerate(splitter.split(end)):
        t0 = int(test[0])
        if train.size and train.max() >= t0:
            errors.append(f"fold {k}: trains at or after its test fold")
        if np.any(end[train] >= t0 - embargo):
            errors.append(f"fold {k}: a training label ends less than {embargo} bars before the test fold")
        expected = np.flatnonzero(end[:t0] < t0 - embargo)
        if not np.array_equal(train, expected):
            errors.append(f"fold {k}: dropped samples outside purge and embargo")
    return errors


@settings(max_examples=40, deadline=None)
@given(n=st.integers(60, 300), splits=st.integers(2, 6), horizon=st.integers(1, 10), embargo=st.integers(0, 10))
def test_property_training_labels_end_at_least_embargo_bars_before_the_test_fold(n: int, splits: int, horizon: int,
                                                                                   embargo: int) -> None:
    end = np.minimum(np.arange(n) + horizon, n - 1)
    assert split_errors(PurgedTimeSeriesSplit(splits, purge=horizon, embargo=embargo, label_end=end), end,
                        embargo) == []


def test_the_property_catches_a_split_without_embargo() -> None:
    end = np.minimum(np.arange(200) + 4, 199)
    broken = PurgedTimeSeriesSplit(4, purge=4, embargo=0, label_end=end)  # purges, but ignores the embargo
    assert any("less than 8 bars" in e for e in split_errors(broken, end, embargo=8))
    assert split_errors(PurgedTimeSeriesSplit(4, purge=4, embargo=8, label_end=end), end, embargo=8) == []


def test_leaky_feature_scores_high_under_kfold_and_not_under_purged_split() -> None:
    """Overlapping 50-bar labels on a random walk: the time index lets a model copy neighbours' labels."""
    rng = np.random.default_rng(0)
    price = np.cumsum(rng.normal(0, 1, 3000))
    h = 50
    y = (price[h:] > price[:-h]).astype(int)
    X = np.arange(y.size, dtype=float)[:, None]  # leaky: position in time
    end = np.arange(y.size) + h
    model = RandomForestClassifier(n_estimators=30, random_state=0, n_jobs=1)
    leaky = cross_val_score(model, X, y, cv=KFold(5, shuffle=True, random_state=0)).mean()
    purged = cross_val_score(model, X, y, cv=PurgedTimeSeriesSplit(5, purge=h, embargo=h, label_end=end)).mean()
    assert leaky > 0.9
    assert purged < 0.65


def test_walk_forward_never_trains_on_or_after_its_test_window() -> None:
    for expanding in (False, True):
        windows = list(walk_forward(100, train=30, test=10, expanding=expanding))
        assert len(windows) == 7
        for train, test in windows:
            assert train.max() < test.min()
            assert (not expanding and len(train) == 30) or (expanding and train.min() == 0)


def train_cli(out: Path) -> subprocess.CompletedProcess[str]:
    sets = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    return subprocess.run([sys.executable, "-m", "research", "train", "--data",
                           str(ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz"), "--out", str(out), *sets,
                           "--set", "ml.horizon_bars=6", "--set", "ml.embargo_bars=6"],
                          cwd=ROOT, capture_output=True, text=True, check=False)


def test_training_is_deterministic_and_reports_out_of_fold(tmp_path: Path) -> None:
    first, second = train_cli(tmp_path / "a"), train_cli(tmp_path / "b")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    a, b = load_bundle(tmp_path / "a" / "bundle"), load_bundle(tmp_path / "b" / "bundle")
    assert a.metadata["files"] == b.metadata["files"] and a.bundle_id == b.bundle_id
    for path in [*(tmp_path / "a").glob("*.json"), tmp_path / "a" / "bundle" / "metadata.json"]:
        strict_loads(path.read_text())  # strict JSON: undefined scores are null, never NaN
    report = strict_loads((tmp_path / "a" / "report.json").read_text())
    assert set(report["cv_scores"]) == {"lightgbm", "xgboost", "random_forest", "ensemble"}
    assert report["label"]["kind"] == "meta" and report["label"]["horizon_bars"] == 6
    assert a.metadata["cv"]["purge"] == 6 and a.metadata["cv"]["embargo"] == 6 and a.metadata["data_sha256"]
    assert (tmp_path / "a" / "report.md").read_text().startswith("# Training report")


def test_promote_archives_previous_and_logs(tmp_path: Path) -> None:
    models = tmp_path / "models"
    first = promote(ROOT / "models" / "demo" / "bundle", models, reason="first")
    assert first["previous"] is None and load_bundle(models / "production").bundle_id == first["bundle_id"]
    cfg = load_config(overrides={**SMALL, "ml.seed": 7})
    from research.training import train

    train(read_csv(ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz"), cfg, tmp_path / "other")
    second = promote(tmp_path / "other" / "bundle", models, reason="second")
    assert second["previous"] == first["bundle_id"]
    assert load_bundle(models / "archive" / first["bundle_id"]).bundle_id == first["bundle_id"]
    log = [strict_loads(line) for line in (models / "promotions.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in log] == ["first", "second"] and "@" in log[0]["by"]


def test_shipped_production_bundle_verifies() -> None:
    bundle = load_bundle(ROOT / "models" / "production")
    assert bundle.bundle_id == load_bundle(ROOT / "models" / "demo" / "bundle").bundle_id
    assert bundle.metadata["label"]["kind"] == "meta"
