"""Optuna tuning: two processes share a study on a real PostgreSQL; SQLite and journal studies resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from cryptobot.ml import load_bundle
from tests.postgres import postgres_server

ROOT = Path(__file__).resolve().parent.parent
DATA = str(ROOT / "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz")
FAST = ["--set", "ml.cv_splits=3", "--set", "ml.horizon_bars=6", "--set", "ml.embargo_bars=6"]


def tune_cmd(study: str, storage: str, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "research", "tune", "--data", DATA, "--study", study, "--storage", storage,
            "--trials", str(trials), *FAST, *extra]


def completed(study: str, storage: object) -> list[optuna.trial.FrozenTrial]:
    s = optuna.load_study(study_name=study, storage=storage)
    return [t for t in s.trials if t.state == optuna.trial.TrialState.COMPLETE]


def test_two_processes_share_one_study_on_postgresql() -> None:
    with postgres_server() as url:
        procs = [subprocess.Popen(tune_cmd("shared", url, 2, "--seed", str(seed)), cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
        outputs = [p.communicate(timeout=600) for p in procs]
        for p, (_, err) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, err
        study = optuna.load_study(study_name="shared", storage=url)
        finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                           optuna.trial.TrialState.PRUNED)]
        assert len(study.trials) == 4 and len(finished) == 4  # the summed trial count
        done = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
        assert done and study.best_trial.value == max(t.value for t in done)  # one best trial over both processes
        assert "log_loss" in study.best_trial.user_attrs


def test_sqlite_study_resumes_after_a_killed_run(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    proc = subprocess.Popen(tune_cmd("resume", storage, 200), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            if len(completed("resume", storage)) >= 2:
                break
        except KeyError:  # study not created yet
            continue
    assert proc.poll() is None, proc.communicate()[1].decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(completed("resume", storage))
    assert before >= 2
    again = subprocess.run(tune_cmd("resume", storage, 2), cwd=ROOT, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert len(completed("resume", storage)) >= before + 1  # continues the same study (a trial may be pruned)
    total = optuna.load_study(study_name="resume", storage=storage).trials
    assert len(total) >= before + 2


def test_journal_storage_and_best_bundle(tmp_path: Path) -> None:
    journal = tmp_path / "journal.log"
    result = subprocess.run(tune_cmd("j", f"journal:{journal}", 2, "--best-to", str(tmp_path / "best")), cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert journal.stat().st_size > 0
    bundle = load_bundle(tmp_path / "best" / "bundle")
    assert 0.3 <= bundle.threshold <= 0.8 and abs(sum(bundle.weights.values()) - 1) < 1e-9


def test_tune_needs_a_budget() -> None:
    result = subprocess.run([sys.executable, "-m", "research", "tune", "--data", DATA, "--study", "x"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "--trials" in result.stderr


def test_default_storage_is_a_local_file(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "research", "tune", "--data", DATA, "--study", "local",
                             "--trials", "1", *FAST], cwd=tmp_path, capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "optuna" / "local.sqlite3").is_file()
