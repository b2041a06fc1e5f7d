"""Strict JSON for every file and line the project writes.

Python's `json` writes NaN and Infinity by default, which is not JSON: other tools (jq, browsers, most
parsers) refuse the file. Every writer goes through `dumps`/`write_json`: a value that may be undefined
(a profit factor with no losing trade, an AUC with one class, a CAGR that overflows on a short span) becomes
`null` on purpose, numpy scalars and arrays become plain numbers and lists, and `allow_nan=False` makes any
other non-finite number an error instead of a broken file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cryptobot import atomic


def to_jsonable(value: Any) -> Any:
    """`value` with NaN/±inf replaced by None, numpy scalars/arrays by Python numbers/lists, tuples by lists."""
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else str(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    """Strict JSON text of `value` (non-finite numbers → null; other non-JSON types → their str())."""
    return json.dumps(to_jsonable(value), indent=indent, sort_keys=sort_keys, default=str, allow_nan=False)


def write_json(path: str | Path, value: Any, sort_keys: bool = False) -> None:
    """Atomic strict JSON file (temp file + rename), indented, with a final newline."""
    atomic.write_text(path, dumps(value, indent=2, sort_keys=sort_keys) + "\n")


def strict_loads(text: str) -> Any:
    """Parse JSON refusing NaN/Infinity (the check the tests apply to every file written)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)
