"""Generate the Python API package (`dtpoc`) from `protos/`.

One command (`make generate`) produces the messages, gRPC stubs, mypy stubs
and a descriptor set with source comments (read by the REST gateway for
routes and OpenAPI descriptions). The googleapis protos come from the
installed `googleapis-common-protos` package, copied into the git-ignored
`.gen/third_party` so that buf sees the same files; no schema registry is
contacted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
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


def main() -> None:
    copy_googleapis()
    if PACKAGE.exists():
        shutil.rmtree(PACKAGE)
    PACKAGE.mkdir(parents=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    bin_dir = Path(sys.executable).parent
    protoc(
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *sources,
    )
    protoc(
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={PACKAGE / 'descriptors.binpb'}",
        *sources,
    )
    for folder in [PACKAGE, *(p for p in PACKAGE.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    (PACKAGE / "py.typed").touch()
    print(f"generated {len(sources)} protos into {PACKAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
