#!/usr/bin/env bash
# Time freqtrade's whole `freqtrade backtesting` process on the bench bars, offline (no network namespace).
# Usage: run_freqtrade.sh WORKDIR   (WORKDIR/user_data made by to_feather.py); FT_PY = the freqtrade venv's python.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$1"
FT_PY=${FT_PY:-/tmp/ft/venv/bin/python}
uptime
/usr/bin/time -f "wall %e s, user %U s, sys %S s, max RSS %M KB" \
  unshare -n "$FT_PY" "$here/ft_offline.py" backtesting --config "$here/config.json" --userdir user_data \
  --strategy-path "$here" --fee 0.001
