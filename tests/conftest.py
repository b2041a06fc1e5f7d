"""Session-wide test set-up: a writable numba cache, the shipped sample data, and one numba warm-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))

SAMPLE_DIR = ROOT / "data" / "sample"
SAMPLE_FILES = sorted(SAMPLE_DIR.glob("*.csv.gz"))


def shipped_files() -> list[Path]:
    """The shipped sample files, for parametrising; without them the run must fail, not pass on zero cases
    (`empty_parameter_set_mark = fail_at_collect` in pyproject.toml catches any other empty list)."""
    if not SAMPLE_FILES:
        raise pytest.UsageError(f"no shipped sample data (*.csv.gz) under {SAMPLE_DIR}: restore data/sample/")
    return list(SAMPLE_FILES)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_files() -> list[Path]:
    assert SAMPLE_FILES, f"no shipped sample data under {SAMPLE_DIR}"
    return SAMPLE_FILES
