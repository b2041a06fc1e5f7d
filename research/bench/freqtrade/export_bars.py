"""Write the backtest bench's bars as the CSV our CLI reads and the YAML config it takes (run with cryptobot's venv).

`python export_bars.py OUTDIR [BARS]` → OUTDIR/bars.csv (shipped CSV layout, from 2020-01-01 UTC) and
OUTDIR/bench.yaml (`research.bench.backtest.BENCH_SETTINGS`). `to_feather.py` turns the same CSV into
freqtrade's data files, so both engines read the same bars.
"""

import sys
from pathlib import Path

from research.bench.backtest import bench_config_yaml, frame, write_bench_csv

out = Path(sys.argv[1])
bars = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
out.mkdir(parents=True, exist_ok=True)
write_bench_csv(frame(bars), out / "bars.csv")
bench_config_yaml(out / "bench.yaml")
print(f"wrote {out / 'bars.csv'} ({bars:,} bars) and {out / 'bench.yaml'}")
