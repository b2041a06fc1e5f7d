"""A fake Discord webhook on 127.0.0.1: records posts, answers 429 with `retry_after`, can be held.

Like Discord it sends `X-RateLimit-Remaining` / `X-RateLimit-Reset-After` and answers 429 (JSON body with
`retry_after` in seconds) when a client posts past the bucket (`bucket_size` posts per `bucket_seconds`).
`plan` scripts answers for the next posts ("429:<seconds>", "500"); `hold` (a threading.Event, set by
default) blocks every answer while cleared — to show that the caller of the notifier never waits.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer


class FakeDiscordServer(LoopbackServer):
    def __init__(self, bucket_size: int = 5, bucket_seconds: float = 0.5) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []  # accepted posts (JSON bodies)
        self.answers: list[int] = []  # HTTP status of every answer, in order
        self.plan: deque[str] = deque()
        self.hold = threading.Event()
        self.hold.set()
        self.bucket_size = bucket_size
        self.bucket_seconds = bucket_seconds
        self._window: deque[float] = deque()

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/123456/TOKENMARKER-webhook-secret"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/webhooks/{id}/{token}", self.webhook)

    async def webhook(self, request: web.Request) -> web.Response:
        await asyncio.get_running_loop().run_in_executor(None, self.hold.wait)
        body = await request.json()
        now = time.monotonic()
        while self._window and now - self._window[0] >= self.bucket_seconds:
            self._window.popleft()
        planned = self.plan.popleft() if self.plan else ""
        if planned.startswith("429") or len(self._window) >= self.bucket_size:
            retry_after = float(planned.split(":")[1]) if planned.startswith("429:") else self.bucket_seconds
            self.answers.append(429)
            return web.json_response({"message": "You are being rate limited.", "retry_after": retry_after,
                                      "global": False}, status=429, headers={"Retry-After": str(retry_after)})
        if planned == "500":
            self.answers.append(500)
            return web.Response(status=500, text="<html>oops</html>", content_type="text/html")
        if len(body.get("content", "")) > 2000:
            self.answers.append(400)
            return web.json_response({"code": 50035, "message": "Invalid Form Body"}, status=400)
        self._window.append(now)
        self.received.append(body)
        self.answers.append(204)
        remaining = self.bucket_size - len(self._window)
        reset = self.bucket_seconds - (now - self._window[0])
        return web.Response(status=204, headers={"X-RateLimit-Limit": str(self.bucket_size),
                                                 "X-RateLimit-Remaining": str(remaining),
                                                 "X-RateLimit-Reset-After": f"{reset:.3f}"})
