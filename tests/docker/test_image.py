"""The runtime image, built and run for real: what a user gets from `docker build .`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.docker_env import DockerUnavailable, build_image, docker, docker_daemon

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "cryptobot:ci"


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    try:
        with docker_daemon():
            build_image(ROOT, IMAGE)
            yield IMAGE
    except DockerUnavailable as exc:
        pytest.fail(f"DOCKER CANNOT RUN HERE — the image is untested: {exc}")


def run_in(image: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", "--network=host", "--entrypoint", cmd[0], image, *cmd[1:])


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "hadolint"), str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_validates() -> None:
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "compose.yaml"), "config", "-q"], capture_output=True,
                            text=True, check=False, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr


def test_runs_as_non_root_without_research_packages(image: str) -> None:
    assert run_in(image, "id", "-u").stdout.strip() == "10001"
    probe = ("import importlib.util as u, sys; import cryptobot.live; "
             "print(','.join(m for m in ('vectorbt', 'optuna', 'sklearn', 'lightgbm', 'xgboost', 'jupyter', "
             "'papermill', 'plotly') if u.find_spec(m) or m in sys.modules))")
    assert run_in(image, "python", "-c", probe).stdout.strip() == ""


def test_kernels_are_compiled_at_build_time(image: str) -> None:
    """Warm-up inside a fresh container writes nothing new to the numba cache: nothing was compiled."""
    listing = "find /opt/cryptobot/numba-cache /opt/cryptobot/pipelines -type f | sort | md5sum"
    out = run_in(image, "sh", "-c", f"{listing}; python -m cryptobot.warmup >/dev/null; {listing}").stdout.split("\n")
    assert out[0] and out[0] == out[1], "the container compiled kernels at run time"
