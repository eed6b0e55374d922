"""Build contexts made of git's files only, and the content digest that names a build.

A context directory on a developer's machine holds .venv, caches and editor
files; an image built from it would change with them. So the build copies the
files git knows (tracked, plus new files not ignored) of the context folder,
minus the folder's ``.dockerignore``, into a fresh staging directory, and the
digest is computed over exactly those files: what goes into the image and
what names it are the same thing.

``.dockerignore`` is read in a simple subset of Docker's syntax, which both
Docker and buildah honour for hand builds: one pattern per line (``#``
comments), matched with fnmatch against the path and each of its parent
folders; no ``!`` exceptions.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

DIGEST_FORMAT = 1
"""Bumped when the digest's inputs change meaning (every image then rebuilds)."""


def _ignore_patterns(folder: Path) -> list[str]:
    path = folder / ".dockerignore"
    if not path.exists():
        return []
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            if line.startswith("!"):
                raise ValueError(f"{path}: '!' exceptions are not supported here")
            patterns.append(line.strip("/"))
    return patterns


def _ignored(relative: str, patterns: Iterable[str]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(p, pat) for pat in patterns for p in prefixes)


def context_files(repo: Path, folder: Path) -> list[str]:
    """Paths (relative to ``folder``) of the files git knows under it, minus .dockerignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
        cwd=repo / folder,
        capture_output=True,
        check=True,
    ).stdout.decode()
    patterns = _ignore_patterns(repo / folder)
    files = set()
    for name in filter(None, listed.split("\0")):
        # Deleted but still tracked files are not in the working tree: skip them.
        if (repo / folder / name).is_file() and not _ignored(name, patterns):
            files.add(name)
    return sorted(files)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_entries(root: Path, files: Iterable[str]) -> list[list[str]]:
    """``[path, mode, sha256]`` per file: content and the executable bit count."""
    entries = []
    for name in files:
        path = root / name
        mode = "755" if os.access(path, os.X_OK) else "644"
        entries.append([name, mode, file_digest(path)])
    return entries


def build_digest(
    *,
    name: str,
    engine: str,
    files: list[list[str]],
    build_args: Mapping[str, str],
    bases: Mapping[str, str],
    extra: Mapping[str, str],
) -> str:
    """The sha256 naming one build: every input of the image, canonically encoded."""
    document = {
        "format": DIGEST_FORMAT,
        "name": name,
        "engine": engine,
        "files": files,
        "build_args": dict(sorted(build_args.items())),
        "bases": dict(sorted(bases.items())),
        "extra": dict(sorted(extra.items())),
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def stage(*, source: Path, files: Iterable[str], dest: Path) -> None:
    """A fresh ``dest`` holding copies of ``files`` from ``source``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
