"""/health over real HTTP on 127.0.0.1: 200 only when everything holds, else 503 with the reason."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest

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
    ({"clock_ms": 10 * BAR + 121_000}, "last bar processed closed 121 s ago"),
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
    box.snap = replace(HEALTHY, clock_ms=10 * BAR + 120_000, position=0.0, stop_in_place=False, bundle_required=False,
                       bundle_verified=False)
    assert get(srv)[0] == 200


def test_starting_bot_and_other_paths(server: tuple[HealthServer, Box]) -> None:
    srv, box = server
    assert get(srv) == (503, {"status": "unhealthy", "reasons": ["bot starting"]})
    assert get(srv, "/metrics")[0] == 404
