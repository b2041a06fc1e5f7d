"""The bar loop: start = recovery, then one closed bar at a time — validate, decide, persist, act.

Startup and recovery are one path: lock the state directory, load and check the state, restore the
kernel states saved with the last committed bar (or, for a fresh paper state, warm the strategies on
`live.history_bars` closed bars), process every bar after the last one committed in order (bars missed
while down included), and only then wait for the next close. A bar's transaction is committed before the
broker acts on it, so a crash anywhere leaves either the whole bar or none of it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptobot.config import Config
from cryptobot.data import DataValidationError, load_frame_with_report, timestamps_ms
from cryptobot.exchange.paper import Broker, PaperBroker
from cryptobot.kernels import execution as ex
from cryptobot.live.daily import DayTracker
from cryptobot.live.engine import Bar, Engine
from cryptobot.live.health import HealthServer, HealthSnapshot
from cryptobot.live.state import (
    SCHEMA_VERSION,
    BarRecord,
    StateError,
    StateStore,
    kernel_digest,
    trading_config_hash,
)
from cryptobot.ml.bundle import Bundle, BundleError, load_bundle
from cryptobot.notify import Notifier

if TYPE_CHECKING:
    from cryptobot.exchange.bitbank_broker import LiveBroker
    from cryptobot.exchange.bitbank_margin import BitbankMarginClient
    from cryptobot.exchange.public import ClosedBars

LOCK_NAME = "cryptobot.lock"
LOG_NAME = "live.log"
CRASH_ENV = "CRYPTOBOT_LIVE_CRASH_AT"  # fault injection for the crash tests: "SEQ:POINT"
CRASH_POINTS = ("between", "in_tx", "before_commit", "after_commit")  # SEQ = the bar's sequence number
ORDER_CRASH_POINTS = ("before_send", "after_send", "before_stop")  # live; SEQ = the bar that caused the send
CONTROL_POLL_SECONDS = 0.2  # how soon a running bot sees halt/resume
EXIT_OK, EXIT_REFUSED, EXIT_LOCKED, EXIT_MODEL = 0, 2, 3, 4


class LockedError(RuntimeError):
    def __init__(self, path: Path, pid: int | None):
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"{path.parent}: already in use by {who} (lock {path}); stop it first "
                         f"(`python -m cryptobot.live stop --state-dir {path.parent}`) or use another --state-dir")
        self.pid = pid


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class StateLock:
    """An exclusive `flock` on `<state dir>/cryptobot.lock` holding the owner's pid; released when the process dies."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / LOCK_NAME
        state_dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise LockedError(self.path, _read_pid(self.path)) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def running_pid(state_dir: Path) -> int | None:
    """The pid of the process holding the state directory, or None when nothing runs on it."""
    path = Path(state_dir) / LOCK_NAME
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(path) or -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event and the event's fields (never config or secrets)."""

    def format(self, record: logging.LogRecord) -> str:
        cached = getattr(record, "_json", None)  # the rotating handler formats once more to measure the size
        if cached is None:
            line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                    "level": record.levelname.lower(), "event": record.getMessage(), **getattr(record, "fields", {})}
            cached = json.dumps(line, default=str)
            record._json = cached
        return cached


def setup_logging(state_dir: Path, cfg: Config) -> logging.Logger:
    log = logging.getLogger("cryptobot.live")
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    fmt = JsonFormatter()
    stderr = logging.StreamHandler(sys.stderr)
    rotating = logging.handlers.RotatingFileHandler(state_dir / LOG_NAME, maxBytes=cfg.live.log_max_bytes,
                                                    backupCount=cfg.live.log_backups)
    for h in (stderr, rotating):
        h.setFormatter(fmt)
        log.addHandler(h)
    return log


def _emit(log: logging.Logger, level: int, event: str, **fields: Any) -> None:
    log.log(level, event, extra={"fields": fields})


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _crash_hook() -> Any:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return None
    seq_text, _, point = spec.partition(":")
    if point not in CRASH_POINTS + ORDER_CRASH_POINTS or not seq_text.isdigit():
        raise ValueError(f"{CRASH_ENV}={spec!r}: expected SEQ:POINT with POINT one of "
                         f"{CRASH_POINTS + ORDER_CRASH_POINTS}")
    target = int(seq_text)

    def hook(where: str, seq: int) -> None:
        if where == point and seq == target:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


class Replay:
    """Bars from a CSV/Parquet file or store key, validated by the data layer (`--replay`)."""

    def __init__(self, source: str, cfg: Config):
        frame, report = load_frame_with_report(source, store_root=cfg.data.store_dir)
        if frame.empty or report.timeframe is None:
            raise DataValidationError(f"{source}: need at least two bars to replay (and know the timeframe)")
        self.source, self.timeframe = source, report.timeframe
        self.ts = timestamps_ms(frame)
        self.values = frame[["open", "high", "low", "close", "volume"]].to_numpy("float64")

    def after(self, last_ts: int | None) -> Iterator[Bar]:
        start = 0 if last_ts is None else int(self.ts.searchsorted(last_ts, side="right"))
        for i in range(start, len(self.ts)):
            o, h, lo, c, v = self.values[i].tolist()
            yield int(self.ts[i]), o, h, lo, c, v


class Bot:
    """One running bot on one state directory (paper, paper replay, or live on bitbank)."""

    def __init__(self, cfg: Config, state_dir: Path, replay: str | None = None, speed: float | None = None,
                 broker: Broker | None = None, bars: ClosedBars | None = None, live: bool = False,
                 adopt: bool = False):
        self.cfg, self.state_dir, self.speed = cfg, Path(state_dir), speed
        self.replay_source = replay
        self.broker: Broker = broker or PaperBroker()
        self.bars = bars
        self.stop_event = threading.Event()
        self.log = logging.getLogger("cryptobot.live")
        self.store: StateStore | None = None
        self.engine: Engine | None = None
        self._control: dict[str, str] = {}
        self._control_read = -1e9
        self.health: HealthSnapshot | None = None  # published by the loop, read by the /health server
        self._mode = "paper"
        self.live, self.adopt = live, adopt
        self.live_broker: LiveBroker | None = None
        self._client: BitbankMarginClient | None = None
        self.notifier: Notifier | None = None
        self._switches: list[str] = []  # the live kill switches tripped at the last bar
        self._alerted_switches: set[str] = set()  # every switch (live and kernel) on at the last bar
        self._exchange_down: str | None = None  # the open "exchange not answering" incident
        self._days = DayTracker()

    # ---------------------------------------------------------------- start = recovery
    def _bundle(self) -> Bundle | None:
        if not self.cfg.ml.enabled:
            return None
        return load_bundle(self.cfg.ml.bundle_dir)

    def run(self) -> int:
        try:
            lock = StateLock(self.state_dir)
        except LockedError as exc:
            print(exc, file=sys.stderr)
            return EXIT_LOCKED
        try:
            self.log = setup_logging(self.state_dir, self.cfg)
            server = self._start_health()
            try:
                return self._run()
            finally:
                if server is not None:
                    server.stop()
                if self.notifier is not None:
                    self.notifier.close(timeout=5.0)
        finally:
            if self.store is not None:
                self.store.close()
            lock.release()

    def _start_health(self) -> HealthServer | None:
        """/health on health.host:health.port; a port already taken is logged loudly and trading goes on
        (a monitor that gets no answer treats the bot as unhealthy, which is the truth)."""
        h = self.cfg.health
        try:
            server = HealthServer(h.host, h.port, lambda: self.health, h.max_bar_delay_seconds).start()
        except OSError as exc:
            _emit(self.log, logging.ERROR, "health_unavailable", host=h.host, port=h.port, error=str(exc))
            return None
        _emit(self.log, logging.INFO, "health", url=f"http://{h.host}:{server.port}/health")
        return server

    def _publish(self, clock_ms: int | None, exchange_ok: bool, exchange_error: str | None = None) -> None:
        """A new health snapshot from what the loop knows now (called after every bar and every poll)."""
        engine = self.engine
        if engine is None:
            return
        st = engine.exec_state
        switches = [*self._switches] + [name for name, on in (
            ("manual_halt", self._control.get("manual_halt") == "1"),
            ("drawdown_halt", st[ex.S_HALTED] > 0.0),
            ("loss_pause", clock_ms is not None and clock_ms < st[ex.S_PAUSE_UNTIL]),
            ("daily_loss_limit", st[ex.S_DAY_HALT] > 0.0),
        ) if on]
        self.health = HealthSnapshot(
            mode=self._mode, bar_ms=engine.bar_ms, clock_ms=clock_ms, last_bar_open_ms=engine.last_ts,
            exchange_ok=exchange_ok, exchange_error=exchange_error, bundle_required=self.cfg.ml.enabled,
            bundle_verified=engine.bundle is not None, position=float(st[ex.S_POS]),
            stop_in_place=bool(st[ex.S_POS] == 0.0 or st[ex.S_SL] == st[ex.S_SL]) and (
                self.live_broker is None or self.live_broker.protected),
            kill_switches=tuple(switches),
        )

    def _run(self) -> int:
        cfg, log = self.cfg, self.log
        mode = self._mode = "live" if self.live else "replay" if self.replay_source else "paper"
        if self.live and self.replay_source:
            _emit(log, logging.ERROR, "bad_input", error="live trades the exchange's bars; --replay is paper only")
            return EXIT_REFUSED
        try:
            replay = Replay(self.replay_source, cfg) if self.replay_source else None
        except (DataValidationError, FileNotFoundError, ValueError) as exc:
            _emit(log, logging.ERROR, "bad_input", error=str(exc))
            return EXIT_REFUSED
        timeframe = replay.timeframe if replay else cfg.data.timeframe
        if self.live:  # keys and live-only settings are checked before the state is touched
            from cryptobot.exchange.bitbank_broker import StartRefused, make_client

            try:
                self._client = make_client(cfg)
            except StartRefused as exc:
                _emit(log, logging.ERROR, "live_refused", error=str(exc))
                print(exc, file=sys.stderr)
                return EXIT_REFUSED
        store = self.store = StateStore(self.state_dir)
        try:
            bundle = self._bundle()
        except (BundleError, OSError, ValueError) as exc:
            store.set_control("model_error", str(exc))
            _emit(log, logging.CRITICAL, "model_unverified", bundle_dir=cfg.ml.bundle_dir, error=str(exc),
                  action="no trading")
            return EXIT_MODEL
        store.set_control("model_error", "")
        engine = self.engine = Engine(cfg, timeframe, bundle)
        identity = {
            "schema_version": str(SCHEMA_VERSION), "kernel_digest": kernel_digest(engine.pipeline_name),
            "config_hash": trading_config_hash(cfg), "timeframe": timeframe, "mode": mode,
            "symbol": f"{cfg.exchange.name}:{cfg.exchange.symbol}" if not replay else "",
            "bundle_id": bundle.bundle_id if bundle is not None else "",
            "initial_capital": repr(float(cfg.execution.initial_capital)),
        }
        try:
            store.check_identity(identity)
            saved = store.kernel_states()
            if saved is not None:
                engine.restore(saved)
        except (StateError, ValueError) as exc:
            _emit(log, logging.ERROR, "state_refused", error=str(exc))
            print(exc, file=sys.stderr)
            return EXIT_REFUSED
        hook = _crash_hook()
        store.crash_hook = hook
        if self.live:
            refused = self._start_live(hook)
            if refused is not None:
                return refused
        else:
            self.broker.reconcile(float(engine.exec_state[ex.S_POS]))
        _emit(log, logging.INFO, "start", mode=mode, pid=os.getpid(), state_dir=str(self.state_dir), timeframe=timeframe,
              resumed_after=_iso(engine.last_ts), bars_done=engine.seq, ml=bundle is not None,
              source=self.replay_source or cfg.exchange.name)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        if replay is not None:
            return self._replay(replay, hook)
        return self._paper(hook)

    def _start_live(self, hook: Any) -> int | None:
        """Keys, client, notifier, then the broker's recovery (start = recovery); an exit code when refused."""
        from cryptobot.exchange.bitbank_broker import LiveBroker, StartRefused
        from cryptobot.exchange.bitbank_margin import BitbankError

        engine, store, client = self.engine, self.store, self._client
        assert engine is not None and store is not None and client is not None
        self.notifier = Notifier.from_config(self.cfg)
        try:
            broker = self.live_broker = LiveBroker(self.cfg, store, client, self._alert, hook)
            control = store.control()
            self._switches = json.loads(control.get("live_switches") or "[]")  # tripped before the restart
            self._alerted_switches = {name.split(":")[0] for name in self._switches}
            last = store.last_record()
            acted = last is None or int(control.get("acted_seq") or -1) >= last.seq
            broker.start(engine.exec_state, last, acted, self.adopt, engine.seq - 1 if engine.seq else None)
            if last is not None and not acted:
                store.set_control("acted_seq", str(last.seq))
        except StartRefused as exc:
            _emit(self.log, logging.ERROR, "live_refused", error=str(exc))
            print(exc, file=sys.stderr)
            return EXIT_REFUSED
        except (BitbankError, OSError) as exc:
            _emit(self.log, logging.ERROR, "live_refused", error=f"exchange not answering at start: {exc}")
            print(f"live: the exchange did not answer at start ({exc}); nothing was sent, try again", file=sys.stderr)
            return EXIT_REFUSED
        return None

    def _alert(self, level: str, key: str, message: str) -> None:
        """Every alert goes to live.log and through the notifier (Discord, or the log without a webhook)."""
        _emit(self.log, {"critical": logging.CRITICAL, "warning": logging.WARNING}.get(level, logging.INFO),
              "alert", severity=level, key=key, message=message)
        if self.notifier is not None:
            self.notifier.notify(level, key, message)

    def _exchange_state(self, error: str | None) -> None:
        """One alert when the exchange stops answering, one when it answers again."""
        if error is not None and self._exchange_down is None:
            self._alert("critical", "exchange_down", f"exchange not answering: {error}; retrying, no bar is skipped")
        elif error is None and self._exchange_down is not None:
            self._alert("info", "exchange_up", f"exchange answering again (was: {self._exchange_down})")
        self._exchange_down = error

    # ---------------------------------------------------------------- modes
    def _replay(self, replay: Replay, hook: Any) -> int:
        assert self.engine is not None
        delay = 0.0 if not self.speed else 1.0 / self.speed
        count = 0
        for bar in replay.after(self.engine.last_ts):
            if self.stop_event.is_set():
                break
            self._process(bar, hook)
            self._publish(bar[0] + self.engine.bar_ms, exchange_ok=True)  # the replay's clock; no exchange
            count += 1
            if delay:
                self.stop_event.wait(delay)
        _emit(self.log, logging.INFO, "stopped" if self.stop_event.is_set() else "replay_done", bars=count,
              last_bar=_iso(self.engine.last_ts))
        return EXIT_OK

    def _paper(self, hook: Any) -> int:
        cfg, engine, store = self.cfg, self.engine, self.store
        assert engine is not None and store is not None
        from cryptobot.exchange.public import ClosedBars

        bars = self.bars = self.bars or ClosedBars(cfg.exchange.name, cfg.exchange.symbol, cfg.data.timeframe, cfg.live.api_urls,
                                       timeout_ms=int(cfg.live.fetch_timeout_seconds * 1000))
        if cfg.live.history_bars < engine.warmup:
            _emit(self.log, logging.ERROR, "config_refused",
                  error=f"live.history_bars={cfg.live.history_bars} is less than the strategies' warm-up "
                        f"({engine.warmup} bars at {cfg.data.timeframe}); raise it")
            return EXIT_REFUSED
        while not self.stop_event.is_set():
            try:
                if engine.last_ts is None:
                    history = bars.latest(cfg.live.history_bars)
                    if history:
                        store.set_control("warm_until", str(history[-1][0]))
                        _emit(self.log, logging.INFO, "warmup", bars=len(history), first=_iso(history[0][0]),
                              last=_iso(history[-1][0]))
                    new = history
                else:
                    new = bars.after(engine.last_ts)
            except Exception as exc:  # network, 429/5xx, timeouts, bad bars: wait and ask again, never skip
                _emit(self.log, logging.WARNING, "fetch_failed", error=f"{type(exc).__name__}: {exc}",
                      retry_in_s=cfg.live.poll_seconds, last_bar=_iso(engine.last_ts))
                self._publish(bars.exchange_ms, exchange_ok=False, exchange_error=f"{type(exc).__name__}: {exc}"[:200])
                self.stop_event.wait(cfg.live.poll_seconds)
                continue
            try:
                for bar in new:
                    if self.stop_event.is_set():
                        break
                    self._process(bar, hook)
                if self.live_broker is not None and self.live_broker.needs_poll():
                    self.live_broker.sync()  # an entry's fill gets its stop now, not at the next close
            except _exchange_errors() as exc:  # the bar is processed again once the exchange answers
                error = f"{type(exc).__name__}: {exc}"[:200]
                self._exchange_state(error)
                self._publish(bars.exchange_ms, exchange_ok=False, exchange_error=error)
                self.stop_event.wait(cfg.live.poll_seconds)
                continue
            if self.live_broker is not None:
                self._exchange_state(None)
            self._publish(bars.exchange_ms, exchange_ok=True)
            self.stop_event.wait(cfg.live.poll_seconds)
        _emit(self.log, logging.INFO, "stopped", last_bar=_iso(engine.last_ts))
        return EXIT_OK

    # ---------------------------------------------------------------- one bar
    def _process(self, bar: Bar, hook: Any) -> None:
        engine, store = self.engine, self.store
        assert engine is not None and store is not None
        if hook is not None:
            hook("between", engine.seq)
        now = time.monotonic()
        if now - self._control_read >= CONTROL_POLL_SECONDS:  # operator commands, without a query per bar
            self._control, self._control_read = store.control(), now
        control = self._control
        updates: list[tuple[str, str]] = []
        warm_until = int(control.get("warm_until") or -1)
        if bar[0] <= warm_until:
            rec = engine.warm(bar)
        else:
            reads = self._exchange_reads(bar) if self.live_broker is not None else None  # may raise: retried
            if int(control.get("resume_seq") or 0) > int(control.get("resume_applied") or 0):
                engine.resume()
                updates.append(("resume_applied", control["resume_seq"]))
                control["resume_applied"] = control["resume_seq"]
            if reads is not None:
                self._process_live(bar, control, updates, reads)
                return
            rec = engine.step(bar, halted=control.get("manual_halt") == "1")
        store.write_bar(rec, engine.states(), updates)
        self.broker.act(rec)
        _emit(self.log, logging.INFO, "bar", seq=rec.seq, bar=_iso(rec.ts), close=rec.ohlcv[3], action=rec.action,
              confidence=rec.confidence, ml_p=rec.ml_p, verdict=rec.verdict, position=rec.position, equity=rec.equity)


    def _exchange_reads(self, bar: Bar) -> tuple[float, float, list[tuple[str, str]], list[str], int]:
        """Everything a live bar needs from the exchange, before anything changes in memory: the unit book's
        sync, the position (size, average price), foreign orders/trades (every N bars), the kill switches."""
        engine, broker = self.engine, self.live_broker
        assert engine is not None and broker is not None
        broker.sync()
        size, avg = broker.exchange_position()
        full = engine.seq % self.cfg.live.reconcile_every_bars == 0
        foreign = broker.foreign() if full else []
        now_ms = self.bars.exchange_ms if self.bars is not None and self.bars.exchange_ms else int(time.time() * 1000)
        return size, avg, foreign, broker.anomalies(bar[0], engine.bar_ms, now_ms), now_ms

    def _process_live(self, bar: Bar, control: dict[str, str], updates: list[tuple[str, str]],
                      reads: tuple[float, float, list[tuple[str, str]], list[str], int]) -> None:
        """A live bar after its exchange reads: the kernel step, the exchange's position over the kernel's,
        one commit, and only then the orders."""
        engine, store, broker = self.engine, self.store, self.live_broker
        assert engine is not None and store is not None and broker is not None
        size, avg, foreign, switches, now_ms = reads
        try:
            rec = engine.step(bar, halted=control.get("manual_halt") == "1" or bool(switches))
            if switches:
                rec.verdict = ";".join([rec.verdict, *(f"skip:{s}" for s in switches)])
            diffs = broker.take_exchange_position(engine.exec_state, size, avg, bar[4], rec.seq) + foreign
            rec.position = float(engine.exec_state[ex.S_POS])
            updates.append(("live_switches", json.dumps(switches)))
            store.write_bar(rec, engine.states(), updates, diffs)
        except BaseException:
            saved = store.kernel_states()  # nothing of this bar was committed: back to the last committed one
            if saved is not None:
                engine.restore(saved)
            raise
        st = engine.exec_state
        kernel = [name for name, on in (("drawdown_halt", st[ex.S_HALTED] > 0.0),
                                        ("daily_loss_limit", st[ex.S_DAY_HALT] > 0.0),
                                        ("loss_pause", rec.ts + engine.bar_ms < st[ex.S_PAUSE_UNTIL])) if on]
        self._switch_alerts(switches + kernel)
        self._switches = switches
        broker.bar_seq = rec.seq
        broker.act(rec, engine.exec_state)
        self._publish(now_ms, exchange_ok=True)  # /health reflects this bar before it counts as acted on
        store.set_control("acted_seq", str(rec.seq))
        self._daily(rec)
        _emit(self.log, logging.INFO, "bar", seq=rec.seq, bar=_iso(rec.ts), close=rec.ohlcv[3], action=rec.action,
              confidence=rec.confidence, ml_p=rec.ml_p, verdict=rec.verdict, position=rec.position, equity=rec.equity,
              differences=len(diffs))

    def _switch_alerts(self, switches: list[str]) -> None:
        """One alert when a kill switch trips (critical for the drawdown halt), one info when it clears."""
        before = self._alerted_switches
        now = {s.split(":")[0] for s in switches}
        for name in sorted(now - before):
            detail = next(s for s in switches if s.startswith(name))
            self._alert("critical" if name == "drawdown_halt" else "warning", f"switch:{name}",
                        f"kill switch {name} tripped ({detail}); new decisions are skipped, stops stay")
        for name in sorted(before - now):
            self._alert("info", f"switch_clear:{name}", f"kill switch {name} cleared; trading resumes")
        self._alerted_switches = now

    def _daily(self, rec: BarRecord) -> None:
        """The previous day's summary at the first bar of a new UTC day."""
        finished = self._days.update(rec.ts, rec.equity, rec.position)
        if finished is not None and self.notifier is not None:
            self.notifier.daily_summary(*finished)


def _exchange_errors() -> tuple[type[BaseException], ...]:
    from cryptobot.exchange.bitbank_margin import BitbankError

    return (BitbankError, OSError)


def wait_for_exit(pid: int, state_dir: Path, timeout: float) -> bool:
    """True when the process released the state directory within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(state_dir) is None:
            return True
        time.sleep(0.05)
    return running_pid(state_dir) is None
