"""Generate the Python API package (`dtpoc`) from `protos/`.

One command (`make generate`) produces the messages, gRPC stubs, mypy stubs
and a descriptor set with source comments (read by the REST gateway for
routes and OpenAPI descriptions). The googleapis protos come from the
installed `googleapis-common-protos` package, copied into the git-ignored
`.gen/third_party` so that buf sees the same files; no schema registry is
contacted. The package is generated into a staging folder first and only the
files that differ are replaced, so ``make check`` (which regenerates to compare)
leaves an unchanged package untouched under tests that import it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import google.api
import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
THIRD_PARTY = ROOT / ".gen" / "third_party"
OUT = ROOT / "libs" / "api" / "src"
PACKAGE = OUT / "dtpoc"
GOOGLEAPIS_FILES = ("annotations.proto", "http.proto", "httpbody.proto")


def copy_googleapis() -> None:
    source = Path(next(iter(google.api.__path__)))
    target = THIRD_PARTY / "google" / "api"
    target.mkdir(parents=True, exist_ok=True)
    for name in GOOGLEAPIS_FILES:
        shutil.copyfile(source / name, target / name)


def protoc(*args: str) -> None:
    well_known = Path(next(iter(grpc_tools.__path__))) / "_proto"
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{THIRD_PARTY}",
        f"-I{well_known}",
        *args,
    ]
    subprocess.run(command, check=True)


def generate_into(out: Path) -> int:
    """Write the package into ``out`` (a fresh folder); answer the number of protos."""
    package = out / PACKAGE.name
    package.mkdir(parents=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    bin_dir = Path(sys.executable).parent
    protoc(
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    )
    protoc(
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={package / 'descriptors.binpb'}",
        *sources,
    )
    for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    (package / "py.typed").touch()
    return len(sources)


def _files(root: Path) -> dict[Path, Path]:
    return {
        p.relative_to(root): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def sync_tree(staged: Path, target: Path) -> int:
    """Make ``target`` hold what ``staged`` holds, touching only the files that differ.

    Each changed file is replaced atomically (``os.replace``) and unchanged ones are left
    alone, so a ``make check`` whose protos did not change rewrites nothing: tests or
    servers importing the package at that moment see no half-written or missing module.
    Answers the number of files written or removed.
    """
    wanted = _files(staged)
    present = _files(target) if target.exists() else {}
    changed = 0
    for relative, source in wanted.items():
        destination = target / relative
        data = source.read_bytes()
        if relative in present and present[relative].read_bytes() == data:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.partial")
        partial.write_bytes(data)
        os.replace(partial, destination)
        changed += 1
    for relative, stale in present.items():
        if relative not in wanted:
            stale.unlink()
            changed += 1
    return changed


def main() -> None:
    copy_googleapis()
    (ROOT / ".gen").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / ".gen", prefix="stage-") as stage:
        count = generate_into(Path(stage))
        changed = sync_tree(Path(stage) / PACKAGE.name, PACKAGE)
    print(f"generated {count} protos into {PACKAGE.relative_to(ROOT)} ({changed} files changed)")


if __name__ == "__main__":
    main()
