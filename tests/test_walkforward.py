"""Walk-forward: never trains on data at or after its test window; reports only out-of-sample windows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cryptobot.config import load_config
from cryptobot.data import read_csv
from cryptobot.jsonio import strict_loads
from research.walkforward import run_walkforward, window_bars

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data/sample/bitbank_BTC-JPY_1h_2018.csv.gz"
SMALL = {"ml.model_params.lightgbm.n_estimators": 20, "ml.model_params.xgboost.n_estimators": 20,
         "ml.model_params.random_forest.n_estimators": 10, "ml.model_params.random_forest.max_depth": 5}


@pytest.mark.parametrize("expanding", [False, True])
def test_windows_never_train_at_or_after_their_test(expanding: bool) -> None:
    df = read_csv(DATA)
    frame, summary = run_walkforward(df, load_config(overrides=SMALL), train=2000, test=1000, expanding=expanding,
                                     progress=False)
    assert summary["windows"] == len(frame) == 6
    # the gate judged every signal of every test window: "gated" counts only gated decisions
    assert (frame["signals_without_probability"] == 0).all() and (frame["gated_signals"] > 0).all()
    assert summary["signals_without_probability"] == 0 and summary["embargo_bars"] == 16
    assert (frame["train_end_position"] < frame["test_start_position"]).all()
    assert (frame["train_last"] < frame["test_first"]).all()
    assert (frame["test_first"].iloc[1:].to_numpy() > frame["test_last"].iloc[:-1].to_numpy()).all()  # no overlap
    if expanding:
        assert (frame["train_first"] == df.index[0]).all()
    else:
        assert (frame["train_first"].diff().dropna() == pd.Timedelta(hours=1000)).all()


def test_window_sizes_from_durations() -> None:
    df = read_csv(DATA)
    assert window_bars("90d", df) == 90 * 24 and window_bars("1500", df) == 1500
    with pytest.raises(ValueError, match="number of bars"):
        window_bars("soon", df)


def test_cli_reports_out_of_sample_only(tmp_path: Path) -> None:
    sets = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    result = subprocess.run([sys.executable, "-m", "research", "walkforward", "--data", str(DATA), "--train", "120d",
                             "--test", "60d", "--out", str(tmp_path), "--quiet", *sets], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    for path in tmp_path.glob("*.json"):
        strict_loads(path.read_text())
    summary = strict_loads((tmp_path / "summary.json").read_text())
    assert summary["windows"] == 3 and set(summary["out_of_sample"]) == {"ungated", "gated"}
    windows = pd.read_csv(tmp_path / "windows.csv")
    assert {"ungated_sharpe", "gated_sharpe", "gated_trade_count"} <= set(windows.columns)
