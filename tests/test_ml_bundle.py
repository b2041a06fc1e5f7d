"""Model bundles: round trip, tamper refusal naming the file, converted trees equal each library's predictions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryptobot.data import read_csv
from cryptobot.features import FEATURE_ORDER, compute_features
from cryptobot.ml import BundleError, load_bundle, save_bundle
from cryptobot.ml.bundle import FILES, _canonical

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "data" / "sample").glob("*.csv.gz"))
WEIGHTS = {"lightgbm": 0.4, "xgboost": 0.4, "random_forest": 0.2}


def features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    df = read_csv(path)
    feats = compute_features(df).dropna()
    y = (df["close"].shift(-1).loc[feats.index] > df["close"].loc[feats.index] * 1.001).to_numpy().astype(int)
    return feats.to_numpy(), y


@pytest.fixture(scope="module")
def models() -> tuple:  # type: ignore[type-arg]
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    X, y = features(ROOT / "data/sample/bitbank_BTC-JPY_1h_2018.csv.gz")
    m1 = lgb.LGBMClassifier(n_estimators=40, num_leaves=15, random_state=1, verbose=-1, n_jobs=1).fit(X, y)
    m2 = xgb.XGBClassifier(n_estimators=40, max_depth=4, random_state=1, n_jobs=1).fit(X, y)
    m3 = RandomForestClassifier(n_estimators=25, max_depth=8, random_state=1, n_jobs=1).fit(X, y)
    return m1, m2, m3


@pytest.fixture()
def bundle_dir(models: tuple, tmp_path: Path) -> Path:  # type: ignore[type-arg]
    m1, m2, m3 = models
    return save_bundle(tmp_path / "bundle", lightgbm_model=m1, xgboost_model=m2, random_forest=m3, weights=WEIGHTS,
                       threshold=0.55, metadata={"label": {"kind": "test", "horizon": 1}})


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_converted_trees_equal_each_library(models: tuple, bundle_dir: Path, path: Path) -> None:  # type: ignore[type-arg]
    m1, m2, m3 = models
    X, _ = features(path)
    probs = load_bundle(bundle_dir).model_probabilities(X)
    np.testing.assert_allclose(probs["random_forest"], m3.predict_proba(X)[:, 1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(probs["lightgbm"], m1.predict_proba(X)[:, 1], rtol=0, atol=1e-12)
    # XGBoost predicts in float32: agreement to its own precision (a few float32 ulps)
    np.testing.assert_allclose(probs["xgboost"], m2.predict_proba(X)[:, 1], rtol=0, atol=5e-7)


def test_round_trip_is_the_weighted_soft_vote(models: tuple, bundle_dir: Path) -> None:  # type: ignore[type-arg]
    m1, m2, m3 = models
    X, _ = features(ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz")
    bundle = load_bundle(bundle_dir)
    expected = (0.4 * m1.predict_proba(X)[:, 1] + 0.4 * m2.predict_proba(X)[:, 1] + 0.2 * m3.predict_proba(X)[:, 1])
    np.testing.assert_allclose(bundle.predict_proba(X), expected, atol=1e-6)
    one = bundle.predict_proba(X[7])
    assert one.shape == (1,) and one[0] == pytest.approx(bundle.predict_proba(X)[7])
    assert bundle.threshold == 0.55 and bundle.weights == WEIGHTS and bundle.feature_order == FEATURE_ORDER
    assert bundle.metadata["label"] == {"kind": "test", "horizon": 1} and len(bundle.bundle_id) == 12
    with pytest.raises(ValueError, match="NaN/inf features"):
        bundle.predict_proba(np.full(15, np.nan))


@pytest.mark.parametrize("name", [*FILES, "metadata.json"])
def test_a_flipped_byte_in_any_file_is_refused(bundle_dir: Path, name: str) -> None:
    target = bundle_dir / name
    data = bytearray(target.read_bytes())
    pos = len(data) // 2
    data[pos] = (data[pos] + 1) % 256 if data[pos] not in (b'"'[0], b"\\"[0]) else data[pos]
    if bytes(data) == target.read_bytes():
        data[pos + 1] = (data[pos + 1] + 1) % 256
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=name.replace(".", r"\.")):
        load_bundle(bundle_dir)


def test_missing_and_extra_files_are_refused(bundle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    (copy / "random_forest.npz").unlink()
    with pytest.raises(BundleError, match=r"random_forest\.npz: missing"):
        load_bundle(copy)
    (bundle_dir / "model.pkl").write_bytes(b"not allowed")
    with pytest.raises(BundleError, match=r"model\.pkl: unexpected file"):
        load_bundle(bundle_dir)
    with pytest.raises(BundleError, match="no bundle directory"):
        load_bundle(tmp_path / "nowhere")


def test_reordered_feature_list_is_refused_even_if_rehashed(bundle_dir: Path) -> None:
    meta_path = bundle_dir / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["feature_order"] = meta["feature_order"][::-1]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="altered"):
        load_bundle(bundle_dir)
    meta["metadata_sha256"] = _canonical(meta)  # a consistent forgery: the order check still refuses it
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="feature order .* differs from FEATURE_ORDER"):
        load_bundle(bundle_dir)


def test_save_validates_weights_and_threshold(models: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    m1, m2, m3 = models
    with pytest.raises(BundleError, match="weights"):
        save_bundle(tmp_path / "b", lightgbm_model=m1, xgboost_model=m2, random_forest=m3,
                    weights={"lightgbm": 1.0}, threshold=0.5, metadata={})
    with pytest.raises(BundleError, match="threshold"):
        save_bundle(tmp_path / "b", lightgbm_model=m1, xgboost_model=m2, random_forest=m3, weights=WEIGHTS,
                    threshold=1.5, metadata={})
    assert not (tmp_path / "b").exists()
