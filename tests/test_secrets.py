"""Secrets never leave the environment: every command that prints or writes runs with all three secrets set
to marker values, and no marker appears in its stdout, stderr or any file it wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.exchange_server import FakeExchangeServer

ROOT = Path(__file__).resolve().parent.parent
MARKERS = {
    "CRYPTOBOT__EXCHANGE__API_KEY": "mkKEY7f3a9c41",
    "CRYPTOBOT__EXCHANGE__API_SECRET": "mkSECRET2b8c1e77",
    "CRYPTOBOT__NOTIFY__DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/123/mkHOOK9d4e02aa",
}
# the parts of the webhook URL that identify it (its token), not the public host name
NEEDLES = ["mkKEY7f3a9c41", "mkSECRET2b8c1e77", "mkHOOK9d4e02aa"]
H1 = "data/sample/bitbank_BTC-JPY_1h_2018.csv.gz"
H4 = "data/sample/bitbank_BTC-JPY_4h_2018.csv.gz"
M15 = "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz"
SPRING = ["--start", "2018-03-01", "--end", "2018-05-01"]
SMALL_MODELS = [f"--set=ml.model_params.{m}.n_estimators=10" for m in ("lightgbm", "xgboost", "random_forest")]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one command in `tmp_path` with the markers in its environment; assert it succeeded and leaked nothing."""
    env = {**os.environ, **MARKERS}
    proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=False, timeout=900)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    for needle in NEEDLES:
        assert needle not in proc.stdout and needle not in proc.stderr, f"{args} printed a secret"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written, f"{args} wrote nothing: the check would be empty"
    for path in written:
        data = path.read_bytes()
        for needle in NEEDLES:
            assert needle.encode() not in data, f"{args} wrote a secret into {path.relative_to(tmp_path)}"
    return proc


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """A working directory with the shipped config and data, like a user's checkout."""
    for name in ("config", "data/sample"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def test_config_show(work: Path) -> None:
    out = run(work, "-m", "cryptobot.config", "show")
    assert "api_secret" in out.stdout  # the key is shown, masked


def test_backtest(work: Path) -> None:
    run(work, "-m", "research", "backtest", "--data", str(work / H1), "--out", "runs/bt")
    assert (work / "runs/bt/stats.json").is_file()


def test_sweep(work: Path) -> None:
    run(work, "-m", "research", "sweep", "--data", str(work / H1), "--out", "runs/sweep",
        "--grid", "risk.max_drawdown=[0.1,0.2]")


def test_train_and_promote(work: Path) -> None:
    run(work, "-m", "research", "train", "--data", str(work / M15), *SPRING, *SMALL_MODELS, "--out", "runs/train")
    run(work, "-m", "research", "promote", "runs/train/bundle", "--models", "models", "--reason", "secret test")
    assert (work / "models/production/metadata.json").is_file()


def test_tune(work: Path) -> None:
    run(work, "-m", "research", "tune", "--data", str(work / M15), *SPRING, *SMALL_MODELS, "--study", "s",
        "--trials", "2", "--best-to", "runs/tuned")
    assert (work / "runs/optuna/s.sqlite3").is_file() and (work / "runs/tuned").is_dir()


def test_walkforward(work: Path) -> None:
    run(work, "-m", "research", "walkforward", "--data", str(work / H4), "--train", "90d", "--test", "60d",
        *SMALL_MODELS, "--out", "runs/wf", "--quiet")


def test_data_import_validate_resample_list(work: Path) -> None:
    store = ["--store", "store"]
    run(work, "-m", "cryptobot.data", *store, "import", str(work / H1), "--exchange", "bitbank", "--symbol", "BTC/JPY",
        "--timeframe", "1h")
    run(work, "-m", "cryptobot.data", *store, "validate", "bitbank/BTC-JPY/1h")
    run(work, "-m", "cryptobot.data", *store, "resample", "bitbank/BTC-JPY/1h", "--to", "4h", "--out", "h4.csv")
    listing = run(work, "-m", "cryptobot.data", *store, "list")
    assert "BTC-JPY" in listing.stdout or "BTC/JPY" in listing.stdout


@pytest.fixture()
def exchange() -> Iterator[FakeExchangeServer]:
    with FakeExchangeServer() as srv:
        srv.state.clock_ms = None  # the command runs on the wall clock
        srv.state.first_ms = int(time.time() * 1000) - 3 * 86_400_000
        yield srv


def test_data_download(work: Path, exchange: FakeExchangeServer) -> None:
    run(work, "-m", "cryptobot.data", "--store", "store", "download", "--exchange", "bitbank", "--symbol", "BTC/JPY",
        "--timeframe", "1h", "--since", str(exchange.state.first_ms), "--quiet",
        "--api-url", f"public={exchange.url}", "--api-url", f"markets={exchange.url}")
    assert (work / "store/bitbank/BTC-JPY/1h.parquet").is_file()
