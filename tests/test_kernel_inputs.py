"""Batch kernels compile one signature whoever calls: their inputs are passed read-only (`frozen`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import typeof

from cryptobot.config import Config
from cryptobot.data.frames import ohlcv_arrays
from cryptobot.execution import execution_params
from cryptobot.kernels import execution as ex
from cryptobot.kernels.inputs import frozen


def test_writable_and_read_only_inputs_get_one_numba_type_without_a_copy() -> None:
    writable = np.arange(10.0)
    read_only = np.arange(10.0)
    read_only.flags.writeable = False
    assert typeof(writable) != typeof(read_only)  # what made a cold backtest compile the execution kernel twice
    a, b = frozen(writable), frozen(read_only)
    assert typeof(a) == typeof(b) and not a.flags.writeable
    assert np.shares_memory(a, writable) and b is read_only  # views, never copies
    assert writable.flags.writeable  # the caller's array is left as it was
    ints = frozen([1, 2, 3], np.int64)
    assert ints.dtype == np.int64 and not ints.flags.writeable


def test_ohlcv_arrays_are_read_only_whatever_the_frame_holds() -> None:
    index = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC", unit="ms")
    frame = pd.DataFrame({c: np.arange(4, dtype=np.int64) for c in ("open", "high", "low", "close", "volume")},
                         index=index)
    arrays = ohlcv_arrays(frame)
    assert all(x.dtype == np.float64 and x.flags.c_contiguous and not x.flags.writeable for x in arrays)


def test_execution_batch_compiles_once_for_writable_and_read_only_inputs() -> None:
    n = 200
    rng = np.random.default_rng(3)
    c = 5e6 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, n)))
    o = np.r_[c[0], c[:-1]]
    h, lo = np.maximum(o, c) * 1.001, np.minimum(o, c) * 0.999
    action = np.zeros(n)
    action[::30], action[15::30] = 1.0, -1.0
    sl = np.where(action > 0, c * 0.98, np.where(action < 0, c * 1.02, np.nan))
    nan = np.full(n, np.nan)
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 3_600_000
    p = execution_params(Config(), 3_600_000)
    inputs = [ts, o, h, lo, c, action, sl, nan, np.abs(action), nan]
    first = ex.execution_batch(p, *inputs)
    compiled = len(ex.execution_batch_into.signatures)
    for x in inputs:
        x.flags.writeable = False
    second = ex.execution_batch(p, *inputs)
    assert len(ex.execution_batch_into.signatures) == compiled  # the read-only call compiled nothing new
    assert len(first[0]) > 0 and first[0].tobytes() == second[0].tobytes() and np.array_equal(first[1], second[1])
