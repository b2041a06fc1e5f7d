"""cryptobot: backtest-first research framework and trading bot for BTC/JPY margin trading on bitbank.

numba's on-disk cache is keyed on each function's own source file only, so a cached kernel that inlined a
constant or a helper from another kernel module would survive a change to that module (wrong state layout,
out-of-bounds writes). The cache directory is therefore keyed on a hash of all kernel sources: any kernel
change starts a fresh cache. Set before numba compiles anything.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path


def _kernel_cache_dir() -> str:
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parent / "kernels").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    base = os.environ.get("CRYPTOBOT_NUMBA_CACHE_BASE") or os.environ.get("NUMBA_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "cryptobot" / "numba"
    if root.name.startswith("kernels-"):  # already keyed (inherited by a child process)
        root = root.parent
    return str(root / f"kernels-{digest.hexdigest()[:16]}")


_CACHE_DIR = _kernel_cache_dir()
os.environ["CRYPTOBOT_NUMBA_CACHE_BASE"] = str(Path(_CACHE_DIR).parent)
os.environ["NUMBA_CACHE_DIR"] = _CACHE_DIR
if "numba" in sys.modules:
    sys.modules["numba"].config.CACHE_DIR = _CACHE_DIR
