"""`python -m cryptobot doctor`: is this machine ready to run the bot? One line per check, and an exit code.

Each check says ok, warn or fail and, when not ok, what to do. Exit code 0 when all are ok, 1 when the worst
is a warning, 2 when anything fails; `--json` prints the same for monitoring. Secrets are checked for
presence only and never shown. The checks are read-only apart from a probe file in the numba cache and the
state directory, removed at once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptobot.config import Config, ConfigError, load_config, parse_set_options
from cryptobot.timeunits import HOUR_MS

OK, WARN, FAIL = "ok", "warn", "fail"
EXIT = {OK: 0, WARN: 1, FAIL: 2}
# Kernels whose compiled code must be in the numba cache for a first decision without the JIT.
HOT_KERNELS = ("features_step", "execution_step", "pipeline_step")
MIN_FREE_FAIL = 100 * 2**20
MIN_FREE_WARN = 1 * 2**30


@dataclass
class Check:
    name: str
    status: str
    detail: str


def check_config(paths: list[str], overrides: list[str]) -> tuple[Check, Config | None]:
    try:
        cfg = load_config(paths, overrides=parse_set_options(overrides))
    except ConfigError as exc:
        return Check("config", FAIL, f"{'; '.join(exc.problems)} — fix the key in your config file, environment or --set"), None
    except (OSError, ValueError) as exc:
        return Check("config", FAIL, f"{exc} — fix the file or option named"), None
    return Check("config", OK, f"valid (hash {cfg.config_hash()[:12]})"), cfg


def check_secrets(cfg: Config, mode: str) -> Check:
    missing = [f"CRYPTOBOT__EXCHANGE__{name.upper()}" for name in ("api_key", "api_secret")
               if getattr(cfg.exchange, name) is None]
    if not missing:
        return Check("secrets", OK, "exchange API key and secret are set (not shown)")
    if mode == "live":
        return Check("secrets", FAIL, f"{', '.join(missing)} not set — export them in the bot's environment "
                                      "(never in a config file); `live` refuses to start without them")
    return Check("secrets", OK, "no exchange keys set (paper trading needs none)")


def check_bundle(cfg: Config) -> Check:
    from cryptobot.ml import BundleError, load_bundle

    path = Path(cfg.ml.bundle_dir)
    try:
        bundle = load_bundle(path)
    except BundleError as exc:
        if cfg.ml.enabled:
            return Check("model bundle", FAIL, f"{exc} — restore the bundle or promote a verified one "
                                               "(python -m research promote); the bot refuses to trade without it")
        return Check("model bundle", WARN, f"{exc} (ml.enabled is false, so the bot does not need it)")
    state = "in use" if cfg.ml.enabled else "not in use (ml.enabled is false)"
    return Check("model bundle", OK, f"{path} verified, bundle {bundle.bundle_id}, {state}")


def check_data(cfg: Config, stale_after_hours: float, now_ms: int) -> Check:
    from cryptobot.data.store import Store, StoreKey

    key = StoreKey(cfg.exchange.name, cfg.exchange.symbol, cfg.data.timeframe)
    store = Store(cfg.data.store_dir)
    if not store.exists(key):
        return Check("data store", WARN, f"no stored {key} under {store.root} — the bot downloads its warm-up "
                                         "history itself; to keep a local copy: python -m cryptobot.data download")
    try:
        last = store.last_timestamp(key)
    except Exception as exc:  # an unreadable file of any kind is this check's finding
        return Check("data store", FAIL, f"{store.path(key)} is not readable ({exc}) — re-download it")
    if last is None:
        return Check("data store", FAIL, f"{store.path(key)} has no bars — re-download it")
    age_h = (now_ms - last) / HOUR_MS
    if age_h > stale_after_hours:
        return Check("data store", FAIL, f"{key} ends {age_h:.1f} h ago (more than {stale_after_hours:g} h) — "
                                         f"update it: python -m cryptobot.data download --exchange {key.exchange} "
                                         f"--symbol {key.symbol} --timeframe {key.timeframe}")
    return Check("data store", OK, f"{key} readable, last bar {age_h:.1f} h ago")


def check_exchange(cfg: Config, now: Callable[[], float]) -> Check:
    from cryptobot.exchange.public import ClosedBars

    try:
        bars = ClosedBars(cfg.exchange.name, cfg.exchange.symbol, cfg.data.timeframe, api_urls=cfg.live.api_urls,
                          timeout_ms=int(cfg.live.fetch_timeout_seconds * 1000))
        sent = now()
        exchange_ms = bars.now()
        latency_ms = (now() - sent) * 1000
    except Exception as exc:  # any failure to reach the exchange is what this check reports
        return Check("exchange", FAIL, f"{cfg.exchange.name} public API not reachable ({type(exc).__name__}: "
                                       f"{str(exc)[:200]}) — check the network, or the exchange's status page")
    skew_s = (exchange_ms - now() * 1000) / 1000
    detail = f"{cfg.exchange.name} answered in {latency_ms:.0f} ms; clock skew {skew_s:+.1f} s"
    if latency_ms > cfg.risk.max_latency_ms or abs(skew_s) > 5.0:
        return Check("exchange", WARN, f"{detail} — slow answers or a skewed clock delay decisions; "
                                       "check NTP (timedatectl) and the network")
    return Check("exchange", OK, detail)


def _writable(directory: Path) -> str | None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as exc:
        return str(exc)
    return None


def check_numba_cache() -> Check:
    cache = Path(os.environ["NUMBA_CACHE_DIR"])  # set (and keyed on the kernel sources) by `import cryptobot`
    problem = _writable(cache)
    if problem:
        return Check("numba cache", FAIL, f"{cache} is not writable ({problem}) — set NUMBA_CACHE_DIR to a "
                                          "writable directory the bot user owns")
    names = {p.name for p in cache.rglob("*.nbi")}
    cold = [k for k in HOT_KERNELS if not any(f".{k}-" in n or n.startswith(f"{k}-") for n in names)]
    if cold:
        return Check("numba cache", WARN, f"{cache} is cold ({', '.join(cold)} not compiled) — run "
                                          "python -m cryptobot.warmup so the first decision does not wait for the JIT")
    return Check("numba cache", OK, f"{cache} writable and warm")


def check_state_dir(state_dir: Path) -> Check:
    from cryptobot.live.loop import running_pid

    problem = _writable(state_dir)
    if problem:
        return Check("state dir", FAIL, f"{state_dir} is not writable ({problem}) — fix its owner/permissions")
    pid = running_pid(state_dir)
    if pid is not None:
        who = f"process {pid}" if pid > 0 else "another process"
        return Check("state dir", FAIL, f"{state_dir} is locked by {who} — a bot is running on it; "
                                        "see python -m cryptobot.live status, or stop it first")
    return Check("state dir", OK, f"{state_dir} writable, not locked")


def check_disk(state_dir: Path) -> Check:
    probe = state_dir if state_dir.exists() else Path.cwd()
    free = shutil.disk_usage(probe).free
    text = f"{free / 2**30:.1f} GiB free under {probe}"
    if free < MIN_FREE_FAIL:
        return Check("disk", FAIL, f"{text} — free space now: SQLite cannot commit a bar on a full disk")
    if free < MIN_FREE_WARN:
        return Check("disk", WARN, f"{text} — free some space (logs rotate, the state grows with every bar)")
    return Check("disk", OK, text)


def run_checks(paths: list[str], overrides: list[str], mode: str, state_dir: str | None,
               stale_after_hours: float, skip_exchange: bool = False) -> list[Check]:
    config_check, cfg = check_config(paths, overrides)
    checks = [config_check]
    if cfg is None:
        return checks
    state = Path(state_dir or cfg.live.state_dir)
    checks += [check_secrets(cfg, mode), check_bundle(cfg), check_data(cfg, stale_after_hours, int(time.time() * 1000))]
    if not skip_exchange:
        checks.append(check_exchange(cfg, time.time))
    checks += [check_numba_cache(), check_state_dir(state), check_disk(state)]
    return checks


def exit_code(checks: list[Check]) -> int:
    return max(EXIT[c.status] for c in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cryptobot doctor",
        description="Check that this machine can run the bot: config, secrets (presence only), model bundle, data "
                    "store, exchange reachability and clock skew, numba cache, state directory and lock, disk. "
                    "Exit code 0 ok, 1 warnings, 2 failures.",
    )
    parser.add_argument("--mode", choices=("paper", "live"), default="paper", help="what you are about to run")
    parser.add_argument("--state-dir", help="the bot's state directory (default live.state_dir)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE", help="config YAML file(s), in order")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--stale-after", type=float, default=24.0, metavar="HOURS",
                        help="stored data older than this fails the data check (default 24)")
    parser.add_argument("--offline", action="store_true", help="skip the exchange check (no network)")
    parser.add_argument("--json", action="store_true", help="one JSON object (checks and exit code) for monitoring")
    args = parser.parse_args(argv)
    checks = run_checks(args.config, args.set, args.mode, args.state_dir, args.stale_after, args.offline)
    code = exit_code(checks)
    if args.json:
        print(json.dumps({"status": {0: OK, 1: WARN, 2: FAIL}[code], "exit_code": code,
                          "checks": [asdict(c) for c in checks]}, allow_nan=False))
    else:
        for c in checks:
            print(f"{c.status:<4}  {c.name:<13} {c.detail}")
    return code


if __name__ == "__main__":
    sys.exit(main())
