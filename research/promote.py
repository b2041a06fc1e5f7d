"""Promotion: make a verified bundle the production model; the previous one is archived, the act logged."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptobot.jsonio import dumps
from cryptobot.ml import load_bundle


def promote(bundle_dir: str | Path, models_dir: str | Path = "models", reason: str = "") -> dict[str, Any]:
    """Copy `bundle_dir` to `models/production/` (atomically), archive the old one to `models/archive/<id>/`."""
    bundle = load_bundle(bundle_dir)  # refuses anything unverifiable
    models = Path(models_dir)
    production = models / "production"
    models.mkdir(parents=True, exist_ok=True)
    previous = None
    if production.exists():
        previous = load_bundle(production).bundle_id if (production / "metadata.json").exists() else "unknown"
        archive = models / "archive" / previous
        if not archive.exists():
            archive.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(production, archive)
    staging = models / f".production.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(bundle.path, staging)
    load_bundle(staging)
    old = models / f".production.old.{os.getpid()}"
    if production.exists():
        os.replace(production, old)
    os.replace(staging, production)
    shutil.rmtree(old, ignore_errors=True)
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": f"{getpass.getuser()}@{socket.gethostname()}",
        "bundle_id": bundle.bundle_id,
        "source": str(Path(bundle_dir).resolve()),
        "previous": previous,
        "reason": reason,
    }
    with open(models / "promotions.jsonl", "a", encoding="utf-8") as log:
        log.write(dumps(record) + "\n")
    return record
