"""Compile, or load from numba's on-disk cache, every kernel the bot runs: `python -m cryptobot.warmup`.

The Docker build runs it so a container's first decision does not pay the JIT; operators can run it after
an upgrade for the same reason. It drives the real code paths (batch features and signals, the one-bar
steppers, the execution kernel, the model bundle's tree evaluator when a bundle is configured) on a small
synthetic series, and prints how long each took — seconds when compiling, milliseconds when cached.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from cryptobot.cli_errors import run_command
from cryptobot.config import Config, load_config, parse_set_options
from cryptobot.data.frames import make_frame, timeframe_to_ms, timestamps_ms

T = TypeVar("T")


def _series(config: Config, bars: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic random walk on the configured timeframe (no file or network needed)."""
    rng = np.random.default_rng(0)
    close = 5e6 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, bars)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 1e-3, bars))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 1e-3, bars))
    volume = rng.uniform(0.1, 5.0, bars)
    ts = 1_514_764_800_000 + np.arange(bars, dtype=np.int64) * timeframe_to_ms(config.data.timeframe)
    return ts, np.column_stack([open_, high, low, close, volume])


PARTS: tuple[str, ...] = ("features", "signals", "execution", "bundle")
# also accepted by --only: the execution kernel's batch driver alone (what a backtest needs; `compile_ahead`)
BATCH_ONLY = "execution-batch"


def _execution_inputs(ts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Decisions for the execution kernel without running the signal pipeline (so the parts compile apart):
    a long entry every 40 bars and a short one 20 bars later, 2 % stops; the dtypes a backtest passes."""
    close = np.ascontiguousarray(values[:, 3])
    action = np.zeros(len(ts))
    action[::40], action[20::40] = 1.0, -1.0
    stop = np.where(action > 0, close * 0.98, np.where(action < 0, close * 1.02, np.nan))
    return action, stop, np.full(len(ts), np.nan), np.abs(action), np.full(len(ts), np.nan)


def warm(config: Config | None = None, parts: tuple[str, ...] = PARTS) -> dict[str, float]:
    """Run each kernel of `parts` once; returns seconds per step (the first run compiles, later runs load the cache)."""
    from cryptobot.execution import execution_params
    from cryptobot.features import compute_features
    from cryptobot.kernels import execution as ex
    from cryptobot.strategies import SignalStepper, compute_signals

    cfg = config or load_config()
    ts, values = _series(cfg)
    frame = make_frame(ts, values)
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - start
        return result

    if "features" in parts:
        timed("features (batch)", lambda: compute_features(frame, cfg.features))
    if "signals" in parts:
        timed("signal pipeline (batch)", lambda: compute_signals(frame, cfg, timeframe=cfg.data.timeframe))

        def steps() -> None:
            stepper = SignalStepper(cfg, timeframe=cfg.data.timeframe)
            for t, row in zip(ts.tolist(), values.tolist(), strict=True):
                stepper.update(t, *row)

        timed("signal pipeline (one bar)", steps)
    if "execution" in parts or BATCH_ONLY in parts:
        p = execution_params(cfg, timeframe_to_ms(cfg.data.timeframe))
        o, h, lo, c = (np.ascontiguousarray(values[:, i]) for i in range(4))
        args = _execution_inputs(ts, values)
        timed("execution (batch)", lambda: ex.execution_batch(p, timestamps_ms(frame), o, h, lo, c, *args))

        def one_bar() -> None:
            state = ex.execution_init(p)
            events = np.empty(ex.EV_MAX, dtype=ex.EVENT_DTYPE)
            ex.execution_step(state, p, 0, int(ts[0]), o[0], h[0], lo[0], c[0], 0.0, np.nan, np.nan, 0.0, np.nan,
                              events.view(np.float64))

        if "execution" in parts:
            timed("execution (one bar)", one_bar)
    bundle_dir = Path(cfg.ml.bundle_dir)
    if "bundle" in parts and bundle_dir.is_dir():
        from cryptobot.ml import load_bundle
        from cryptobot.ml.gate import gate_probabilities

        bundle = load_bundle(bundle_dir)
        feats = compute_features(frame, cfg.features).to_numpy()
        timed("model bundle", lambda: (gate_probabilities(bundle, feats), gate_probabilities(bundle, feats[-1:])))
    return timings


def is_cold(module: str) -> bool:
    """True when this version's numba cache holds nothing compiled from `cryptobot/kernels/<module>.py`.

    The cache directory is keyed on every kernel source (`cryptobot/__init__.py`), so any index file of the
    module there was written by this very code.
    """
    return not any(Path(os.environ["NUMBA_CACHE_DIR"]).glob(f"kernels_*/{module}.*.nbi"))


_AHEAD: list[subprocess.Popen[bytes]] = []


def compile_ahead() -> None:
    """On a cold cache, compile the execution kernel in a second process while this one goes on.

    A command that needs the signal pipeline first and the execution kernel after it (a backtest) spends its
    first run compiling both one after the other; with two cores the execution kernel compiles meanwhile
    next door and is loaded from the cache when needed (`wait_for_ahead`). Warm caches start nothing.
    """
    if _AHEAD or (os.cpu_count() or 1) < 2 or not is_cold("execution"):
        return
    cmd = [sys.executable, "-m", "cryptobot.warmup", "--only", BATCH_ONLY]  # the one-bar driver is not waited for
    _AHEAD.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def wait_for_ahead() -> None:
    """Block until what `compile_ahead` started has written the cache (immediately when nothing was started)."""
    while _AHEAD:
        _AHEAD.pop().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cryptobot.warmup",
        description="Compile (or load from the numba cache) every kernel the bot runs, and say how long each took.",
    )
    parser.add_argument("--config", action="append", default=[], metavar="FILE", help="extra YAML config (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--only", default=",".join(PARTS), metavar="PARTS",
                        help=f"comma-separated parts to compile (default all: {','.join(PARTS)}; "
                             f"{BATCH_ONLY}: only the execution kernel's batch driver, what a backtest needs)")
    return run_command(_warm_and_report, parser.parse_args(argv))


def _warm_and_report(args: argparse.Namespace) -> int:
    parts = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = sorted(set(parts) - {*PARTS, BATCH_ONLY})
    if unknown:
        raise ValueError(f"--only: unknown part(s) {unknown}; choose from {', '.join((*PARTS, BATCH_ONLY))}")
    total = 0.0
    for name, seconds in warm(load_config(args.config, overrides=parse_set_options(args.set)), parts).items():
        total += seconds
        print(f"{name:<28} {seconds:8.3f} s")
    print(f"{'total':<28} {total:8.3f} s  (numba cache: {os.environ.get('NUMBA_CACHE_DIR')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
