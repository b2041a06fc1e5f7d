"""Model bundles: native model files + metadata, verified on load, evaluated by one numba tree kernel.

A bundle directory holds exactly:
  lightgbm.txt         LightGBM's text model
  xgboost.json         XGBoost's JSON model
  random_forest.npz    the scikit-learn forest converted to plain arrays (loaded with allow_pickle=False)
  metadata.json        feature order, weights, threshold, label, training range and data hash, CV scores,
                       params, library versions, the sha256 of every other file and of itself (canonical)
Nothing in it executes code on load. `load_bundle` refuses a missing, extra or altered file, a wrong
feature order or an unsupported model, naming the file — there is no fallback model, ever.
Inference parses the native files into flat arrays once and evaluates all trees with
`cryptobot.kernels.trees`, so the runtime needs neither scikit-learn, LightGBM nor XGBoost.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cryptobot.cli_errors import UserError
from cryptobot.features import FEATURE_ORDER
from cryptobot.jsonio import dumps, to_jsonable
from cryptobot.kernels import trees

FILES = ("lightgbm.txt", "xgboost.json", "random_forest.npz")
METADATA = "metadata.json"
MODELS = ("lightgbm", "xgboost", "random_forest")


class BundleError(UserError, RuntimeError):
    """A bundle that must not be used; the message names the file and the problem."""


@dataclass
class Forest:
    """Flat tree arrays plus how to turn the leaf sum into a probability."""

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    default_left: np.ndarray
    value: np.ndarray
    mode: int
    link: str  # "sigmoid": p = 1/(1+exp(-(scale·sum + offset))); "mean": p = sum / n_trees
    scale: float = 1.0
    offset: float = 0.0

    def probability(self, X: np.ndarray) -> np.ndarray:
        sums = trees.forest_sums(X, self.roots, self.feature, self.threshold, self.left, self.right,
                                 self.default_left, self.value, self.mode)
        if self.link == "mean":
            return sums / self.roots.shape[0]
        return 1.0 / (1.0 + np.exp(-(self.scale * sums + self.offset)))


def _concat(nodes: list[dict[str, np.ndarray]], mode: int, link: str, scale: float = 1.0, offset: float = 0.0) -> Forest:
    roots, offs = [], 0
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "left", "right", "default_left", "value")}
    for tree in nodes:
        roots.append(offs)
        for key in parts:
            arr = tree[key]
            if key in ("left", "right"):
                arr = np.where(arr >= 0, arr + offs, -1)
            parts[key].append(arr)
        offs += tree["feature"].shape[0]
    return Forest(
        np.asarray(roots, dtype=np.int64),
        np.concatenate(parts["feature"]).astype(np.int64),
        np.concatenate(parts["threshold"]).astype(np.float64),
        np.concatenate(parts["left"]).astype(np.int64),
        np.concatenate(parts["right"]).astype(np.int64),
        np.concatenate(parts["default_left"]).astype(np.bool_),
        np.concatenate(parts["value"]).astype(np.float64),
        mode, link, scale, offset,
    )


# ---------------------------------------------------------------------------------------- parsers
def forest_from_lightgbm(text: str, source: str = "lightgbm.txt") -> Forest:
    """Parse LightGBM's text model (numerical splits; binary objective)."""
    objective = re.search(r"^objective=(.*)$", text, re.M)
    if not objective or not objective.group(1).startswith("binary"):
        raise BundleError(f"{source}: not a LightGBM binary model (objective {objective.group(1) if objective else '?'})")
    sig = re.search(r"sigmoid:([0-9.eE+-]+)", objective.group(1))
    scale = float(sig.group(1)) if sig else 1.0
    nodes = []
    for block in re.split(r"^Tree=\d+$", text.split("end of trees")[0], flags=re.M)[1:]:
        kv = dict(line.split("=", 1) for line in block.strip().splitlines() if "=" in line)
        leaves = np.array(kv["leaf_value"].split(), dtype=np.float64)
        n_internal = int(kv["num_leaves"]) - 1
        if n_internal == 0:
            nodes.append({"feature": np.array([-1]), "threshold": np.zeros(1), "left": np.array([-1]),
                          "right": np.array([-1]), "default_left": np.zeros(1, bool), "value": leaves[:1]})
            continue
        dtype = np.array(kv["decision_type"].split(), dtype=np.int64)
        if (dtype & 1).any():
            raise BundleError(f"{source}: categorical splits are not supported")

        def child(c: np.ndarray, n_internal: int = n_internal) -> np.ndarray:
            return np.where(c >= 0, c, n_internal + (-c - 1))  # negative children are leaves: ~index

        nodes.append({
            "feature": np.r_[np.array(kv["split_feature"].split(), dtype=np.int64), np.full(leaves.size, -1)],
            "threshold": np.r_[np.array(kv["threshold"].split(), dtype=np.float64), np.zeros(leaves.size)],
            "left": np.r_[child(np.array(kv["left_child"].split(), dtype=np.int64)), np.full(leaves.size, -1)],
            "right": np.r_[child(np.array(kv["right_child"].split(), dtype=np.int64)), np.full(leaves.size, -1)],
            "default_left": np.r_[(dtype & 2) > 0, np.zeros(leaves.size, bool)],
            "value": np.r_[np.zeros(n_internal), leaves],
        })
    if not nodes:
        raise BundleError(f"{source}: no trees found")
    return _concat(nodes, trees.MODE_LE_F64, "sigmoid", scale=scale)


def forest_from_xgboost(model: dict[str, Any], source: str = "xgboost.json") -> Forest:
    """Parse XGBoost's JSON model (binary:logistic, gbtree)."""
    try:
        learner = model["learner"]
        objective = learner["objective"]["name"]
        raw_base = learner["learner_model_param"]["base_score"]
        tree_list = learner["gradient_booster"]["model"]["trees"]
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{source}: not an XGBoost JSON model (missing {exc})") from None
    if objective != "binary:logistic":
        raise BundleError(f"{source}: objective {objective!r}; only binary:logistic is supported")
    base = float(re.findall(r"[-+0-9.eE]+", str(raw_base))[0])
    offset = math.log(base / (1.0 - base))
    nodes = []
    for t in tree_list:
        left = np.asarray(t["left_children"], dtype=np.int64)
        is_leaf = left == -1
        cond = np.asarray(t["split_conditions"], dtype=np.float64)
        nodes.append({
            "feature": np.where(is_leaf, -1, np.asarray(t["split_indices"], dtype=np.int64)),
            "threshold": np.where(is_leaf, 0.0, cond),
            "left": left,
            "right": np.asarray(t["right_children"], dtype=np.int64),
            "default_left": np.asarray(t["default_left"], dtype=np.int64) > 0,
            "value": np.where(is_leaf, cond, 0.0),
        })
    return _concat(nodes, trees.MODE_LT_F32, "sigmoid", offset=offset)


def forest_arrays_from_sklearn(rf: Any) -> dict[str, np.ndarray]:
    """A fitted binary RandomForestClassifier as plain arrays (what random_forest.npz holds)."""
    classes = list(getattr(rf, "classes_", []))
    if len(classes) != 2:
        raise BundleError(f"random forest must be a binary classifier, has classes {classes}")
    nodes = []
    for est in rf.estimators_:
        t = est.tree_
        counts = t.value[:, 0, :]
        total = counts.sum(axis=1)
        leaf = t.children_left == -1
        default = getattr(t, "missing_go_to_left", None)
        nodes.append({
            "feature": np.where(leaf, -1, t.feature), "threshold": np.where(leaf, 0.0, t.threshold),
            "left": t.children_left, "right": t.children_right,
            "default_left": np.zeros(leaf.size, bool) if default is None else np.asarray(default, bool),
            "value": np.where(leaf, counts[:, 1] / np.where(total > 0, total, 1.0), 0.0),
        })
    f = _concat(nodes, trees.MODE_LE_F32X, "mean")
    return {"roots": f.roots, "feature": f.feature, "threshold": f.threshold, "left": f.left, "right": f.right,
            "default_left": f.default_left, "value": f.value}


def forest_from_npz(path: Path) -> Forest:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("roots", "feature", "threshold", "left", "right", "default_left", "value")}
    except (KeyError, ValueError, OSError) as exc:
        raise BundleError(f"{path.name}: not a forest array file ({exc})") from None
    return Forest(arrays["roots"].astype(np.int64), arrays["feature"].astype(np.int64),
                  arrays["threshold"].astype(np.float64), arrays["left"].astype(np.int64),
                  arrays["right"].astype(np.int64), arrays["default_left"].astype(np.bool_),
                  arrays["value"].astype(np.float64), trees.MODE_LE_F32X, "mean")


# ------------------------------------------------------------------------------------------ bundle
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _canonical(meta: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "metadata_sha256"}, sort_keys=True,
                                     default=str).encode()).hexdigest()


def _versions() -> dict[str, str]:
    out = {}
    for name in ("lightgbm", "xgboost", "scikit-learn", "numpy", "cryptobot"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def save_bundle(out_dir: str | Path, *, lightgbm_model: Any, xgboost_model: Any, random_forest: Any,
                weights: dict[str, float], threshold: float, metadata: dict[str, Any]) -> Path:
    """Write a bundle atomically (temp directory + rename); returns its path. Any existing bundle there is replaced."""
    out = Path(out_dir)
    if set(weights) != set(MODELS) or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise BundleError(f"weights must give each of {MODELS} a non-negative weight, not all zero: {weights}")
    if not 0.0 <= threshold <= 1.0:
        raise BundleError(f"threshold {threshold} must be within [0, 1]")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is shared read-only data
    try:
        booster = getattr(lightgbm_model, "booster_", lightgbm_model)
        (tmp / "lightgbm.txt").write_text(booster.model_to_string())
        xgb = xgboost_model.get_booster() if hasattr(xgboost_model, "get_booster") else xgboost_model
        (tmp / "xgboost.json").write_bytes(bytes(xgb.save_raw(raw_format="json")))
        arrays = forest_arrays_from_sklearn(random_forest)
        np.savez(tmp / "random_forest.npz", roots=arrays["roots"], feature=arrays["feature"],
                 threshold=arrays["threshold"], left=arrays["left"], right=arrays["right"],
                 default_left=arrays["default_left"], value=arrays["value"])
        meta = dict(metadata)
        meta.update({
            "feature_order": list(FEATURE_ORDER),
            "weights": {k: float(weights[k]) for k in MODELS},
            "threshold": float(threshold),
            "library_versions": _versions(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {name: _sha256(tmp / name) for name in FILES},
        })
        meta = to_jsonable(meta)  # what is hashed is exactly what is written (NaN scores become null)
        meta["metadata_sha256"] = _canonical(meta)
        (tmp / METADATA).write_text(dumps(meta, indent=2, sort_keys=True) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@dataclass
class Bundle:
    """A verified bundle; `predict_proba` gives the weighted soft vote P(positive) per row."""

    path: Path
    metadata: dict[str, Any]
    forests: dict[str, Forest]

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.metadata["weights"])

    @property
    def feature_order(self) -> tuple[str, ...]:
        return tuple(self.metadata["feature_order"])

    @property
    def bundle_id(self) -> str:
        return hashlib.sha256("".join(sorted(self.metadata["files"].values())).encode()).hexdigest()[:12]

    def model_probabilities(self, X: np.ndarray) -> dict[str, np.ndarray]:
        rows = self._rows(X)
        return {name: forest.probability(rows) for name, forest in self.forests.items()}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(positive) for a (n, 15) matrix or one row of 15, in FEATURE_ORDER; rows must be finite."""
        probs = self.model_probabilities(X)
        w = self.weights
        total = sum(w.values())
        return sum(w[name] * probs[name] for name in MODELS) / total  # type: ignore[return-value]

    def _rows(self, X: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if rows.shape[1] != len(FEATURE_ORDER):
            raise ValueError(f"expected {len(FEATURE_ORDER)} features in FEATURE_ORDER, got {rows.shape[1]}")
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} row(s) with NaN/inf features (first: row {int(np.argmax(bad))}); "
                             "features are invalid during warm-up — wait for enough history")
        return np.ascontiguousarray(rows)


def load_bundle(path: str | Path) -> Bundle:
    """Load and verify a bundle; raises `BundleError` naming the offending file."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root}: no bundle directory there")
    meta_path = root / METADATA
    if not meta_path.is_file():
        raise BundleError(f"{meta_path}: missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("metadata_sha256") != _canonical(meta):
        raise BundleError(f"{meta_path}: contents do not match their recorded sha256 (altered)")
    present = {p.name for p in root.iterdir()}
    extra = sorted(present - set(FILES) - {METADATA})
    if extra:
        raise BundleError(f"{root / extra[0]}: unexpected file in bundle")
    for name in FILES:
        file = root / name
        if not file.is_file():
            raise BundleError(f"{file}: missing")
        if _sha256(file) != meta.get("files", {}).get(name):
            raise BundleError(f"{file}: sha256 does not match metadata.json (altered or corrupt)")
    if tuple(meta.get("feature_order", ())) != FEATURE_ORDER:
        raise BundleError(f"{meta_path}: feature order {meta.get('feature_order')} differs from FEATURE_ORDER "
                          f"{list(FEATURE_ORDER)}; retrain the bundle")
    try:
        xgb = json.loads((root / "xgboost.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{root / 'xgboost.json'}: not valid JSON ({exc})") from None
    forests = {
        "lightgbm": forest_from_lightgbm((root / "lightgbm.txt").read_text(), str(root / "lightgbm.txt")),
        "xgboost": forest_from_xgboost(xgb, str(root / "xgboost.json")),
        "random_forest": forest_from_npz(root / "random_forest.npz"),
    }
    return Bundle(root, meta, forests)
