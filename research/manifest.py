"""Run manifests: what exactly produced a result (design §5) — code, data, config, parameters, versions."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cryptobot.config import Config
from cryptobot.data import ValidationReport, timestamps_ms
from cryptobot.data.frames import ms_to_iso
from cryptobot.jsonio import write_json as write_json  # the one strict, atomic JSON writer

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("numpy", "pandas", "numba", "pyarrow", "pydantic", "vectorbt", "plotly", "ccxt", "cryptobot")


def code_version() -> dict[str, Any]:
    """Commit of the checkout and whether it had uncommitted changes ("unknown" outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True, check=True, timeout=10).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_description(source: str, frame: pd.DataFrame) -> dict[str, Any]:
    ts = timestamps_ms(frame)
    desc: dict[str, Any] = {
        "source": source,
        "rows": int(len(frame)),
        "first": frame.index[0].isoformat() if len(frame) else None,
        "last": frame.index[-1].isoformat() if len(frame) else None,
        "frame_sha256": hashlib.sha256(ts.tobytes() + frame.to_numpy().tobytes()).hexdigest(),
    }
    if Path(source).is_file():
        desc["file_sha256"] = file_sha256(source)
    return desc


def input_gaps(report: ValidationReport) -> dict[str, Any]:
    """Gaps and warnings of the data a run used (its selected range): the manifest's `input_validation`."""
    largest = max(report.gaps, key=lambda g: g[1], default=None)
    return {
        "gaps": len(report.gaps),
        "missing_bars": int(report.missing_bars),
        "largest_gap": None if largest is None else {"first_missing_bar": ms_to_iso(int(largest[0])),
                                                     "missing_bars": int(largest[1])},
        "zero_volume_bars": int(report.zero_volume_bars),
        "warnings": list(report.warnings),
    }


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def build_manifest(kind: str, config: Config, parameters: dict[str, Any], data: list[dict[str, Any]],
                   seeds: dict[str, int] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of one run; secrets never appear (the config is the masked public view)."""
    return {
        "kind": kind,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": code_version(),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "data": data,
        "config_hash": config.config_hash(),
        "config": config.public_dict(),
        "parameters": parameters,
        "seeds": seeds or {},
        "libraries": library_versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        **(extra or {}),
    }

