"""Compile, or load from numba's on-disk cache, every kernel the bot runs: `python -m cryptobot.warmup`.

The Docker build runs it so a container's first decision does not pay the JIT; operators can run it after
an upgrade for the same reason. It drives the real code paths (batch features and signals, the one-bar
steppers, the execution kernel, the model bundle's tree evaluator when a bundle is configured) on a small
synthetic series, and prints how long each took — seconds when compiling, milliseconds when cached.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from cryptobot.config import Config, ConfigError, load_config, parse_set_options
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


def warm(config: Config | None = None) -> dict[str, float]:
    """Run every kernel once; returns seconds per step (the first run compiles, later runs load the cache)."""
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

    timed("features (batch)", lambda: compute_features(frame, cfg.features))
    signals = timed("signal pipeline (batch)", lambda: compute_signals(frame, cfg, timeframe=cfg.data.timeframe))

    def steps() -> None:
        stepper = SignalStepper(cfg, timeframe=cfg.data.timeframe)
        for t, row in zip(ts.tolist(), values.tolist(), strict=True):
            stepper.update(t, *row)

    timed("signal pipeline (one bar)", steps)
    p = execution_params(cfg, timeframe_to_ms(cfg.data.timeframe))
    o, h, lo, c = (np.ascontiguousarray(values[:, i]) for i in range(4))
    args = (signals["action"].to_numpy(np.float64), signals["stop_loss"].to_numpy(), signals["take_profit"].to_numpy(),
            signals["voters"].to_numpy(np.float64), np.full(len(ts), np.nan))
    timed("execution (batch)", lambda: ex.execution_batch(p, timestamps_ms(frame), o, h, lo, c, *args))

    def one_bar() -> None:
        state = ex.execution_init(p)
        events = np.empty(ex.EV_MAX, dtype=ex.EVENT_DTYPE)
        ex.execution_step(state, p, 0, int(ts[0]), o[0], h[0], lo[0], c[0], 0.0, np.nan, np.nan, 0.0, np.nan,
                          events.view(np.float64))

    timed("execution (one bar)", one_bar)
    bundle_dir = Path(cfg.ml.bundle_dir)
    if bundle_dir.is_dir():
        from cryptobot.ml import load_bundle
        from cryptobot.ml.gate import gate_probabilities

        bundle = load_bundle(bundle_dir)
        feats = compute_features(frame, cfg.features).to_numpy()
        timed("model bundle", lambda: (gate_probabilities(bundle, feats), gate_probabilities(bundle, feats[-1:])))
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cryptobot.warmup",
        description="Compile (or load from the numba cache) every kernel the bot runs, and say how long each took.",
    )
    parser.add_argument("--config", action="append", default=[], metavar="FILE", help="extra YAML config (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, overrides=parse_set_options(args.set))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    total = 0.0
    for name, seconds in warm(cfg).items():
        total += seconds
        print(f"{name:<28} {seconds:8.3f} s")
    print(f"{'total':<28} {total:8.3f} s  (numba cache: {os.environ.get('NUMBA_CACHE_DIR')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
