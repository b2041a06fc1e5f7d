"""The runtime image, built and run for real: what a user gets from `docker build .`."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


def test_replay_in_a_container_with_health_status_and_graceful_stop(image: str, tmp_path: Path) -> None:
    """The image as deployed: state on a mounted volume, /health answering, `status` through docker exec,
    `docker stop` (SIGTERM) finishing the bar and leaving a consistent state that a new container continues."""
    volume = tmp_path / "data"
    volume.mkdir()
    os.chown(volume, 10001, 10001)
    name = f"cryptobot-ci-{os.getpid()}"
    port = "18093"
    replay = ["paper", "--replay", "/opt/cryptobot/data/sample/bitbank_BTC-JPY_15m_2018.csv.gz", "--speed", "40",
              "--state-dir", "/data/state"]
    docker("run", "-d", "--name", name, "--network=host", "-v", f"{volume}:/data", "-e", f"CRYPTOBOT__HEALTH__PORT={port}",
           image, *replay)
    try:
        body = _wait_for_health(port)
        assert body["mode"] == "replay" and "reasons" in body
        status = json.loads(docker("exec", name, "python", "-m", "cryptobot.live", "status", "--state-dir", "/data/state",
                                   "--json").stdout)
        assert status["running"] is True and status["bars"] > 0
        assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
        docker("stop", "-t", "60", name)
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0 and not state["OOMKilled"], state
    finally:
        logs = docker("logs", name, check=False)
        docker("rm", "-f", name, check=False)
    assert '"event": "stopped"' in logs.stdout + logs.stderr
    after = json.loads(docker("run", "--rm", "--network=host", "-v", f"{volume}:/data", image, "status", "--state-dir",
                              "/data/state", "--json").stdout)
    assert after["running"] is False and after["bars"] >= status["bars"]
    # a new container continues after the last committed bar and finishes the file: every bar exactly once
    docker("run", "--rm", "--network=host", "-v", f"{volume}:/data", "-e", f"CRYPTOBOT__HEALTH__PORT={port}", image,
           *replay[:3], "--speed", "max", "--state-dir", "/data/state")
    final = json.loads(docker("run", "--rm", "--network=host", "-v", f"{volume}:/data", image, "status", "--state-dir",
                              "/data/state", "--json").stdout)
    rows = sum(1 for _ in gzip.open(ROOT / "data/sample/bitbank_BTC-JPY_15m_2018.csv.gz", "rt")) - 1
    assert final["bars"] == rows and final["running"] is False


def _wait_for_health(port: str, timeout: float = 180.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                body: dict[str, object] = json.loads(resp.read())
                if body.get("mode"):
                    return body
        except urllib.error.HTTPError as err:
            body = json.loads(err.read())
            if body.get("mode"):
                return body
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(1)
    raise AssertionError(f"/health on port {port} never answered")
