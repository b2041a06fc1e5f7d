"""A Docker daemon and a local base image for the image tests (no registry is reachable here).

dockerd runs without a bridge network (containers use the host network, i.e. loopback); the base image
is a debootstrapped Debian with python3, imported once and kept between runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DOCKER = "/usr/bin/docker"  # Debian's client; a newer one elsewhere on PATH may lack BuildKit support
BASE_IMAGE = "local/bookworm-python:base"
BASE_CACHE = Path(os.environ.get("CRYPTOBOT_DOCKER_BASE_CACHE", "/var/tmp/cryptobot-base"))


class DockerUnavailable(RuntimeError):
    """Docker cannot run on this machine: the image tests fail (never skip) with this reason."""


def docker(*args: str, check: bool = True, timeout: float = 600, **kw: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _daemon_up() -> bool:
    return subprocess.run([DOCKER, "info"], capture_output=True, timeout=30, check=False).returncode == 0


@contextmanager
def docker_daemon() -> Iterator[None]:
    """Use a running daemon, else start one for the duration (and stop it afterwards)."""
    if not Path(DOCKER).exists() or shutil.which("dockerd") is None:
        raise DockerUnavailable("Docker is not installed (Debian: apt-get install docker.io); `dev.py test-docker` installs it as root")
    if _daemon_up():
        yield
        return
    if os.geteuid() != 0:
        raise DockerUnavailable("no Docker daemon is running and starting one needs root")
    log = Path(tempfile.gettempdir()) / "cryptobot-dockerd.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(["dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false"], stdout=fh, stderr=fh)
    try:
        deadline = time.monotonic() + 60
        while not _daemon_up():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DockerUnavailable(f"dockerd did not start; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _mirror() -> str:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def ensure_base_image() -> str:
    """The debootstrapped base (python3 + venv + CA certificates), built once and cached."""
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    if shutil.which("debootstrap") is None:
        raise DockerUnavailable("debootstrap is not installed (Debian: apt-get install debootstrap)")
    rootfs = BASE_CACHE / "rootfs"
    if not (rootfs / "usr/bin/python3").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                        "bookworm", str(rootfs), _mirror()], check=True, capture_output=True, timeout=900)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run([DOCKER, "import", "-", BASE_IMAGE], stdin=tar.stdout, check=True, capture_output=True, timeout=600)
    tar.wait()
    return BASE_IMAGE


def build_image(root: Path, tag: str, target: str = "runtime") -> None:
    """`docker build` as a user would, plus the base image and this network's CA bundle for pip."""
    args = ["build", "--network=host", "--build-arg", f"BASE={ensure_base_image()}", "--target", target, "-t", tag]
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        args += ["--secret", f"id=pip_cert,src={ca}"]
    docker(*args, str(root), timeout=1800, env={**os.environ, "DOCKER_BUILDKIT": "1"})
