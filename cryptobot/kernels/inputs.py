"""One array type per kernel input, so each batch kernel compiles once.

numba compiles a kernel once per argument type, and writability is part of an array's type: pandas hands
out read-only arrays (copy-on-write), NumPy code writable ones. Without this a cold backtest compiled the
execution kernel twice — once for the warm-up's writable inputs, once for the backtest's read-only ones
(about 20 s each). Kernels never write their inputs, so every batch entry point passes them read-only.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def frozen(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """`x` as a C-contiguous read-only array of `dtype`: a view, no copy, when it already is one."""
    a = np.ascontiguousarray(x, dtype=dtype)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a
