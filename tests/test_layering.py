"""Dependency direction (design §2): research → cryptobot, kernels → numpy/numba only.

The runtime must start fast and install without the research extra, so importing any `cryptobot` module
must not pull in vectorbt, optuna, papermill, jupyter or scikit-learn.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESEARCH_ONLY = ("vectorbt", "optuna", "papermill", "jupyter", "nbconvert", "sklearn", "dask", "plotly", "lightgbm",
                 "xgboost")
KERNEL_ALLOWED = {"numpy", "numba", "math", "__future__", "typing", "cryptobot"}


def runtime_modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "cryptobot").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_runtime_never_imports_research_packages() -> None:
    modules = runtime_modules()
    assert "cryptobot.config" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {RESEARCH_ONLY!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    leaked = json.loads(result.stdout.strip().splitlines()[-1])
    assert leaked == [], f"runtime modules import research-only packages: {leaked}"


def test_kernels_import_only_numpy_and_numba() -> None:
    kernel_files = sorted((ROOT / "cryptobot" / "kernels").glob("*.py"))
    assert kernel_files
    offenders = []
    for path in kernel_files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [(node.module or "").split(".")[0]] if node.level == 0 else ["cryptobot"]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno} imports {r}" for r in roots if r not in KERNEL_ALLOWED]
            if any(r == "cryptobot" for r in roots) and isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 0 and not module.startswith("cryptobot.kernels"):
                    offenders.append(f"{path.name}:{node.lineno} imports {module} (kernels import kernels only)")
    assert offenders == []


def test_research_is_not_imported_by_runtime_sources() -> None:
    offenders = []
    for path in sorted((ROOT / "cryptobot").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("research"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "research" for a in node.names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
