"""`ml.enabled` gates `research backtest` with the verified bundle; the run names what it ran."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cryptobot.config import Config, load_config
from cryptobot.data import read_csv
from cryptobot.features import compute_features
from cryptobot.jsonio import strict_loads
from cryptobot.ml import BundleError, load_bundle
from cryptobot.ml.gate import gate_probabilities
from research.backtest import run

ROOT = Path(__file__).resolve().parent.parent
DATA = "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz"
BUNDLE = ROOT / "models" / "demo" / "bundle"
SEEDS = ["atr_based", "mochipoy_alert", "multi_timeframe", "donchian_channel", "adx_trend_strength"]
RANGE = ("--start", "2018-03-01", "--end", "2018-07-01")


def cli(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "research", "backtest", "--data", DATA, "--out", str(out), *RANGE,
                           *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = read_csv(ROOT / DATA)
    return df.loc["2018-03-01":"2018-07-01"]  # type: ignore[misc]


def test_ml_enabled_gates_the_backtest_with_the_bundle(tmp_path: Path, frame: pd.DataFrame) -> None:
    out = tmp_path / "gated"
    # the demo bundle rarely reaches its own 0.5 here; 0.15 makes the gate both open and close
    proc = cli(out, "--set", "ml.enabled=true", "--set", f"ml.bundle_dir={BUNDLE}", "--set", "ml.threshold=0.15")
    assert proc.returncode == 0, proc.stderr
    stats = strict_loads((out / "stats.json").read_text())
    bundle = load_bundle(BUNDLE)
    assert stats["ml_gate"] == {"gated": True, "bundle_id": bundle.bundle_id, "threshold": 0.15}
    assert f"ML gate: bundle {bundle.bundle_id}" in proc.stdout
    assert stats["skipped_entries"].get("ml_gate", 0) > 0
    # an independent route to the same gate: features from compute_features, probabilities by hand
    probs = gate_probabilities(bundle, compute_features(frame).to_numpy())
    expected = run(frame, Config().with_overrides({"ml.threshold": 0.15}), ml_gate=probs).trades
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) == len(expected) > 0
    assert (pd.to_datetime(trades["entry_time"]) == expected["entry_time"].to_numpy()).all()
    plain = cli(tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr
    assert "ML gate: off" in plain.stdout
    ungated = strict_loads((tmp_path / "plain" / "stats.json").read_text())
    assert ungated["ml_gate"] == {"gated": False, "bundle_id": None, "threshold": None}
    plain_trades = pd.read_csv(tmp_path / "plain" / "trades.csv")
    assert not trades[["entry_time", "side"]].equals(plain_trades[["entry_time", "side"]])  # the gate acted


def test_an_unverifiable_bundle_is_an_error_not_an_ungated_run(tmp_path: Path) -> None:
    bad = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bad)
    model = bad / "lightgbm.txt"
    model.write_bytes(model.read_bytes().replace(b"leaf_value", b"leaf_vaLue", 1))
    for bundle_dir in (bad, tmp_path / "missing"):
        out = tmp_path / f"run_{bundle_dir.name}"
        proc = cli(out, "--set", "ml.enabled=true", "--set", f"ml.bundle_dir={bundle_dir}")
        assert proc.returncode == 2, proc.stdout
        assert str(bundle_dir.name) in proc.stderr
        assert not (out / "stats.json").exists()
    with pytest.raises(BundleError):
        run(read_csv(ROOT / DATA).iloc[:3000], load_config(environ={}, overrides={"ml.enabled": True,
                                                                                 "ml.bundle_dir": str(bad)}))


def test_the_run_names_the_strategies_that_ran(tmp_path: Path) -> None:
    out = tmp_path / "ema"
    proc = cli(out, "--set", "strategies.ema_cross.enabled=true", "--set", "strategies.donchian_channel.enabled=false")
    assert proc.returncode == 0, proc.stderr
    ran = [s for s in SEEDS if s != "donchian_channel"] + ["ema_cross"]
    stats = strict_loads((out / "stats.json").read_text())
    manifest = strict_loads((out / "manifest.json").read_text())
    assert stats["strategies"] == manifest["strategies"] == ran
    assert f"strategies: {', '.join(ran)};" in proc.stdout
