"""Operator commands and refusals: halt/resume, the drawdown halt across restarts, state made by other
kernel code or config refused, a tampered model bundle means no trading, secrets never written, and
`import cryptobot.live` stays free of the research packages."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cryptobot.data import load_frame, write_csv
from cryptobot.live.__main__ import main as live_main
from cryptobot.live.state import StateStore

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "sample" / "bitbank_BTC-JPY_4h_2018.csv.gz"


def status(state: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert live_main(["status", "--json", "--state-dir", str(state)]) == 0
    return json.loads(capsys.readouterr().out)


def replay(state: Path, path: Path = DATA, *extra: str) -> int:
    return live_main(["paper", "--replay", str(path), "--speed", "max", "--state-dir", str(state), *extra])


def head(tmp_path: Path, n: int) -> Path:
    out = tmp_path / f"bitbank_BTC-JPY_4h_head{n}.csv"
    write_csv(load_frame(DATA).iloc[:n], out)
    return out


def test_status_on_a_state_that_never_ran_and_on_a_stopped_bot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert live_main(["status", "--state-dir", str(tmp_path / "none")]) == 2
    assert "no state here" in capsys.readouterr().err
    assert replay(tmp_path, head(tmp_path, 400)) == 0
    s = status(tmp_path, capsys)
    assert s["running"] is False and s["bars"] == 400 and s["last_bar"] is not None
    assert set(s["kill_switches"]) >= {"manual_halt", "drawdown_halt", "daily_loss_limit", "model_unverified"}
    assert live_main(["stop", "--state-dir", str(tmp_path)]) == 1
    assert "no running process" in capsys.readouterr().err


def test_halt_blocks_new_decisions_until_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay(tmp_path, head(tmp_path, 300)) == 0
    before = status(tmp_path, capsys)["trades"]
    assert live_main(["halt", "--state-dir", str(tmp_path)]) == 0
    assert status(tmp_path, capsys)["kill_switches"]["manual_halt"] is True
    assert replay(tmp_path, head(tmp_path, 1200)) == 0
    store = StateStore(tmp_path, readonly=True)
    halted = store.decisions().iloc[300:]
    entries = [r for (r,) in store.db.execute("SELECT reason FROM events WHERE kind = 'entry' AND seq >= 300")]
    store.close()
    assert entries == []  # no entry decided while halted
    assert halted["verdict"].str.contains("manual_halt").any()
    assert live_main(["resume", "--state-dir", str(tmp_path)]) == 0
    assert status(tmp_path, capsys)["kill_switches"]["manual_halt"] is False
    assert replay(tmp_path) == 0
    store = StateStore(tmp_path, readonly=True)
    later = [r for (r,) in store.db.execute("SELECT reason FROM events WHERE kind = 'entry' AND seq >= 1200")]
    store.close()
    assert later, "trading resumes after `resume`"
    assert status(tmp_path, capsys)["trades"] > before


def test_drawdown_halt_survives_restarts_until_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tight = ["--set", "risk.max_drawdown=0.002"]  # reached on the 4h head; 0.003 is not (drawdown scaling)
    assert replay(tmp_path, head(tmp_path, 600), *tight) == 0
    s = status(tmp_path, capsys)
    assert s["kill_switches"]["drawdown_halt"] is True
    assert replay(tmp_path, head(tmp_path, 1000), *tight) == 0  # a restart: still halted
    store = StateStore(tmp_path, readonly=True)
    entries = [r for (r,) in store.db.execute("SELECT seq FROM events WHERE kind = 'entry' AND seq >= 600")]
    skips = [r for (r,) in store.db.execute("SELECT reason FROM events WHERE kind = 'skip' AND seq >= 600")]
    store.close()
    assert entries == [] and "risk_halt" in skips
    assert status(tmp_path, capsys)["kill_switches"]["drawdown_halt"] is True
    assert live_main(["resume", "--state-dir", str(tmp_path)]) == 0
    assert status(tmp_path, capsys)["kill_switches"]["resume_pending"] is True
    assert replay(tmp_path, head(tmp_path, 1100), *tight) == 0
    store = StateStore(tmp_path, readonly=True)
    resumed = [r for (r,) in store.db.execute("SELECT seq FROM events WHERE kind = 'entry' AND seq >= 1000")]
    store.close()
    assert resumed, "entries are taken again after resume"


def test_state_from_other_kernel_code_or_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = head(tmp_path, 200)
    assert replay(tmp_path / "a", small) == 0
    assert replay(tmp_path / "a", small, "--set", "risk.max_drawdown=0.1") == 2
    assert "another trading config" in capsys.readouterr().err
    db = sqlite3.connect(tmp_path / "a" / "cryptobot.sqlite")
    db.execute("UPDATE meta SET value = 'deadbeef' WHERE key = 'kernel_digest'")
    db.commit()
    db.close()
    assert replay(tmp_path / "a", small) == 2
    assert "another kernel code" in capsys.readouterr().err
    store = StateStore(tmp_path / "a", readonly=True)
    assert store.bar_count() == 200  # nothing was continued
    store.close()
    # polling, logging and alerting settings may change freely
    assert replay(tmp_path / "b", small) == 0
    assert replay(tmp_path / "b", small, "--set", "live.poll_seconds=1") == 0


@pytest.mark.parametrize("column", ["feature_layout", "strategy_layout", "execution_layout"])
def test_kernel_state_of_another_layout_is_refused(column: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The saved kernel row carries each kernel's layout digest; a row of another layout is never read into
    this code's state (its values would sit at other offsets), even when the kernel digest in meta matches."""
    small = head(tmp_path, 200)
    assert replay(tmp_path / "a", small) == 0
    store = StateStore(tmp_path / "a", readonly=True)
    saved = store.kernel_states()
    store.close()
    assert saved is not None and all(len(getattr(saved, c)) == 16 for c in
                                     ("feature_layout", "strategy_layout", "execution_layout"))
    db = sqlite3.connect(tmp_path / "a" / "cryptobot.sqlite")
    db.execute(f"UPDATE kernel SET {column} = '0123456789abcdef'")
    db.commit()
    db.close()
    assert replay(tmp_path / "a", small) == 2
    assert "0123456789abcdef" in (err := capsys.readouterr().err) and "rebuild the state from history" in err
    store = StateStore(tmp_path / "a", readonly=True)
    assert store.bar_count() == 200  # nothing was continued
    store.close()


def test_tampered_bundle_means_no_trading_and_a_critical_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "models" / "demo" / "bundle", bundle)
    with open(bundle / "lightgbm.txt", "a") as f:
        f.write("\n")
    code = replay(tmp_path / "s", head(tmp_path, 200), "--set", "ml.enabled=true", "--set", f"ml.bundle_dir={bundle}")
    assert code == 4
    lines = [json.loads(x) for x in (tmp_path / "s" / "live.log").read_text().splitlines()]
    assert any(x["level"] == "critical" and x["event"] == "model_unverified" for x in lines)
    s = status(tmp_path / "s", capsys)
    assert s["bars"] == 0 and s["kill_switches"]["model_unverified"]


def test_secrets_are_never_written(tmp_path: Path) -> None:
    secret = "s3cr3t-api-key-value-0123"
    env = {**os.environ, "CRYPTOBOT__EXCHANGE__API_KEY": secret, "CRYPTOBOT__EXCHANGE__API_SECRET": secret + "x"}
    small = head(tmp_path, 150)
    proc = subprocess.run([sys.executable, "-m", "cryptobot.live", "paper", "--replay", str(small), "--state-dir",
                           str(tmp_path / "s")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert secret not in proc.stderr and secret not in proc.stdout
    for f in (tmp_path / "s").iterdir():
        assert secret.encode() not in f.read_bytes(), f


def test_import_cryptobot_live_imports_no_research_packages() -> None:
    code = ("import sys, cryptobot.live, cryptobot.live.__main__, cryptobot.live.loop, cryptobot.exchange.public\n"
            "bad = [m for m in ('vectorbt', 'optuna', 'sklearn', 'lightgbm', 'xgboost', 'jupyter', 'papermill', "
            "'research') if m in sys.modules]\n"
            "print(','.join(bad))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
