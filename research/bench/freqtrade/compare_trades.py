"""Compare freqtrade's trades (its backtest-result zip) with cryptobot's trades.csv, trade by trade.

`python compare_trades.py RESULT.zip OURS/trades.csv` (freqtrade venv): counts, and the first rows that
differ in entry/exit time, side, entry/exit price (relative 1e-9) or exit kind (signal/stop/end).
"""

import json
import sys
import zipfile

import numpy as np
import pandas as pd

z = zipfile.ZipFile(sys.argv[1])
name = next(n for n in z.namelist() if n.endswith(".json") and not n.endswith("_config.json"))
ft = pd.DataFrame(json.loads(z.read(name))["strategy"]["EmaCrossSAR"]["trades"])
ours = pd.read_csv(sys.argv[2])
kind_ft = ft["exit_reason"].map({"exit_signal": "signal", "stop_loss": "stop_loss", "force_exit": "end_of_data"})
a = pd.DataFrame({"entry": pd.to_datetime(ft["open_date"], utc=True), "exit": pd.to_datetime(ft["close_date"], utc=True),
                  "side": np.where(ft["is_short"], "short", "long"), "px_in": ft["open_rate"],
                  "px_out": ft["close_rate"], "kind": kind_ft.fillna(ft["exit_reason"])})
b = pd.DataFrame({"entry": pd.to_datetime(ours["entry_time"], utc=True), "exit": pd.to_datetime(ours["exit_time"], utc=True),
                  "side": ours["side"], "px_in": ours["entry_price"], "px_out": ours["exit_price"],
                  "kind": ours["exit_reason"]})
print(f"freqtrade {len(a)} trades ({a['kind'].value_counts().to_dict()}); "
      f"cryptobot {len(b)} trades ({b['kind'].value_counts().to_dict()})")
n = min(len(a), len(b))
same = np.ones(n, dtype=bool)
for col in ("entry", "exit", "side", "kind"):
    same &= a[col].iloc[:n].to_numpy() == b[col].iloc[:n].to_numpy()
for col in ("px_in", "px_out"):
    x, y = a[col].iloc[:n].to_numpy(dtype=float), b[col].iloc[:n].to_numpy(dtype=float)
    print(f"  {col}: max relative difference {float(np.max(np.abs(x - y) / np.abs(y))):.3g}")
bad = np.flatnonzero(~same)
print(f"  identical (entry, exit, side, exit kind) in the first {n}: {int(same.sum())}; first differences:")
for i in bad[:5]:
    print("   ft  ", a.iloc[i].to_dict())
    print("   ours", b.iloc[i].to_dict())
