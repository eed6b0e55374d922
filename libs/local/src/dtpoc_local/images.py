"""The project's container images and a container engine, for tests and local runs.

Interface (everything a caller needs; no pytest here, no fixtures):

``engine_available() -> tuple[bool, str]``
    Whether podman (with runc) can run containers on this machine, and if
    not, why (the reason names the Debian packages to install).
``ensure_image(name: str) -> str``
    Builds image ``name`` with ``tools/images/build`` — cached by content, so
    seconds when nothing changed; a first build prints its progress on
    stderr — and returns its primary reference, e.g.
    ``ensure_image("histolab") == "ghcr.io/cam-digital-hospitals/digital-hosp-des:latest"``
    (also tagged ``localhost/dtpoc-histolab:<version>``) or
    ``ensure_image("dtpoc") == "ghcr.io/cam-digital-hospitals/dtpoc:0.1.0"``.
    Names: base, uv, dtpoc, histolab, ferretdb, mosquitto, telegraf, influxdb,
    node, node-red, mongo-express.
    Raises :class:`ImageBuildFailed` with the build's output tail.
``archive_path(name: str) -> Path``
    The image's OCI archive (``ctr -n k8s.io images import`` / ``podman load``);
    call ``ensure_image`` first.
``containers_conf() -> Path``
    The project's containers.conf (``default_ulimits = []``, runc): podman on
    hosts without CAP_SYS_RESOURCE fails every container without it.
``podman_env() -> dict[str, str]``
    ``os.environ`` plus ``CONTAINERS_CONF`` set to it, for ``podman`` calls.
``podman_argv(*args) -> list[str]``
    ``["podman", "--runtime", "runc", *args]``.

Images are built with whatever builder exists (Docker engine, else buildah)
into the store podman reads (buildah and podman share it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dtpoc_local.paths import REPO_ROOT

BUILD_SCRIPT = REPO_ROOT / "tools" / "images" / "build"
DEBIAN_PACKAGES = "runc buildah podman containernetworking-plugins iptables mmdebstrap uidmap"

#: The project's containers.conf, one file that tools/images writes too.
CONTAINERS_CONF_SOURCE = REPO_ROOT / "tools" / "images" / "containers.conf"


class ImageBuildFailed(RuntimeError):
    """``tools/images/build NAME`` failed; the message holds its output's tail."""


def cache_dir() -> Path:
    override = os.environ.get("DTPOC_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "dtpoc"


def containers_conf() -> Path:
    """The containers.conf of the project's podman/buildah calls (written if missing).

    tools/images writes the same file from the same source; whichever runs
    first creates it.
    """
    path = cache_dir() / "images" / "containers.conf"
    wanted = CONTAINERS_CONF_SOURCE.read_text()
    if not path.exists() or path.read_text() != wanted:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"containers.conf.{os.getpid()}")
        partial.write_text(wanted)
        partial.replace(path)
    return path


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf())}


def podman_argv(*args: str) -> list[str]:
    return ["podman", "--runtime", "runc", *args]


def engine_available() -> tuple[bool, str]:
    """(True, "podman <version>") when podman + runc run containers here, else (False, why)."""
    missing = [tool for tool in ("podman", "runc", "buildah") if shutil.which(tool) is None]
    if missing:
        return False, f"{', '.join(missing)} missing; on Debian: apt-get install {DEBIAN_PACKAGES}"
    result = subprocess.run(
        podman_argv("info", "--format", "{{.Version.Version}}"),
        env=podman_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        return False, f"`podman info` fails: {result.stderr.strip()[-500:]}"
    return True, f"podman {result.stdout.strip()}"


def _build(name: str, flag: str) -> str:
    """Run the build script; its progress is copied to stderr as it comes (a
    first build takes minutes), its stdout is the one line asked for."""
    process = subprocess.Popen(
        [str(BUILD_SCRIPT), flag, name],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)},
    )
    assert process.stderr is not None and process.stdout is not None
    tail: list[str] = []
    for line in process.stderr:
        sys.stderr.write(line)
        tail = [*tail[-60:], line]
    lines = process.stdout.read().strip().splitlines()
    code = process.wait()
    if code != 0 or not lines:
        raise ImageBuildFailed(
            f"`tools/images/build {flag} {name}` failed (exit {code}):\n{''.join(tail)}"
        )
    return lines[-1]


def ensure_image(name: str) -> str:
    """Build (or reuse) image ``name``; its primary reference (module docstring)."""
    return _build(name, "--ref")


def archive_path(name: str) -> Path:
    """The OCI archive of image ``name`` (built first if needed)."""
    return Path(_build(name, "--archive"))
