"""`python -m cryptobot.warmup` and the cold-start helper: parts compile apart, a cold backtest is the warm one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz"


def fresh_env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / "numba"), "CRYPTOBOT_PIPELINE_DIR": str(tmp / "pipelines")}
    env.pop("CRYPTOBOT_NUMBA_CACHE_BASE", None)
    return env


def python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_only_the_named_part_compiles_and_the_cache_then_says_warm(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    probe = "import cryptobot.warmup as w; print(w.is_cold('execution'), w.is_cold('strategies'))"
    assert python(env, "-c", probe).stdout.split() == ["True", "True"]
    result = python(env, "-m", "cryptobot.warmup", "--only", "execution")
    assert result.returncode == 0, result.stderr
    assert "execution (batch)" in result.stdout and "signal pipeline" not in result.stdout
    assert python(env, "-c", probe).stdout.split() == ["False", "True"]
    bad = python(env, "-m", "cryptobot.warmup", "--only", "executoin")
    assert bad.returncode == 2 and "unknown part(s) ['executoin']" in bad.stderr


def test_a_cold_backtest_compiling_ahead_writes_what_a_warm_one_writes(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    runs = []
    for name in ("cold", "warm"):
        out = tmp_path / name
        result = python(env, "-m", "research", "backtest", "--data", DATA, "--out", str(out), "--no-plot")
        assert result.returncode == 0, result.stderr
        runs.append(json.loads((out / "manifest.json").read_text())["fingerprint"])
    assert runs[0] == runs[1]
    assert python(env, "-c", "import cryptobot.warmup as w; print(w.is_cold('execution'))").stdout.strip() == "False"
