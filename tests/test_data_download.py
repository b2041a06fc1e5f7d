"""Download through the real ccxt client against a fake exchange on 127.0.0.1.

Covers bitbank's day/year paging, a second exchange (Binance klines), resume, retries after 429/5xx/
timeouts, the still-open bar never being stored, and a process killed mid-download leaving a valid store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cryptobot.data import Store, StoreKey, timestamps_ms, validate_frame
from cryptobot.data.download import DownloadError, RetryPolicy, download, make_exchange
from tests.fakes.exchange_server import DAY_MS, FakeExchangeServer, candle

ROOT = Path(__file__).resolve().parent.parent
FAST_RETRY = RetryPolicy(attempts=4, backoff_seconds=0.01)
# One fixed clock for the fake exchange and the downloader, half an hour after midnight UTC: day paging and
# "closed bars only" are exact, and the hour after midnight (where day counts shift) is the one pinned.
NOW = 1_773_102_600_000  # 2026-03-10T00:30:00Z
QUIET = {"progress": False, "log": lambda msg: None, "now_ms": lambda: NOW}


@pytest.fixture()
def server() -> Iterator[FakeExchangeServer]:
    with FakeExchangeServer() as srv:
        srv.state.clock_ms = NOW
        yield srv


def bitbank(srv: FakeExchangeServer, timeout_ms: int = 10_000) -> object:
    return make_exchange("bitbank", {"public": srv.url, "markets": srv.url}, timeout_ms=timeout_ms)


def binance(srv: FakeExchangeServer) -> object:
    client = make_exchange("binance", {"public": srv.url + "/api/v3"})
    client.options["fetchMarkets"] = {"types": ["spot"]}  # type: ignore[attr-defined]
    return client


def expected_closed_bars(first: int, tf_ms: int, now: int = NOW) -> np.ndarray:
    start = first + (-first) % tf_ms
    last_closed = (now // tf_ms) * tf_ms - tf_ms
    return np.arange(start, last_closed + 1, tf_ms, dtype=np.int64)


def test_bitbank_15m_pages_by_day_and_stores_closed_bars_only(server: FakeExchangeServer, tmp_path: Path) -> None:
    first = NOW - 2 * DAY_MS - 3_600_000
    server.state.first_ms = first
    store = Store(tmp_path)
    result = download("bitbank", "BTC/JPY", "15m", since=first - DAY_MS, store=store, client=bitbank(server),
                      retry=FAST_RETRY, **QUIET)
    frame = store.read(StoreKey("bitbank", "BTC/JPY", "15m"))
    ts = timestamps_ms(frame)
    assert np.array_equal(ts, expected_closed_bars(first, 900_000))
    assert ts[-1] == NOW - NOW % 900_000 - 900_000  # the still-open bar (served by the exchange) is never stored
    assert result.new_rows == len(frame)
    day_requests = [r.rsplit("/", 1)[1] for r in server.state.requests if "/candlestick/15min/" in r]
    assert day_requests == ["20260306", "20260307", "20260308", "20260309", "20260310"]  # since's day .. today
    o, h, lo, c, v = candle(int(ts[5]), 900_000, server.state.base_price)
    assert frame.iloc[5].tolist() == [o, h, lo, c, v]
    assert validate_frame(frame, timeframe="15m").ok


def test_bitbank_4h_pages_by_year(server: FakeExchangeServer, tmp_path: Path) -> None:
    first = NOW - 3 * DAY_MS
    server.state.first_ms = first
    store = Store(tmp_path)
    download("bitbank", "BTC/JPY", "4h", since=first, store=store, client=bitbank(server), retry=FAST_RETRY, **QUIET)
    ts = timestamps_ms(store.read(StoreKey("bitbank", "BTC/JPY", "4h")))
    assert ts[0] == first + (-first) % 14_400_000 and ts[-1] + 14_400_000 <= NOW
    year_requests = [r for r in server.state.requests if "/candlestick/4hour/" in r]
    assert year_requests and all(len(r.rsplit("/", 1)[1]) == 4 for r in year_requests)


def test_second_exchange_binance_klines(server: FakeExchangeServer, tmp_path: Path) -> None:
    first = NOW - 50 * DAY_MS  # 1,200 hourly bars: two pages of 1,000
    server.state.first_ms = first
    server.state.holes = [(first + 10 * DAY_MS, first + 12 * DAY_MS)]
    store = Store(tmp_path)
    download("binance", "BTC/USDT", "1h", since=first, store=store, client=binance(server), retry=FAST_RETRY, **QUIET)
    frame = store.read(StoreKey("binance", "BTC/USDT", "1h"))
    report = validate_frame(frame, timeframe="1h")
    assert report.ok and len(report.gaps) == 1 and report.missing_bars == 48  # the hole stays a gap
    assert timestamps_ms(frame)[-1] + 3_600_000 <= NOW
    assert sum("/klines" in r for r in server.state.requests) >= 2


def test_resume_requests_only_what_is_missing(server: FakeExchangeServer, tmp_path: Path) -> None:
    first = NOW - 3 * DAY_MS
    server.state.first_ms = first
    store = Store(tmp_path)
    key = StoreKey("bitbank", "BTC/JPY", "1h")
    download("bitbank", "BTC/JPY", "1h", since=first, until=first + 2 * DAY_MS, store=store, client=bitbank(server),
             retry=FAST_RETRY, **QUIET)
    part = store.read(key)
    assert timestamps_ms(part)[-1] < first + 2 * DAY_MS
    server.state.requests.clear()
    logs: list[str] = []
    result = download("bitbank", "BTC/JPY", "1h", since=first, store=store, client=bitbank(server), retry=FAST_RETRY,
                      progress=False, log=logs.append, now_ms=lambda: NOW)
    assert any("resuming after the last stored bar" in m for m in logs)
    day_requests = [r.rsplit("/", 1)[1] for r in server.state.requests if "/candlestick/" in r]
    assert timestamps_ms(part)[-1] == first + 2 * DAY_MS - 1_800_000  # 2026-03-09T00:00Z, the last bar before until
    assert day_requests == ["20260309", "20260310"]  # from the first missing bar's day to today, not the history
    full = store.read(key)
    assert np.array_equal(timestamps_ms(full), expected_closed_bars(first, 3_600_000))
    assert result.new_rows == len(full) - len(part)
    assert np.array_equal(timestamps_ms(full)[: len(part)], timestamps_ms(part))


@pytest.mark.parametrize("faults", [["429"], ["500", "503"], ["timeout"], ["502", "429", "timeout"]])
def test_retries_after_injected_faults(server: FakeExchangeServer, tmp_path: Path, faults: list[str]) -> None:
    first = NOW - DAY_MS
    server.state.first_ms = first
    server.state.timeout_sleep = 1.5
    client = bitbank(server, timeout_ms=500)
    client.load_markets()  # type: ignore[attr-defined]
    server.state.requests.clear()
    server.state.faults.extend(faults)
    logs: list[str] = []
    store = Store(tmp_path)
    download("bitbank", "BTC/JPY", "1h", since=first, store=store, client=client, retry=FAST_RETRY, progress=False,
             log=logs.append, now_ms=lambda: NOW)
    assert len([m for m in logs if "retrying" in m]) == len(faults)
    frame = store.read(StoreKey("bitbank", "BTC/JPY", "1h"))
    assert np.array_equal(timestamps_ms(frame), expected_closed_bars(first, 3_600_000))


def test_exhausted_retries_raise_and_keep_store_valid(server: FakeExchangeServer, tmp_path: Path) -> None:
    first = NOW - 3 * DAY_MS
    server.state.first_ms = first
    client = bitbank(server)
    store = Store(tmp_path)
    download("bitbank", "BTC/JPY", "1h", since=first, until=first + DAY_MS, store=store, client=client,
             retry=FAST_RETRY, **QUIET)
    before = store.path(StoreKey("bitbank", "BTC/JPY", "1h")).read_bytes()
    server.state.faults.extend(["503"] * 10)
    with pytest.raises(DownloadError, match="still failing after 4 attempts.*rerun the same command to resume"):
        download("bitbank", "BTC/JPY", "1h", since=first, store=store, client=client, retry=FAST_RETRY, flush_every=1,
                 **QUIET)
    assert store.path(StoreKey("bitbank", "BTC/JPY", "1h")).read_bytes() == before


def test_killed_download_leaves_valid_store_and_resumes(server: FakeExchangeServer, tmp_path: Path) -> None:
    server.state.clock_ms = None  # the command runs on the wall clock; so does the exchange here
    first = int(time.time() * 1000) - 40 * DAY_MS
    server.state.first_ms = first
    server.state.delay_seconds = 0.05
    args = [sys.executable, "-m", "cryptobot.data", "--store", str(tmp_path), "download", "--exchange", "bitbank",
            "--symbol", "BTC/JPY", "--timeframe", "15m", "--since", str(first), "--flush-every", "3", "--quiet",
            "--api-url", f"public={server.url}", "--api-url", f"markets={server.url}"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stored = tmp_path / "bitbank" / "BTC-JPY" / "15m.parquet"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (stored.is_file() and stored.stat().st_size > 0):
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, proc.communicate()[1].decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    key = StoreKey("bitbank", "BTC/JPY", "15m")
    partial = Store(tmp_path).read(key)
    assert validate_frame(partial, timeframe="15m").ok
    assert 0 < len(partial) < len(expected_closed_bars(first, 900_000, int(time.time() * 1000)))
    server.state.delay_seconds = 0.0
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "resuming after the last stored bar" in done.stderr
    full = Store(tmp_path).read(key)
    expected = expected_closed_bars(first, 900_000, int(time.time() * 1000))
    # the wall clock may pass a bar close between the command's end and this line
    assert np.array_equal(timestamps_ms(full), expected) or np.array_equal(timestamps_ms(full), expected[:-1])


def test_cli_rejects_unknown_exchange_and_symbol(server: FakeExchangeServer, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "cryptobot.data", "--store", str(tmp_path), "download", "--timeframe", "1h",
            "--since", "2024-01-01", "--quiet"]
    result = subprocess.run([*base, "--exchange", "nosuchex", "--symbol", "BTC/JPY"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 1 and "unknown ccxt exchange id 'nosuchex'" in result.stderr
    result = subprocess.run([*base, "--exchange", "bitbank", "--symbol", "DOGE/JPY", "--api-url",
                             f"public={server.url}", "--api-url", f"markets={server.url}"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "bitbank has no market 'DOGE/JPY'" in result.stderr
