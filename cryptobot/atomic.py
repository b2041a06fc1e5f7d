"""Atomic file writes: the one way every command writes a file, so a crash or an error leaves either the
old file or the complete new one — never half of it.

The content goes to a temporary sibling (same directory, so the rename stays on one file system), is
flushed to disk, and replaces the target with `os.replace`, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

# the process's file-creation mask, read once at import (setting it is process-wide, so never while threads run)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Call `writer(tmp)` to fill a temporary sibling of `path`, then move it over `path`; on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        writer(tmp)
        # mkstemp creates the file private (0600); the result gets the mode any new file would get
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """`text` as UTF-8, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_csv(path: str | Path, frame: pd.DataFrame, **to_csv: Any) -> Path:
    """`frame.to_csv(path, **to_csv)`, atomically."""
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, **to_csv))


def write_parquet(path: str | Path, frame: pd.DataFrame) -> Path:
    """`frame.to_parquet(path)` (index kept), atomically."""
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=True))
