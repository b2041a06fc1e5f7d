#!/usr/bin/env bash
# Time cryptobot's whole `python -m research backtest` process on the same bars (CSV) and rules (bench.yaml).
# Usage: run_ours.sh WORKDIR [extra args, e.g. --no-plot]   (WORKDIR/bars.csv, bench.yaml from export_bars.py)
# ROOT = the cryptobot checkout (default: the git checkout holding this script).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(cd "$1" && pwd); shift
ROOT=${ROOT:-$(git -C "$here" rev-parse --show-toplevel)}
cd "$ROOT"
export PYTHONPATH=$ROOT NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$ROOT/.numba_cache}
uptime
/usr/bin/time -f "wall %e s, user %U s, sys %S s, max RSS %M KB" \
  "${PY:-$ROOT/.venv/bin/python}" -m research backtest --data "$work/bars.csv" --config "$work/bench.yaml" \
  --out "$work/ours" "$@"
