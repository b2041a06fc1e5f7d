"""Cold and warm start: how long the first run after an install takes (numba compiling every kernel into an
empty cache) and every later one (loading the cache), for the bot's kernels and the quick-start backtest.

Each figure is a whole fresh process, as a user starts it. Cold runs get an empty numba cache and an empty
generated-pipeline directory of their own; warm runs reuse what the cold run wrote.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz"


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.bench start", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per command (the minimum is reported)")
    args = parser.parse_args(argv)
    commands = {
        "import cryptobot.live": [sys.executable, "-c", "import cryptobot.live"],
        "python -m cryptobot.warmup": [sys.executable, "-m", "cryptobot.warmup"],
        "quick-start backtest": [sys.executable, "-m", "research", "backtest", "--data", SAMPLE, "--out", "{out}"],
    }
    print(f"{'what':<28} {'cold s':>8} {'warm s':>8}")
    with tempfile.TemporaryDirectory(prefix="cryptobot-start-") as tmp:
        for name, cmd in commands.items():
            cache = Path(tmp) / name.replace(" ", "_")
            env = {**os.environ, "NUMBA_CACHE_DIR": str(cache / "numba"), "CRYPTOBOT_PIPELINE_DIR": str(cache / "pipelines")}
            env.pop("CRYPTOBOT_NUMBA_CACHE_BASE", None)
            full = [c.replace("{out}", str(cache / "run")) for c in cmd]
            cold = _timed(full, env)
            warm = min(_timed(full, env) for _ in range(max(1, args.repeat)))
            print(f"{name:<28} {cold:8.2f} {warm:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
