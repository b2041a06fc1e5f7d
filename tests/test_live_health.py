"""/health over real HTTP on 127.0.0.1: 200 only when everything holds, else 503 with the reason."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from cryptobot.live.health import HealthServer, HealthSnapshot

BAR = 900_000
HEALTHY = HealthSnapshot(mode="paper", bar_ms=BAR, clock_ms=10 * BAR + 30_000, last_bar_open_ms=9 * BAR,
                         exchange_ok=True, bundle_required=True, bundle_verified=True, position=0.01,
                         stop_in_place=True)


class Box:
    snap: HealthSnapshot | None = None


@pytest.fixture
def server() -> Iterator[tuple[HealthServer, Box]]:
    box = Box()
    srv = HealthServer("127.0.0.1", 0, lambda: box.snap, max_bar_delay_seconds=120).start()
    yield srv, box
    srv.stop()


def get(srv: HealthServer, path: str = "/health") -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        body = err.read()
        return err.code, json.loads(body) if err.headers.get("Content-Type") == "application/json" else {}


def test_healthy_bot_answers_200(server: tuple[HealthServer, Box]) -> None:
    srv, box = server
    box.snap = HEALTHY
    status, body = get(srv)
    assert status == 200 and body["status"] == "ok" and body["reasons"] == []
    assert body["last_bar"] == "1970-01-01T02:15:00Z"


@pytest.mark.parametrize(("change", "reason"), [
    ({"clock_ms": 11 * BAR + 121_000}, "a bar closed 121 s ago and is not processed"),
    ({"last_bar_open_ms": None}, "no bar processed yet"),
    ({"exchange_ok": False, "exchange_error": "HTTP 503"}, "exchange not answering (HTTP 503)"),
    ({"bundle_verified": False}, "model bundle not verified"),
    ({"stop_in_place": False}, "open position without its stop-loss"),
    ({"kill_switches": ("drawdown_halt",)}, "kill switch: drawdown_halt"),
])
def test_each_failing_condition_gives_503_with_its_reason(server: tuple[HealthServer, Box], change: dict[str, object],
                                                          reason: str) -> None:
    srv, box = server
    box.snap = replace(HEALTHY, **change)  # type: ignore[arg-type]
    status, body = get(srv)
    assert status == 503 and body["status"] == "unhealthy"
    assert len(body["reasons"]) == 1 and str(body["reasons"][0]).startswith(reason)  # type: ignore[index]


def test_limits_are_exact_and_flat_positions_need_no_stop(server: tuple[HealthServer, Box]) -> None:
    srv, box = server
    box.snap = replace(HEALTHY, clock_ms=11 * BAR + 120_000, position=0.0, stop_in_place=False, bundle_required=False,
                       bundle_verified=False)
    assert get(srv)[0] == 200


def test_starting_bot_and_other_paths(server: tuple[HealthServer, Box]) -> None:
    srv, box = server
    assert get(srv) == (503, {"status": "unhealthy", "reasons": ["bot starting"]})
    assert get(srv, "/metrics")[0] == 404


def test_paper_bot_serves_health_from_its_loop(tmp_path: Path) -> None:
    """A real `paper` process against the fake exchange: 503 while starting, 200 once the bars are in,
    503 'exchange not answering' during an outage, 503 'not processed' when the clock passes a close."""
    from tests.fakes.exchange_server import FakeExchangeServer
    from tests.test_live_paper import T0, TF, bar_count, start, stop, wait_until

    with FakeExchangeServer() as server:
        server.state.clock_ms = T0
        cfg = tmp_path / "paper.yaml"
        cfg.write_text(yaml.safe_dump({"health": {"port": 0, "max_bar_delay_seconds": 60},
                                       "live": {"poll_seconds": 0.1, "fetch_timeout_seconds": 1.0,
                                                "api_urls": {"public": server.url, "markets": server.url}}}))
        state = tmp_path / "state"
        proc = start(state, cfg)
        try:
            wait_until(lambda: (state / "live.log").exists() and '"event": "health"' in (state / "live.log").read_text())
            url = next(json.loads(x)["url"] for x in (state / "live.log").read_text().splitlines()
                       if json.loads(x)["event"] == "health")
            wait_until(lambda: bar_count(state) >= 1500)
            wait_until(lambda: fetch(url)[0] == 200)
            status, body = fetch(url)
            assert body["mode"] == "paper" and body["exchange_ok"] is True and body["kill_switches"] == []
            server.state.faults.extend(["500"] * 10_000)  # the exchange is down
            wait_until(lambda: fetch(url)[0] == 503)
            assert any(str(r).startswith("exchange not answering") for r in fetch(url)[1]["reasons"])  # type: ignore[union-attr]
            server.state.faults.clear()
            wait_until(lambda: fetch(url)[0] == 200)
            open_bar = T0 // TF * TF
            server.state.clock_ms = open_bar + TF + 61_000  # a bar closed 61 s ago ...
            wait_until(lambda: bar_count(state) == 1501)  # ... and is processed at once: still healthy
            assert fetch(url)[0] == 200
            stop(state, proc)
        finally:
            proc.kill()


def fetch(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except (urllib.error.URLError, ConnectionError):
        return 0, {}
