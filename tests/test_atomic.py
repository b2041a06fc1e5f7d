"""Atomic writes: a failing writer leaves the old file and no temporary file behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from cryptobot import atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "stats.json"
    atomic.write_text(target, "old\n")
    assert target.read_text() == "old\n"

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["stats.json"]


def test_csv_and_text_replace_the_target(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    path = atomic.write_csv(tmp_path / "t.csv", frame, index=False)
    assert pd.read_csv(path).equals(frame)
    atomic.write_csv(path, frame.iloc[:1], index=False)
    assert len(pd.read_csv(path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_written_files_get_the_usual_mode_not_a_private_one(tmp_path: Path) -> None:
    """Reports and stores are read by other users and containers: the mode follows the umask, as open() does."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    made = atomic.write_text(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(os.stat(made).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
