"""The research image (`--target research`) and the compose `tune` profile, built and run for real.

There is no bridge network here, so the profile's PostgreSQL service cannot run under compose; the tune
worker runs exactly as compose defines it (entrypoint, command) but with the host network, against a real
PostgreSQL server started on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from tests.docker.docker_env import DockerUnavailable, build_image, docker, docker_daemon
from tests.postgres import postgres_server

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "cryptobot-research:ci"
DATA = "/opt/cryptobot/data/sample/bitbank_BTC-JPY_4h_2018.csv.gz"


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    try:
        with docker_daemon():
            build_image(ROOT, IMAGE, target="research")
            yield IMAGE
    except DockerUnavailable as exc:
        pytest.fail(f"DOCKER CANNOT RUN HERE — the research image is untested: {exc}")


def compose_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker-compose", "-f", str(ROOT / "compose.yaml"), *args, "config"], capture_output=True,
                          text=True, check=False, env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_plain_docker_build_gives_the_runtime_image() -> None:
    """`docker build .` builds the last stage: it must stay the runtime, not the research image."""
    stages = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("FROM ")]
    assert stages[-1][-2:] == ["AS", "runtime"], stages
    assert ["AS", "research"] in [s[-2:] for s in stages]


def test_tune_profile_is_optional_and_validates() -> None:
    """`docker-compose up` starts the bot alone; PostgreSQL and the workers only with `--profile tune`.

    (docker-compose 1.29's `config` lists every service whatever the profile, so the profiles are read.)"""
    plain = compose_config()
    assert plain.returncode == 0, plain.stderr
    tuned = compose_config("--profile", "tune", env={"CRYPTOBOT_TUNE_DB_PASSWORD": "marker-db-pw"})
    assert tuned.returncode == 0, tuned.stderr
    services = yaml.safe_load(tuned.stdout)["services"]
    assert {name: s.get("profiles") for name, s in services.items()} == {"bot": None, "postgres": ["tune"],
                                                                         "tune": ["tune"]}
    tune = services["tune"]
    assert tune["build"]["target"] == "research"
    assert tune["depends_on"]["postgres"]["condition"] == "service_healthy"
    storage = tune["command"][tune["command"].index("--storage") + 1]
    assert storage == "postgresql+psycopg2://optuna:marker-db-pw@postgres:5432/optuna"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "marker-db-pw"


def test_research_image_has_the_research_stack_and_runs_as_non_root(image: str) -> None:
    probe = ("import research.tuning, optuna, vectorbt, sklearn, lightgbm, xgboost, psycopg2, papermill, os; "
             "print(os.getuid(), optuna.__version__)")
    out = docker("run", "--rm", "--network=host", "--entrypoint", "python", image, "-c", probe).stdout.split()
    assert out[0] == "10001"
    pinned = {line.split("==")[0]: line.split("==")[1] for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line}
    assert out[1] == pinned["optuna"]


def test_a_fresh_worker_compiles_nothing(image: str) -> None:
    """The build ran a real trial: a new container's first trial loads every kernel from the image's cache."""
    listing = "find /opt/cryptobot/numba-cache /opt/cryptobot/pipelines -type f | sort | md5sum"
    trial = f"python -m research tune --data {DATA} --study warm --trials 1 --storage journal:/tmp/warm.journal"
    out = docker("run", "--rm", "--network=host", "--entrypoint", "sh", image, "-c",
                 f"{listing}; {trial} >/dev/null; {listing}").stdout.split("\n")
    assert out[0] and out[0] == out[1], "the worker compiled kernels at run time"


def _compose_tune_service() -> dict[str, Any]:
    result = compose_config("--profile", "tune", env={"CRYPTOBOT_TUNE_DB_PASSWORD": "unused"})
    assert result.returncode == 0, result.stderr
    service: dict[str, Any] = yaml.safe_load(result.stdout)["services"]["tune"]
    return service


def test_two_tune_workers_share_one_postgres_study(image: str, tmp_path: Path) -> None:
    """Two containers started as compose starts `tune` (own random seeds) fill one study in PostgreSQL."""
    service = _compose_tune_service()
    entrypoint = [part.replace("$$", "$") for part in service["entrypoint"]]
    command = list(service["command"])
    with postgres_server() as url:
        command[command.index("--storage") + 1] = url
        command[command.index("--data") + 1] = DATA
        command[command.index("--trials") + 1] = "1"
        command[command.index("--study") + 1] = "ci-shared"
        names = [f"cryptobot-tune-ci-{os.getpid()}-{i}" for i in range(2)]
        work = tmp_path / "work"
        work.mkdir()
        os.chown(work, 10001, 10001)
        try:
            for name in names:
                docker("run", "-d", "--name", name, "--network=host", "-v", f"{work}:/work", "--entrypoint",
                       entrypoint[0], image, *entrypoint[1:], *command)
            for name in names:
                code = docker("wait", name, timeout=900).stdout.strip()
                logs = docker("logs", name, check=False)
                assert code == "0", logs.stdout + logs.stderr
                assert "study ci-shared:" in logs.stdout
        finally:
            for name in names:
                docker("rm", "-f", name, check=False)
        study = optuna.load_study(study_name="ci-shared", storage=url)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(done) == 2
        assert done[0].params != done[1].params, "the workers drew the same trial: their seeds are not their own"
