"""Where the pinned server and tool binaries live, and building them if missing.

``tools/testbin/build`` builds each binary from a pinned Go module version
(``tools/testbin/versions.env``) into
``${DTPOC_CACHE_DIR:-~/.cache/dtpoc}/bin/<name>-<version>/<name>``. This module
computes the same paths and calls the script for a binary that is missing, so
a test run on a fresh machine builds what it needs (``make test`` builds all
of them before pytest starts, which is quicker to follow).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dtpoc_local.paths import REPO_ROOT

BUILD_SCRIPT = REPO_ROOT / "tools" / "testbin" / "build"
VERSIONS_FILE = REPO_ROOT / "tools" / "testbin" / "versions.env"

_VERSION_KEYS = {
    "ferretdb": "FERRETDB_VERSION",
    "etcd": "ETCD_VERSION",
    "kube-apiserver": "KUBERNETES_VERSION",
    "kube-controller-manager": "KUBERNETES_VERSION",
    "kubectl": "KUBERNETES_VERSION",
    "helm": "HELM_VERSION",
    "buf": "BUF_VERSION",
    "kubelet": "KUBERNETES_VERSION",
    "kube-scheduler": "KUBERNETES_VERSION",
    "kube-proxy": "KUBERNETES_VERSION",
    "coredns": "COREDNS_VERSION",
    "pause": "PAUSE_VERSION",
    "kube-router": "KUBE_ROUTER_VERSION",
}
NAMES = tuple(_VERSION_KEYS)
"""Every binary the build script knows (the last six are the node's: ``make cluster``)."""


class BinaryUnavailable(RuntimeError):
    """A pinned binary is not in the cache and could not be built."""


def cache_dir() -> Path:
    """The cache root: ``$DTPOC_CACHE_DIR`` or ``~/.cache/dtpoc``."""
    override = os.environ.get("DTPOC_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "dtpoc"


def pinned_versions() -> dict[str, str]:
    """The ``KEY=value`` pins of ``versions.env``."""
    pins: dict[str, str] = {}
    for raw in VERSIONS_FILE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pins[key.strip()] = value.strip()
    return pins


def version(name: str) -> str:
    """The pinned version of binary ``name`` (e.g. ``"v1.34.4"``)."""
    try:
        key = _VERSION_KEYS[name]
    except KeyError:
        raise BinaryUnavailable(f"unknown binary {name!r}; known: {', '.join(NAMES)}") from None
    return pinned_versions()[key]


#: Binaries built from patched source: the pin naming their patch level, which is part
#: of the cache folder's name (``tools/testbin/build``'s ``tag_of``).
_PATCH_KEYS = {"ferretdb": "FERRETDB_PATCHES"}


def cached_path(name: str) -> Path:
    """Where binary ``name`` lives in the cache, whether or not it is built yet."""
    tag = version(name)
    if name in _PATCH_KEYS:
        tag += "-" + pinned_versions()[_PATCH_KEYS[name]]
    return cache_dir() / "bin" / f"{name}-{tag}" / name


def path(name: str) -> Path:
    """The path of binary ``name``, building it first if it is not cached.

    A first build of the Kubernetes binaries takes tens of minutes on two
    cores; its progress goes to stderr (under pytest, visible with ``-s``).
    """
    binary = cached_path(name)
    if os.access(binary, os.X_OK):
        return binary
    result = subprocess.run([str(BUILD_SCRIPT), name], check=False)
    if result.returncode != 0 or not os.access(binary, os.X_OK):
        raise BinaryUnavailable(
            f"{name} {version(name)} is not at {binary} and `{BUILD_SCRIPT} {name}` "
            f"failed (exit {result.returncode}); run it by hand to see why"
        )
    return binary
