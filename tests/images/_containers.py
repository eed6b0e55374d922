"""Real containers for the image tests: podman + runc, the project's containers.conf.

Every container runs as the image's own user on a read-only root filesystem
with only /tmp writable (a tmpfs; podman's extra tmpfs on /run and /var/tmp
turned off), as the chart runs the platform's pods. ``--network host``
lets a container reach the test servers on loopback and the test reach its
ports. No fixtures here, only helpers.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dtpoc_local import images

LOCKED_DOWN = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs",
    "/tmp:rw,mode=1777,size=64m",
    "--cap-drop=all",
    "--security-opt=no-new-privileges",
)
"""What the chart's securityContext asks of a pod, as podman options."""


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One podman command with the project's containers.conf; never raises on exit code."""
    return subprocess.run(
        images.podman_argv(*args),
        env=images.podman_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def env_flags(env: Mapping[str, str]) -> list[str]:
    return [flag for key, value in sorted(env.items()) for flag in ("-e", f"{key}={value}")]


@dataclass
class Container:
    """A detached container; :meth:`remove` after use."""

    name: str

    def state(self) -> str:
        """podman's state word (``running``, ``exited``...), or "" once removed."""
        result = podman("inspect", "--format", "{{.State.Status}}", self.name)
        return result.stdout.strip() if result.returncode == 0 else ""

    def running(self) -> bool:
        return self.state() == "running"

    def logs(self, tail: int = 40) -> str:
        result = podman("logs", "--tail", str(tail), self.name)
        return f"--- podman logs {self.name} ---\n{result.stdout}{result.stderr}"

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *argv)

    def remove(self) -> None:
        podman("rm", "--force", "--time", "5", self.name)


def start(
    image: str,
    *,
    command: Sequence[str],
    env: Mapping[str, str],
    extra: Sequence[str] = (),
    publish: Mapping[int, int] | None = None,
) -> Container:
    """Start ``image`` detached, locked down (module docstring), on the host network;
    with ``publish`` ({host port: container port}) on its own network instead, those
    ports published on loopback (for servers whose port is fixed)."""
    name = f"dtpoc-test-{uuid.uuid4().hex[:10]}"
    if publish:
        network = [f"--publish=127.0.0.1:{h}:{c}" for h, c in sorted(publish.items())]
    else:
        network = ["--network", "host"]
    result = podman(
        "run",
        "--detach",
        "--name",
        name,
        *network,
        *LOCKED_DOWN,
        *env_flags(env),
        *extra,
        image,
        *command,
    )
    if result.returncode != 0:
        podman("rm", "--force", name)
        raise AssertionError(f"podman run {image} {' '.join(command)} failed: {result.stderr}")
    return Container(name)


def run(
    image: str,
    *,
    command: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run ``image`` to completion (locked down, host network), removed afterwards."""
    return podman(
        "run",
        "--rm",
        "--network",
        "host",
        *LOCKED_DOWN,
        *env_flags(env or {}),
        *extra,
        image,
        *command,
        timeout=timeout,
    )
