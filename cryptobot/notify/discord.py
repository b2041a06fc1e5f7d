"""Discord alerts that never block the bar loop, never repeat themselves and never carry a secret.

The seed bot's alerts failed both ways (spam, then removed altogether), so the rules are: three levels
(`critical`, `warning` sent at once; `info` batched into one digest per `digest_interval_seconds`); one
message per key per `dedupe_cooldown_seconds` (later ones are counted and reported with the next); a
background thread does all HTTP, paced by `min_interval_seconds` and by Discord's own rate-limit headers,
and waits out a 429's `retry_after` before retrying (bounded); messages are cut to Discord's 2000
characters; known secrets and webhook URLs are redacted. Without a webhook every alert goes to the log.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from cryptobot.config import Config

log = logging.getLogger("cryptobot.alerts")

LEVELS = ("critical", "warning", "info")
LOG_LEVELS = {"critical": logging.CRITICAL, "warning": logging.WARNING, "info": logging.INFO}
CONTENT_LIMIT = 2000  # Discord's limit for a message's `content`
CUT_MARKER = "\n… (cut)"
REDACTED = "[redacted]"
_WEBHOOK_URL = re.compile(r"https?://\S*discord(?:app)?\.com/api/webhooks/\S+", re.IGNORECASE)


class _RedactWebhookPaths(logging.Filter):
    """urllib3 logs request paths at DEBUG; a webhook's path *is* its secret token."""

    _path = re.compile(r"/api/webhooks/\S+")

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._path.sub("/api/webhooks/" + REDACTED, record.getMessage())
        record.args = ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactWebhookPaths())


def cut(text: str, limit: int = CONTENT_LIMIT) -> str:
    """`text` shortened to `limit` characters, with a visible marker when something was cut."""
    return text if len(text) <= limit else text[: limit - len(CUT_MARKER)] + CUT_MARKER


def format_daily_summary(day: str, stats: Mapping[str, Any]) -> str:
    """The daily summary message: one `name: value` line per statistic, in the order given."""
    lines = [f"Daily summary {day}"]
    for name, value in stats.items():
        shown = f"{value:,.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Message:
    content: str


class Notifier:
    """Alerts to a Discord webhook (or the log). `notify()` only enqueues; `close()` flushes and stops.

    `clock` (monotonic seconds) drives dedupe and digest timing; `sleep` is what waits for rate limits.
    """

    def __init__(self, webhook_url: str | None, *, dedupe_cooldown_seconds: float = 600.0,
                 digest_interval_seconds: float = 3600.0, min_interval_seconds: float = 2.0,
                 timeout_seconds: float = 10.0, max_attempts: int = 5, secrets: Iterable[str] = (),
                 queue_size: int = 1000, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_seconds: float = 0.5):
        self._webhook_url = webhook_url or None
        self.dedupe_cooldown_seconds = dedupe_cooldown_seconds
        self.digest_interval_seconds = digest_interval_seconds
        self.min_interval_seconds = min_interval_seconds
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self._secrets = sorted({s for s in (*secrets, webhook_url or "") if s and len(s) >= 4}, key=len, reverse=True)
        self._clock = clock
        self._sleep = sleep
        self._poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._last_sent: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._digest: list[str] = []
        self._digest_started = clock()
        self._queue: queue.Queue[_Message | None] = queue.Queue(maxsize=queue_size)
        self._next_post_at = 0.0
        self.delivered = 0
        self.dropped = 0
        self._session = requests.Session()
        self._closed = False
        self._thread: threading.Thread | None = None
        if self._webhook_url:
            self._thread = threading.Thread(target=self._run, name="discord-notifier", daemon=True)
            self._thread.start()

    @classmethod
    def from_config(cls, config: Config, **kw: Any) -> Notifier:
        """A notifier with the `notify.*` settings; every secret in the config is redacted from messages."""
        n = config.notify
        secrets = [s.get_secret_value() for s in (config.exchange.api_key, config.exchange.api_secret) if s]
        url = n.discord_webhook_url.get_secret_value() if n.discord_webhook_url else None
        return cls(url, dedupe_cooldown_seconds=n.dedupe_cooldown_seconds,
                   digest_interval_seconds=n.digest_interval_seconds, min_interval_seconds=n.min_interval_seconds,
                   timeout_seconds=n.timeout_seconds, max_attempts=n.max_attempts, secrets=secrets, **kw)

    def __repr__(self) -> str:
        return f"Notifier(webhook={'set' if self._webhook_url else 'none'}, delivered={self.delivered})"

    # ------------------------------------------------------------------ the caller's side (never blocks)
    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _WEBHOOK_URL.sub(REDACTED, text)

    def notify(self, level: str, key: str, message: str) -> bool:
        """Queue an alert; False when it was suppressed as a duplicate of `key` within the cool-down."""
        if level not in LEVELS:
            raise ValueError(f"level={level!r} must be one of {LEVELS}")
        now = self._clock()
        with self._lock:
            last = self._last_sent.get(key)
            if last is not None and now - last < self.dedupe_cooldown_seconds:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last_sent[key] = now
            repeats = self._suppressed.pop(key, 0)
        text = self.redact(message) + (f" (+{repeats} similar suppressed)" if repeats else "")
        if not self._webhook_url:
            log.log(LOG_LEVELS[level], "[%s] %s", level, text)
            return True
        if level == "info":
            with self._lock:
                self._digest.append(text)
            return True
        self._enqueue(f"**{level.upper()}** {text}")
        return True

    def critical(self, key: str, message: str) -> bool:
        return self.notify("critical", key, message)

    def warning(self, key: str, message: str) -> bool:
        return self.notify("warning", key, message)

    def info(self, key: str, message: str) -> bool:
        return self.notify("info", key, message)

    def daily_summary(self, day: str, stats: Mapping[str, Any]) -> None:
        """Send the day's summary as its own message (not folded into the info digest)."""
        text = self.redact(format_daily_summary(day, stats))
        if not self._webhook_url:
            log.info("%s", text)
        else:
            self._enqueue(text)

    def flush_digest(self) -> None:
        """Queue the pending info lines as one digest message (also done every digest interval)."""
        with self._lock:
            lines, self._digest = self._digest, []
            self._digest_started = self._clock()
        if lines:
            self._enqueue(f"**INFO digest** ({len(lines)})\n" + "\n".join(f"- {line}" for line in lines))

    def close(self, timeout: float = 30.0) -> None:
        """Flush the digest, deliver what is queued (up to `timeout`), stop the worker."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self.flush_digest()
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout)

    def _enqueue(self, content: str) -> None:
        try:
            self._queue.put_nowait(_Message(cut(content)))
        except queue.Full:
            self.dropped += 1
            log.error("alert queue full, message dropped: %s", cut(content, 200))

    # ------------------------------------------------------------------ the worker's side
    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._poll_seconds)
            except queue.Empty:
                item = _Message("")
            if item is None:
                return
            if item.content:
                self._deliver(item.content)
            if self._clock() - self._digest_started >= self.digest_interval_seconds:
                self.flush_digest()

    def _deliver(self, content: str) -> None:
        """POST one message, honouring pacing, rate-limit headers and 429 retry_after; bounded attempts."""
        assert self._webhook_url is not None
        for attempt in range(self.max_attempts):
            wait = self._next_post_at - time.monotonic()
            if wait > 0:
                self._sleep(wait)
            try:
                r = self._session.post(self._webhook_url, json={"content": content, "allowed_mentions": {"parse": []}},
                                       timeout=self.timeout_seconds)
            except requests.RequestException as exc:
                log.warning("Discord unreachable (%s); attempt %d/%d", type(exc).__name__, attempt + 1,
                            self.max_attempts)
                self._next_post_at = time.monotonic() + min(30.0, 2.0**attempt)
                continue
            self._next_post_at = time.monotonic() + self.min_interval_seconds
            if r.headers.get("X-RateLimit-Remaining") == "0":
                reset = float(r.headers.get("X-RateLimit-Reset-After", "1") or 1)
                self._next_post_at = max(self._next_post_at, time.monotonic() + reset)
            if r.status_code == 429:
                self._sleep(self._retry_after(r))
                continue
            if r.status_code >= 500:
                self._next_post_at = time.monotonic() + min(30.0, 2.0**attempt)
                continue
            if r.status_code >= 400:
                log.error("Discord refused an alert with HTTP %d; not retried", r.status_code)
                return
            self.delivered += 1
            return
        self.dropped += 1
        log.error("alert not delivered after %d attempts: %s", self.max_attempts, cut(content, 200))

    @staticmethod
    def _retry_after(r: requests.Response) -> float:
        try:
            return float(r.json()["retry_after"])
        except (ValueError, KeyError, TypeError):
            return float(r.headers.get("Retry-After", "1") or 1)
