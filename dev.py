#!/usr/bin/env python3
"""Project driver for a fresh machine with only Python 3.11+: `python3 dev.py demo|test|check|lock`.

Standard library only, so it runs before anything is installed. Every command first creates (or reuses)
the virtual environment `.venv` and installs the project pinned by `constraints.txt`; a stamp file skips
the install when nothing changed.

  demo   set up, then run the main job: import and validate the shipped bitbank sample, then backtest it
         with the default config; the HTML report is runs/quickstart/report.html
  test   set up (as root on Debian also PostgreSQL and headless Chromium for the tests), then run the whole
         test suite, one pytest-xdist worker per core (fails when no test ran; `-n 0` runs it in one process)
  check  set up, then ruff, mypy and the tests
  test-docker
         set up, install Docker and debootstrap (Debian, as root), then build the runtime and research
         images from a local Debian base and test them for real (tests/docker/); CI runs this after `test`
  lock   re-resolve the newest allowed versions and rewrite constraints.txt
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
CONSTRAINTS = ROOT / "constraints.txt"
STAMP = VENV / ".cryptobot-install-stamp"
DEMO_DATA = "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz"


def run(cmd: list[str], **kw: object) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kw)  # type: ignore[arg-type]


def env_for_tools() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under whatever python3 the user has
        sys.exit(f"Python 3.11+ is required, this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes() if path.exists() else b"")
    digest.update(extras.encode())
    wanted = digest.hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    constraint = ["-c", str(CONSTRAINTS)] if CONSTRAINTS.exists() else []
    code = run([PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    code = code or run([PY, "-m", "pip", "install", "--quiet", *constraint, "-e", f".[{extras}]"])
    if code:
        sys.exit(f"installing the project into {VENV} failed (exit {code}); see the pip output above")
    STAMP.write_text(wanted)


def demo() -> int:
    ensure_venv("research")
    env = env_for_tools()
    data = [PY, "-m", "cryptobot.data"]
    for tf in ("15m", "1h", "4h"):
        path = f"data/sample/bitbank_BTC-JPY_{tf}_2018.csv.gz"
        code = run([*data, "import", path, "--exchange", "bitbank", "--symbol", "BTC/JPY", "--timeframe", tf], env=env)
        code = code or run([*data, "validate", f"bitbank/BTC-JPY/{tf}"], env=env)
        if code:
            return code
    code = run([*data, "list"], env=env)
    out = "runs/quickstart"
    code = code or run([PY, "-m", "research", "backtest", "--data", "bitbank/BTC-JPY/15m", "--out", out], env=env)
    code = code or run([PY, "-m", "research", "report", "backtest", "--run", out, "--out", out], env=env)
    if code == 0:
        print(f"\nbacktest report: {ROOT / out / 'report.html'} — open it in a browser; numbers in stats.json")
    return code


def postgres_installed() -> bool:
    return shutil.which("initdb") is not None or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def ensure_postgres() -> None:
    """The shared-Optuna-study tests run a real PostgreSQL server; install it (Debian) when we can."""
    if postgres_installed():
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", "postgresql"], env=env)
    if not postgres_installed():
        print(
            "PostgreSQL server binaries not found: the shared-study tests will fail. "
            "Install them (Debian/Ubuntu: sudo apt-get install postgresql) and rerun.",
            file=sys.stderr,
        )


def ensure_chromium() -> None:
    """The report tests open the HTML reports in a real headless Chromium; install Debian's when we can."""
    if any(shutil.which(b) for b in ("chromium", "chromium-browser")):
        return
    ensure_apt_packages({"chromium": "chromium"})
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser")):
        print("headless Chromium not found: the report browser tests will fail. Install it (Debian/Ubuntu: "
              "sudo apt-get install chromium) and rerun.", file=sys.stderr)


def parallel_args(extra_args: list[str]) -> list[str]:
    """pytest-xdist workers, one per core (at most four), each taking whole test files: much of the suite
    waits on bot processes, fake exchanges and browsers, so two workers halve the run on two cores. Files
    stay whole because some register strategies or share module fixtures. `-n 0` (or any -n/--numprocesses
    of your own) overrides it."""
    if any(a.startswith(("-n", "--numprocesses")) for a in extra_args):
        return []
    return ["-n", str(min(max(os.cpu_count() or 1, 1), 4)), "--dist", "loadfile"]


def test(extra_args: list[str]) -> int:
    ensure_venv("research,dev")
    ensure_postgres()
    ensure_chromium()
    code = run([PY, "-m", "pytest", *parallel_args(extra_args), *extra_args], env=env_for_tools())
    if code == 5:
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
        return 1
    return code


def ensure_apt_packages(binaries: dict[str, str]) -> None:
    """Install Debian packages for missing binaries (name → package) when we are root on Debian."""
    missing = sorted({pkg for binary, pkg in binaries.items() if shutil.which(binary) is None and not Path(binary).exists()})
    if missing and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", *missing], env=env)


def test_docker(extra_args: list[str]) -> int:
    ensure_venv("research,dev")
    ensure_apt_packages({"dockerd": "docker.io", "/usr/bin/docker": "docker.io", "debootstrap": "debootstrap",
                         "docker-compose": "docker-compose"})
    ensure_postgres()  # the tune worker's container shares a study on a PostgreSQL server on loopback
    env = {**env_for_tools(), "CRYPTOBOT_DOCKER_TESTS": "1"}
    code = run([PY, "-m", "pytest", "tests/docker", *extra_args], env=env)
    if code == 5:
        print("pytest collected no Docker tests: that is a failure here", file=sys.stderr)
        return 1
    return code


def check(extra_args: list[str]) -> int:
    ensure_venv("research,dev")
    env = env_for_tools()
    code = run([BIN / "ruff", "check", "."], env=env)
    code = run([BIN / "mypy"], env=env) or code
    return test(extra_args) or code


# Run in the lock venv (pip's own copy of `packaging` is always there): every installed distribution whose
# Requires-Python excludes the given version, with the lower bound it needs.
_NEEDS_NEWER_PYTHON = r"""
import json, sys
from importlib.metadata import distributions
from pip._vendor.packaging.specifiers import SpecifierSet
from pip._vendor.packaging.utils import canonicalize_name
found = {}
for dist in distributions():
    spec = SpecifierSet(dist.metadata.get("Requires-Python") or "")
    if sys.argv[1] not in spec:
        floors = [s.version for s in spec if s.operator == ">="]
        found[canonicalize_name(dist.metadata["Name"])] = floors[0] if len(floors) == 1 else str(spec)
print(json.dumps(found))
"""


def oldest_python() -> str:
    """The lowest Python the project accepts (`requires-python = ">=3.11"` → 3.11.0)."""
    import tomllib

    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = spec.removeprefix(">=").strip()
    return version + ".0" * (2 - version.count("."))


def pin_for_oldest_python(spy: Path, scratch: Path, frozen: list[str]) -> list[str]:
    """Keep the lock installable on every Python the project accepts, not only the one that resolved it.

    Debian bookworm's python3 is 3.11.2; a pin whose release needs e.g. 3.11.5 (soupsieve 4.1) leaves pip
    there with an impossible constraint, which older pips answer by backtracking for many minutes. Such a
    package gets two pins split by an environment marker: the newest release for the oldest Python below
    the bound, the frozen one above it.
    """
    floor = oldest_python()
    out = subprocess.run([str(spy), "-c", _NEEDS_NEWER_PYTHON, floor], capture_output=True, text=True, check=True)
    needs: dict[str, str] = json.loads(out.stdout)
    pinned: list[str] = []
    for line in frozen:
        name = line.split("==")[0].lower().replace("_", "-").replace(".", "-")
        if name not in needs:
            pinned.append(line)
            continue
        bound = needs[name]
        if not bound[:1].isdigit():
            sys.exit(f"lock: {line} needs Python {bound}, which excludes {floor}: pin an older release of "
                     f"{name} in pyproject.toml or raise requires-python")
        report = subprocess.run(
            [str(spy), "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--no-deps",
             "--only-binary=:all:", "--python-version", floor, "--target", str(scratch / "oldest"), "--report", "-",
             f"{name}<{line.split('==')[1]}"], capture_output=True, text=True, check=True).stdout
        older = json.loads(report)["install"][0]["metadata"]["version"]
        pinned += [f'{name}=={older}; python_full_version < "{bound}"',
                   f'{line}; python_full_version >= "{bound}"']
    return pinned


def lock() -> int:
    """Resolve fresh versions in a scratch venv and freeze them into constraints.txt."""
    scratch = ROOT / ".venv-lock"
    shutil.rmtree(scratch, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(scratch)
    spy = scratch / BIN.name / "python"
    code = run([spy, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    code = code or run([spy, "-m", "pip", "install", "--quiet", ".[research,dev]"])
    if code:
        return code
    frozen = subprocess.run(
        [str(spy), "-m", "pip", "freeze", "--exclude", "cryptobot"], capture_output=True, text=True, check=True
    ).stdout
    frozen = "".join(f"{line}\n" for line in pin_for_oldest_python(spy, scratch, frozen.splitlines()))
    header = "# Pinned versions for reproducible installs. Regenerate with: python3 dev.py lock\n"
    CONSTRAINTS.write_text(header + frozen)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"wrote {CONSTRAINTS}")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return demo()
    if command == "test":
        return test(rest)
    if command == "check":
        return check(rest)
    if command == "test-docker":
        return test_docker(rest)
    if command == "lock":
        return lock()
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
