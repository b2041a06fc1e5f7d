"""`/health`: 200 only when the bot is really working, else 503 with the reasons as JSON.

The seed's bot answered "healthy" for weeks while it placed no orders; here health is computed from what
the bar loop last did, never assumed. Healthy means all of: every closed bar was processed within
`health.max_bar_delay_seconds` of its close (on the bot's clock: the exchange's time, or the replay's), the
exchange answered the last request, the model bundle is verified when the ML gate is on, an open position
has its stop-loss in place, and no kill switch is tripped. The loop publishes an immutable
`HealthSnapshot` after every bar; the server (stdlib, a daemon thread, loopback by default) only reads it,
so it can never block or slow the loop. Nothing secret is in a snapshot.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptobot.data.frames import ms_to_iso


@dataclass(frozen=True)
class HealthSnapshot:
    """What the bar loop last knew. `clock_ms` is the bot's own clock (exchange or replay time)."""

    mode: str
    bar_ms: int
    clock_ms: int | None = None
    last_bar_open_ms: int | None = None
    exchange_ok: bool = False
    exchange_error: str | None = None
    bundle_required: bool = False
    bundle_verified: bool = False
    position: float = 0.0
    stop_in_place: bool = True
    kill_switches: tuple[str, ...] = field(default_factory=tuple)


def evaluate(snap: HealthSnapshot, max_bar_delay_seconds: float) -> list[str]:
    """The reasons the bot is unhealthy (empty when healthy)."""
    reasons = []
    if snap.last_bar_open_ms is None or snap.clock_ms is None:
        reasons.append("no bar processed yet")
    else:
        # the bar after the last processed one closes at last open + 2 timeframes; it is due by then + the delay
        late_s = (snap.clock_ms - (snap.last_bar_open_ms + 2 * snap.bar_ms)) / 1000
        if late_s > max_bar_delay_seconds:
            reasons.append(f"a bar closed {late_s:.0f} s ago and is not processed (limit {max_bar_delay_seconds:g} s)")
    if not snap.exchange_ok:
        reasons.append(f"exchange not answering ({snap.exchange_error or 'no answer yet'})")
    if snap.bundle_required and not snap.bundle_verified:
        reasons.append("model bundle not verified: no trading")
    if snap.position != 0.0 and not snap.stop_in_place:
        reasons.append("open position without its stop-loss")
    reasons += [f"kill switch: {name}" for name in snap.kill_switches]
    return reasons


def health_body(snap: HealthSnapshot | None, max_bar_delay_seconds: float) -> tuple[int, dict[str, Any]]:
    if snap is None:
        return 503, {"status": "unhealthy", "reasons": ["bot starting"]}
    reasons = evaluate(snap, max_bar_delay_seconds)
    body: dict[str, Any] = {"status": "unhealthy" if reasons else "ok", "reasons": reasons, **asdict(snap)}
    body["kill_switches"] = list(snap.kill_switches)
    if snap.last_bar_open_ms is not None:
        body["last_bar"] = ms_to_iso(snap.last_bar_open_ms)
    return (503 if reasons else 200), body


class HealthServer:
    """Serves GET /health from `snapshot()` on host:port (port 0 picks a free one: see `.port`)."""

    def __init__(self, host: str, port: int, snapshot: Callable[[], HealthSnapshot | None], max_bar_delay_seconds: float):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                if self.path.split("?")[0] != "/health":
                    self.send_error(404, "only /health is served")
                    return
                status, body = health_body(outer.snapshot(), outer.max_bar_delay_seconds)
                data = json.dumps(body, allow_nan=False, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request stderr lines
                return

        self.snapshot = snapshot
        self.max_bar_delay_seconds = max_bar_delay_seconds
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
