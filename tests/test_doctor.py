"""`python -m cryptobot doctor`: each check failing on purpose gives its fail line and exit code 2."""

from __future__ import annotations

import json
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
SAMPLE = ROOT / "data" / "sample" / "bitbank_BTC-JPY_15m_2018.csv.gz"
MARKER = "doctor-secret-marker-5f1c"


def doctor(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[int, dict[str, dict[str, str]], str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT__")} | (env or {})
    if env and "NUMBA_CACHE_DIR" in env:
        full_env.pop("CRYPTOBOT_NUMBA_CACHE_BASE", None)  # else the parent's keyed cache base wins
    result = subprocess.run([sys.executable, "-m", "cryptobot", "doctor", "--json", *args], cwd=cwd, env=full_env,
                            capture_output=True, text=True, check=False, timeout=300)
    report = json.loads(result.stdout)
    assert report["exit_code"] == result.returncode
    return result.returncode, {c["name"]: c for c in report["checks"]}, result.stdout + result.stderr


@pytest.fixture(scope="module")
def fake_exchange() -> Iterator[FakeExchangeServer]:
    with FakeExchangeServer() as srv:
        yield srv


@pytest.fixture
def config_file(tmp_path: Path, fake_exchange: FakeExchangeServer) -> Path:
    """Point the exchange check at the fake exchange on loopback and the store at an empty tmp dir."""
    path = tmp_path / "doctor.yaml"
    path.write_text(f"live:\n  api_urls:\n    public: {fake_exchange.url}\n    markets: {fake_exchange.url}\n"
                    f"data:\n  store_dir: {tmp_path / 'store'}\n")
    return path


def test_a_ready_paper_machine_has_no_failure(tmp_path: Path, config_file: Path) -> None:
    code, checks, out = doctor("--config", str(config_file), "--state-dir", str(tmp_path / "state"))
    assert code in (0, 1), out
    assert {c["status"] for c in checks.values()} <= {"ok", "warn"}
    assert checks["exchange"]["status"] == "ok" and "clock skew" in checks["exchange"]["detail"]
    assert checks["data store"]["status"] == "warn"  # nothing stored: the bot downloads its own history
    assert set(checks) == {"config", "secrets", "model bundle", "data store", "exchange", "numba cache", "state dir", "disk"}


def test_bad_config_names_the_key() -> None:
    code, checks, _ = doctor(env={"CRYPTOBOT__RISK__MAX_DRAWDOWN": "5"})
    assert code == 2 and checks["config"]["status"] == "fail" and "risk.max_drawdown" in checks["config"]["detail"]


def test_missing_secret_fails_live_and_a_set_secret_is_never_shown(tmp_path: Path, config_file: Path) -> None:
    code, checks, _ = doctor("--mode", "live", "--config", str(config_file), "--state-dir", str(tmp_path / "s"))
    assert code == 2 and checks["secrets"]["status"] == "fail"
    assert "CRYPTOBOT__EXCHANGE__API_KEY" in checks["secrets"]["detail"]
    secrets = {"CRYPTOBOT__EXCHANGE__API_KEY": MARKER, "CRYPTOBOT__EXCHANGE__API_SECRET": MARKER,
               "CRYPTOBOT__NOTIFY__DISCORD_WEBHOOK_URL": f"https://discord.invalid/{MARKER}"}
    _, checks, out = doctor("--mode", "live", "--config", str(config_file), "--state-dir", str(tmp_path / "s"), env=secrets)
    assert checks["secrets"]["status"] == "ok" and MARKER not in out


def test_tampered_bundle_fails_when_the_gate_is_on(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "models" / "demo" / "bundle", bundle)
    data = bytearray((bundle / "lightgbm.txt").read_bytes())
    data[100] ^= 1
    (bundle / "lightgbm.txt").write_bytes(bytes(data))
    code, checks, _ = doctor("--offline", "--set", "ml.enabled=true", "--set", f"ml.bundle_dir={bundle}")
    assert code == 2 and checks["model bundle"]["status"] == "fail" and "lightgbm.txt" in checks["model bundle"]["detail"]
    code, checks, _ = doctor("--offline", "--set", f"ml.bundle_dir={ROOT / 'models' / 'demo' / 'bundle'}")
    assert checks["model bundle"]["status"] == "ok"


def test_stale_data_fails(tmp_path: Path) -> None:
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-m", "cryptobot.data", "--store", str(store), "import", str(SAMPLE), "--exchange",
                    "bitbank", "--symbol", "BTC/JPY", "--timeframe", "15m"], cwd=ROOT, check=True, capture_output=True)
    code, checks, _ = doctor("--offline", "--set", f"data.store_dir={store}")
    assert code == 2 and checks["data store"]["status"] == "fail" and "cryptobot.data download" in checks["data store"]["detail"]


def test_unreachable_exchange_fails(tmp_path: Path) -> None:
    path = tmp_path / "down.yaml"
    path.write_text("live:\n  fetch_timeout_seconds: 2\n  api_urls:\n    public: http://127.0.0.1:9\n    markets: http://127.0.0.1:9\n")
    code, checks, _ = doctor("--config", str(path))
    assert code == 2 and checks["exchange"]["status"] == "fail"


def test_locked_state_fails_naming_the_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    bot = subprocess.Popen([sys.executable, "-m", "cryptobot.live", "paper", "--replay", str(SAMPLE), "--speed", "1",
                            "--state-dir", str(state)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            code, checks, _ = doctor("--offline", "--state-dir", str(state))
            if checks["state dir"]["status"] == "fail" or time.monotonic() > deadline or bot.poll() is not None:
                break
            time.sleep(1)
        assert code == 2 and checks["state dir"]["status"] == "fail"
        assert str(bot.pid) in checks["state dir"]["detail"]
    finally:
        bot.terminate()
        bot.wait(timeout=60)
    _, checks, _ = doctor("--offline", "--state-dir", str(state))
    assert checks["state dir"]["status"] == "ok"


def test_unwritable_numba_cache_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, checks, _ = doctor("--offline", env={"NUMBA_CACHE_DIR": str(blocker / "cache")})
    assert code == 2 and checks["numba cache"]["status"] == "fail"


def test_cold_numba_cache_warns(tmp_path: Path) -> None:
    _, checks, _ = doctor("--offline", env={"NUMBA_CACHE_DIR": str(tmp_path / "empty-cache")})
    assert checks["numba cache"]["status"] == "warn" and "cryptobot.warmup" in checks["numba cache"]["detail"]


def test_unwritable_state_dir_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, checks, _ = doctor("--offline", "--state-dir", str(blocker / "state"))
    assert code == 2 and checks["state dir"]["status"] == "fail" and "not writable" in checks["state dir"]["detail"]


def test_plain_output_is_one_line_per_check_with_what_to_do(tmp_path: Path) -> None:
    """Without --json: `STATUS  NAME  detail — what to do`, one line per check, and the exit code."""
    result = subprocess.run([sys.executable, "-m", "cryptobot", "doctor", "--offline", "--mode", "live",
                             "--state-dir", str(tmp_path / "state")], cwd=ROOT, capture_output=True, text=True,
                            check=False, timeout=300,
                            env={k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT__")})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert set(lines) == {"config", "secrets", "model", "data", "numba", "state", "disk"}, result.stdout
    assert lines["secrets"].startswith("fail") and "CRYPTOBOT__EXCHANGE__API_KEY" in lines["secrets"]
    assert "export them" in lines["secrets"]
    assert all(line.split()[0] in {"ok", "warn", "fail"} for line in lines.values())
