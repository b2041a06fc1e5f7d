"""Every config key is read by some code path (no dead config): the test records real attribute reads.

Pydantic stores field values in the instance `__dict__`, so a read is a `__getattribute__` call on a
section model; the test wraps that for the duration of real runs (backtest, ML dataset and models, a paper
replay, doctor) and fails naming any key nothing read. Keys the live-trading work will read are listed in
`RESERVED` with what they are for; a key there that is read anyway is fine.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from cryptobot.config import Config, _Section, load_config
from cryptobot.data import read_csv

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
BUNDLE = ROOT / "models" / "demo" / "bundle"

RESERVED: dict[str, str] = {
    # read, but only in a process the test cannot record: the command signals a running bot elsewhere
    # (tests/test_live_ops.py), and the live bar loop reconciles after a bar has closed on the exchange
    # (tests/test_live_bitbank*.py drive `live` in a subprocess against the fake bitbank)
    "live.stop_timeout_seconds": "`python -m cryptobot.live stop`",
    "live.reconcile_every_bars": "the live bar loop's full reconcile",
}


def leaf_keys(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[type[BaseModel], str]]:
    """dotted key -> (section class, field name) for every leaf (dict-valued fields count as leaves)."""
    out: dict[str, tuple[type[BaseModel], str]] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(leaf_keys(ann, f"{prefix}{name}."))
        else:
            out[prefix + name] = (model, name)
    return out


@pytest.fixture()
def reads(monkeypatch: pytest.MonkeyPatch) -> set[tuple[type[BaseModel], str]]:
    seen: set[tuple[type[BaseModel], str]] = set()
    original = _Section.__getattribute__

    def recording(self: Any, name: str) -> Any:
        cls = type(self)
        if name in cls.model_fields:
            seen.add((cls, name))
        return original(self, name)

    monkeypatch.setattr(_Section, "__getattribute__", recording)
    return seen


def paper_session(tmp_path: Path) -> None:
    """`paper` on the fake exchange in this process until the warm-up history is in the state."""
    from cryptobot.live.loop import Bot
    from cryptobot.live.state import StateStore
    from tests.fakes.exchange_server import FakeExchangeServer

    with FakeExchangeServer() as server:
        server.state.clock_ms = 1_780_000_000_000 // 900_000 * 900_000 + 420_000
        cfg = load_config(environ={}, overrides={
            "health.port": 0, "live.poll_seconds": 0.1, "live.fetch_timeout_seconds": 2.0, "live.history_bars": 1100,
            "live.api_urls": {"public": server.url, "markets": server.url}})
        state = tmp_path / "paper"
        bot = Bot(cfg, state)

        def stop_when_warm() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not bot.stop_event.is_set():
                if (state / "cryptobot.sqlite").exists():
                    try:
                        store = StateStore(state, readonly=True)
                        try:
                            if len(store.decisions()) >= 1100:
                                break
                        finally:
                            store.close()
                    except sqlite3.OperationalError:
                        pass
                time.sleep(0.2)
            bot.stop_event.set()

        watcher = threading.Thread(target=stop_when_warm, daemon=True)
        watcher.start()
        assert bot.run() == 0
        watcher.join()


def live_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live client from the config and the exchange kill switches, against the fake bitbank."""
    from cryptobot.exchange.bitbank_broker import LiveBroker, make_client
    from cryptobot.live.state import StateStore
    from cryptobot.notify import Notifier
    from tests.fakes.bitbank_server import FakeBitbankServer

    with FakeBitbankServer(api_key="k" * 16, api_secret="s" * 16) as server:
        monkeypatch.setenv("CRYPTOBOT__EXCHANGE__API_KEY", "k" * 16)
        monkeypatch.setenv("CRYPTOBOT__EXCHANGE__API_SECRET", "s" * 16)
        cfg = load_config(overrides={"live.private_url": server.private_url, "live.public_url": server.url})
        store = StateStore(tmp_path / "live")
        try:
            broker = LiveBroker(cfg, store, make_client(cfg), lambda *alert: None)
            assert broker.anomalies(0, 3_600_000, 3_600_000) == []
        finally:
            store.close()
    notifier = Notifier.from_config(load_config(environ={}))  # what the live loop alerts through
    notifier.notify("info", "keys-probe", "probe")
    notifier.close()


def exercise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptobot.doctor import run_checks
    from cryptobot.live.loop import Bot
    from cryptobot.strategies import compute_signals, register_strategy, unregister_strategy
    from research.backtest import run
    from research.dataset import build_dataset
    from research.training import out_of_fold
    from tests.test_strategies import always_long_after

    df = read_csv(SAMPLE / "bitbank_BTC-JPY_15m_2018.csv.gz").iloc[:4000]
    run(df, load_config(environ={}))
    everything = load_config(environ={}, overrides={
        "strategies.ema_cross.enabled": True, "ml.enabled": True, "ml.bundle_dir": str(BUNDLE),
        "ml.threshold": 0.15})
    run(df, everything)
    register_strategy("keys_probe", always_long_after, defaults={"after": 30.0, "sl_atr": 2.0}, state_size=1, warmup=30)
    try:
        compute_signals(df, Config.model_validate({"strategies": {"custom": {"keys_probe": {"weight": 2.0}}}}))
    finally:
        unregister_strategy("keys_probe")
    for label in ("meta", "fixed_horizon", "triple_barrier"):
        cfg = load_config(environ={}, overrides={"ml.label": label, "ml.cv_splits": 2})
        data = build_dataset(df, cfg)
    small = {"lightgbm": {"n_estimators": 5}, "xgboost": {"n_estimators": 5}, "random_forest": {"n_estimators": 5}}
    out_of_fold(data, cfg, small, on_fold=lambda fold, loss: None)
    replay = load_config(environ={}, overrides={"health.port": 0})
    assert Bot(replay, tmp_path / "replay", replay=str(SAMPLE / "bitbank_BTC-JPY_4h_2018.csv.gz")).run() == 0
    paper_session(tmp_path)
    live_parts(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)  # doctor's default state dir (live.state_dir) is relative
    run_checks([], ["health.port=0"], "live", None, 24.0, skip_exchange=True)


def test_every_config_key_is_read_by_some_code_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    reads: set[tuple[type[BaseModel], str]]) -> None:
    exercise(tmp_path, monkeypatch)
    keys = leaf_keys(Config)
    unread = sorted(k for k, where in keys.items() if where not in reads and k not in RESERVED)
    assert unread == [], f"config keys no code path reads (use them or remove them): {unread}"
    assert set(RESERVED) <= set(keys), f"RESERVED names keys that do not exist: {set(RESERVED) - set(keys)}"


def test_the_recorder_sees_a_key_nothing_reads(tmp_path: Path, reads: set[tuple[type[BaseModel], str]]) -> None:
    """The check can fail: a section field nobody touches stays unread."""
    cfg = Config()
    _ = cfg.risk.max_drawdown
    keys = leaf_keys(Config)
    assert keys["risk.max_drawdown"] in reads
    assert keys["risk.daily_loss_limit"] not in reads
