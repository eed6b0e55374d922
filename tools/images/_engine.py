"""The image builder this machine has: a Docker engine, else buildah + podman.

One small interface (build, inspect, tag, save) over both, so the rest of the
build never asks which one runs. ``command -v docker`` proves nothing (the
client exists without a daemon), so Docker counts only when ``docker info``
answers. buildah and podman share one image store, and on hosts without
CAP_SYS_RESOURCE their default ulimits fail every container, so their calls
get a containers.conf of our own (``default_ulimits = []``, runc) through
``CONTAINERS_CONF``; nothing under /etc is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEBIAN_PACKAGES = (
    "runc",
    "containerd",
    "buildah",
    "podman",
    "containernetworking-plugins",
    "iptables",
    "mmdebstrap",
    "uidmap",
    "fuse-overlayfs",
)
"""What a Debian machine without Docker installs to build and run the images."""

#: The project's containers.conf (one source: dtpoc_local.images writes the same file).
CONTAINERS_CONF = (Path(__file__).with_name("containers.conf")).read_text()


class EngineUnavailable(RuntimeError):
    """Neither a Docker engine nor buildah + podman can build here."""


@dataclass(frozen=True)
class ImageInfo:
    """What the build needs to know of an image in the engine's store."""

    id: str
    size: int
    labels: dict[str, str]


def containers_conf_path(cache: Path) -> Path:
    """The project's containers.conf under the cache (written if missing or stale)."""
    path = cache / "images" / "containers.conf"
    if not path.exists() or path.read_text() != CONTAINERS_CONF:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CONTAINERS_CONF)
    return path


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30)
    return result.returncode == 0


def missing_tools() -> list[str]:
    """The buildah-side commands this machine lacks (empty: it can build)."""
    return [tool for tool in ("buildah", "podman", "runc") if shutil.which(tool) is None]


class Engine:
    """``docker`` (a real engine) or ``buildah`` (with podman for the store)."""

    def __init__(self, *, kind: str, env: Mapping[str, str]) -> None:
        self.kind = kind
        self._env = dict(env)

    def run(
        self, argv: Sequence[str], *, capture: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one engine command with the engine's environment."""
        # Streamed output goes to stderr: stdout carries only what callers parse.
        result = subprocess.run(
            list(argv),
            env=self._env,
            stdout=subprocess.PIPE if capture else sys.stderr,
            stderr=subprocess.PIPE if capture else None,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout or "").strip()[-2000:]
            raise RuntimeError(f"`{' '.join(argv)}` failed (exit {result.returncode}): {detail}")
        return result

    @property
    def _store(self) -> str:
        return "docker" if self.kind == "docker" else "podman"

    def build(
        self,
        *,
        dockerfile: Path,
        context: Path,
        tags: Sequence[str],
        build_args: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> None:
        """Build ``dockerfile`` over ``context``; its output streams to the terminal."""
        argv = ["docker", "build"] if self.kind == "docker" else ["buildah", "build", "--layers"]
        argv += ["-f", str(dockerfile)]
        for key, value in sorted(build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in sorted(labels.items()):
            argv += ["--label", f"{key}={value}"]
        for tag in tags:
            argv += ["-t", tag]
        argv.append(str(context))
        self.run(argv, capture=False)

    def inspect(self, ref: str) -> ImageInfo | None:
        """The image ``ref`` names in the store, or None."""
        result = self.run([self._store, "image", "inspect", ref], check=False)
        if result.returncode != 0:
            return None
        data = json.loads(result.stdout)[0]
        config = data.get("Config") or {}
        return ImageInfo(
            id=str(data["Id"]).removeprefix("sha256:"),
            size=int(data.get("Size") or 0),
            labels=dict(config.get("Labels") or {}),
        )

    def tag(self, ref: str, tags: Sequence[str]) -> None:
        for tag in tags:
            self.run([self._store, "tag", ref, tag])

    def save(self, ref: str, archive: Path) -> None:
        """Export ``ref`` as an OCI archive (``docker save`` writes OCI layout since 25)."""
        partial = archive.with_name(archive.name + ".partial")
        partial.unlink(missing_ok=True)
        if self.kind == "docker":
            self.run(["docker", "save", "-o", str(partial), ref])
        else:
            self.run(["podman", "save", "--format", "oci-archive", "-o", str(partial), ref])
        partial.replace(archive)


def detect(cache: Path, *, prefer: str | None = None) -> Engine:
    """The engine to build with; ``prefer`` ("docker" | "buildah") forces one.

    Installs nothing: when neither works the error names the Debian packages.
    """
    want = prefer or os.environ.get("DTPOC_IMAGE_BUILDER") or ""
    if want not in ("", "docker", "buildah"):
        raise EngineUnavailable(f"DTPOC_IMAGE_BUILDER={want!r}: use docker or buildah")
    if want in ("", "docker") and _docker_works():
        return Engine(kind="docker", env=os.environ)
    if want == "docker":
        raise EngineUnavailable("DTPOC_IMAGE_BUILDER=docker but `docker info` fails: no engine")
    missing = missing_tools()
    if missing:
        raise EngineUnavailable(
            f"no Docker engine (`docker info` fails) and no {', '.join(missing)}; on Debian: "
            f"apt-get install {' '.join(DEBIAN_PACKAGES)}"
        )
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf_path(cache))}
    return Engine(kind="buildah", env=env)
