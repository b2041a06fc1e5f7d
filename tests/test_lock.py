"""`dev.py lock` keeps constraints.txt installable on the oldest Python the project accepts.

A real venv and real wheels on a local wheel directory (no index): one release of a package that needs a
newer patch release of Python than the project's floor, one that does not.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import dev  # noqa: E402


def _wheel(directory: Path, name: str, version: str, requires_python: str) -> Path:
    """A minimal pure-Python wheel whose only content is its metadata."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: {requires_python}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(text.encode())}" for path, text in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


def test_a_pin_that_needs_a_newer_python_gets_a_marker_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "newpy_demo", "2.0", ">=3.11.5")
    _wheel(wheels, "newpy_demo", "1.5", ">=3.8")
    _wheel(wheels, "plain_demo", "1.0", ">=3.8")
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    scratch = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(scratch)
    spy = scratch / "bin" / "python"
    subprocess.run([spy, "-m", "pip", "install", "--quiet", "--ignore-requires-python", "newpy_demo==2.0", "plain_demo==1.0"], check=True)

    pinned = dev.pin_for_oldest_python(spy, scratch, ["newpy_demo==2.0", "plain_demo==1.0"])

    assert pinned == ['newpy-demo==1.5; python_full_version < "3.11.5"',
                      'newpy_demo==2.0; python_full_version >= "3.11.5"',
                      "plain_demo==1.0"]
