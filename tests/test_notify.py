"""Discord alerts against a fake webhook server on 127.0.0.1 (real HTTP, real background thread)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

from cryptobot.config import load_config
from cryptobot.notify import Notifier, format_daily_summary
from cryptobot.notify.discord import CUT_MARKER
from tests.fakes.discord_server import FakeDiscordServer

KEY, SECRET = "KEYMARKER-n0t1fy", "SECRETMARKER-n0t1fy"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.fixture()
def discord() -> Iterator[FakeDiscordServer]:
    with FakeDiscordServer() as srv:
        yield srv


def notifier(srv: FakeDiscordServer, clock: Clock | None = None, **kw: object) -> Notifier:
    kw.setdefault("min_interval_seconds", 0.0)
    return Notifier(srv.webhook_url, clock=clock or Clock(), secrets=[KEY, SECRET], poll_seconds=0.02,
                    **kw)  # type: ignore[arg-type]


def contents(srv: FakeDiscordServer) -> list[str]:
    return [b["content"] for b in srv.received]


def test_levels_and_redaction(discord: FakeDiscordServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    n = notifier(discord)
    n.critical("halt", f"drawdown halt; key {KEY} secret {SECRET} hook {discord.webhook_url}")
    n.warning("latency", "API latency 900 ms")
    n.close()
    assert contents(discord)[0].startswith("**CRITICAL** drawdown halt")
    assert contents(discord)[1] == "**WARNING** API latency 900 ms"
    everything = "\n".join(contents(discord)) + caplog.text + repr(n)
    for marker in (KEY, SECRET, "TOKENMARKER"):
        assert marker not in everything
    assert contents(discord)[0].count("[redacted]") == 3


def test_dedupe_by_key_with_cooldown(discord: FakeDiscordServer) -> None:
    clock = Clock()
    n = notifier(discord, clock, dedupe_cooldown_seconds=600)
    assert n.critical("exchange-down", "exchange unreachable")
    clock.now += 599
    assert not n.critical("exchange-down", "exchange unreachable")
    assert not n.critical("exchange-down", "exchange unreachable")
    assert n.critical("other", "another incident")
    clock.now += 2
    assert n.critical("exchange-down", "exchange unreachable")
    n.close()
    assert contents(discord) == ["**CRITICAL** exchange unreachable", "**CRITICAL** another incident",
                                 "**CRITICAL** exchange unreachable (+2 similar suppressed)"]


def test_info_is_batched_into_digests(discord: FakeDiscordServer) -> None:
    clock = Clock()
    n = notifier(discord, clock, digest_interval_seconds=3600)
    for i in range(3):
        n.info(f"fill-{i}", f"fill {i}")
    time.sleep(0.2)  # the worker polls several times; nothing is due yet
    assert discord.received == []
    clock.now += 3600
    wait_until(lambda: len(discord.received) == 1)
    assert contents(discord) == ["**INFO digest** (3)\n- fill 0\n- fill 1\n- fill 2"]
    n.info("fill-3", "fill 3")
    n.close()  # closing flushes what is pending
    assert contents(discord)[1] == "**INFO digest** (1)\n- fill 3"


def test_429_retry_after_is_waited_out(discord: FakeDiscordServer) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    discord.plan.extend(["429:0.25", "429:0.1"])
    n = notifier(discord, sleep=sleep)
    n.critical("k", "after two 429s")
    n.close()
    assert discord.answers == [429, 429, 204]
    assert sleeps[:2] == [0.25, 0.1]
    assert contents(discord) == ["**CRITICAL** after two 429s"]


def test_retries_are_bounded(discord: FakeDiscordServer) -> None:
    discord.plan.extend(["500"] * 10)
    n = notifier(discord, max_attempts=3, sleep=lambda s: None)
    n.critical("k", "never arrives")
    n.close()
    assert discord.answers == [500, 500, 500] and n.dropped == 1 and n.delivered == 0


def test_rate_limit_headers_keep_a_burst_under_the_bucket(discord: FakeDiscordServer) -> None:
    n = notifier(discord)
    for i in range(12):
        n.warning(f"k{i}", f"message {i}")
    n.close()
    assert contents(discord) == [f"**WARNING** message {i}" for i in range(12)]
    assert 429 not in discord.answers  # the client waited whenever X-RateLimit-Remaining hit 0


def test_long_messages_are_cut_to_discords_limit(discord: FakeDiscordServer) -> None:
    n = notifier(discord)
    n.critical("long", "x" * 5000)
    n.close()
    (content,) = contents(discord)
    assert len(content) == 2000 and content.endswith(CUT_MARKER)
    assert discord.answers == [204]


def test_the_caller_never_waits_for_discord(discord: FakeDiscordServer) -> None:
    discord.hold.clear()  # every answer blocks until released
    n = notifier(discord)
    for i in range(20):
        assert n.critical(f"k{i}", f"alert {i}")  # returns although Discord has not answered anything
    assert discord.received == []
    discord.hold.set()
    n.close()
    assert len(discord.received) == 20


def test_without_webhook_alerts_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cryptobot.alerts")
    n = Notifier(None, secrets=[SECRET], clock=Clock())
    n.critical("halt", f"halted ({SECRET})")
    n.critical("halt", "halted again")  # deduplicated in the log too
    n.info("fill", "a fill")
    n.close()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["[critical] halted ([redacted])", "[info] a fill"]
    assert caplog.records[0].levelno == logging.CRITICAL


def test_daily_summary() -> None:
    text = format_daily_summary("2026-12-01", {"trades": 4, "net_pnl_jpy": 1234.5, "position": "flat"})
    assert text == "Daily summary 2026-12-01\ntrades: 4\nnet_pnl_jpy: 1,234.5\nposition: flat"


def test_daily_summary_is_sent_on_its_own(discord: FakeDiscordServer) -> None:
    n = notifier(discord)
    n.info("fill", "a fill")
    n.daily_summary("2026-12-01", {"trades": 1})
    n.close()
    assert contents(discord) == ["Daily summary 2026-12-01\ntrades: 1", "**INFO digest** (1)\n- a fill"]


def test_from_config_uses_notify_keys_and_redacts_config_secrets(discord: FakeDiscordServer) -> None:
    env = {"CRYPTOBOT__EXCHANGE__API_KEY": KEY, "CRYPTOBOT__EXCHANGE__API_SECRET": SECRET,
           "CRYPTOBOT__NOTIFY__DISCORD_WEBHOOK_URL": discord.webhook_url}
    cfg = load_config(environ=env)
    assert (cfg.notify.timeout_seconds, cfg.notify.max_attempts) == (10.0, 5)
    n = Notifier.from_config(cfg, clock=Clock(), poll_seconds=0.02)
    assert n.dedupe_cooldown_seconds == cfg.notify.dedupe_cooldown_seconds == 600.0
    n.critical("k", f"{KEY} {SECRET}")
    n.close()
    assert contents(discord) == ["**CRITICAL** [redacted] [redacted]"]
