"""Every image the project builds: its Dockerfile, context, bases and names.

The platform and example Dockerfiles keep public bases as their defaults (a
Docker user builds them unchanged); here each gets the local base through
its ``ARG`` instead. The first tag of an image is its primary name: the one
its OCI archive carries and the one a cluster or client asks for.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.images import _artifacts, _context

Prepare = Callable[[Path], None]

#: The image every other one starts from (Debian bookworm + Python 3.11).
BASE_TAG = "localhost/dtpoc-base:bookworm"
#: Debian's Node.js on the base: the Node.js images start from it.
NODE_TAG = "localhost/dtpoc-node:bookworm"


def _nothing(_: Path) -> None:
    return None


def _no_inputs() -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class ImageSpec:
    """One image: built from ``dockerfile`` (relative to ``context``) in the repo."""

    name: str
    summary: str
    tags: tuple[str, ...]
    context: str
    dockerfile: str = "Dockerfile"
    # build arg -> name of the image (in this catalogue) passed through it
    bases: Mapping[str, str] = field(default_factory=dict)
    # other build args (versions the chart pins)
    args: Mapping[str, str] = field(default_factory=dict)
    # extra digest inputs that are not files of the context (cheap to compute)
    inputs: Callable[[], dict[str, str]] = _no_inputs
    # writes the generated files (root filesystem, binaries) into the staged context
    prepare: Prepare = _nothing
    first_build: str = "under a minute"


def _chart_image(repo: Path) -> str:
    """``image.repository:tag`` as infra/values.yaml names it (tag "" -> appVersion)."""
    values = (repo / "infra/values.yaml").read_text()
    block = re.search(r"^image:\n((?:[ ]+.*\n|\n)+)", values, re.MULTILINE)
    if block is None:
        raise RuntimeError("infra/values.yaml has no top-level image: block")
    repository = re.search(r"^  repository: *(\S+)", block.group(1), re.MULTILINE)
    tag = re.search(r'^  tag: *"?([^"\s]*)"?', block.group(1), re.MULTILINE)
    if repository is None:
        raise RuntimeError("infra/values.yaml: image.repository is missing")
    version = tag.group(1) if tag else ""
    if not version:
        chart = (repo / "infra/Chart.yaml").read_text()
        app = re.search(r'^appVersion: *"?([^"\s]+)"?', chart, re.MULTILINE)
        if app is None:
            raise RuntimeError("infra/Chart.yaml has no appVersion")
        version = app.group(1)
    return f"{repository.group(1)}:{version}"


def _values_tag(repo: Path, component: str) -> str:
    """The ``<component>.image.tag`` of infra/values.yaml (the upstream version)."""
    values = (repo / "infra/values.yaml").read_text()
    found = re.search(
        rf'^{component}:\n(?:  .*\n|\n)*?  image:\n(?:    .*\n)*?    tag: *"?([^"\s]+)"?',
        values,
        re.MULTILINE,
    )
    if found is None:
        raise RuntimeError(f"infra/values.yaml: {component}.image.tag not found")
    return found.group(1)


def _pyproject_version(path: Path) -> str:
    return str(tomllib.loads(path.read_text())["project"]["version"])


def _go_pin(repo: Path, key: str) -> str:
    text = (repo / "tools/testbin/versions.env").read_text()
    found = re.search(rf"^{key}=(\S+)$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"tools/testbin/versions.env has no {key}")
    return found.group(1)


def _console_step(repo: Path) -> Prepare:
    """Build the web console (``make console``) and put it into the platform image's context.

    No registry answers here, so there is no node build stage: the console is
    built on this machine from package-lock.json and copied in as
    ``console/dist`` (its sources, in the context's git files, are in the digest).
    """

    def prepare(context: Path) -> None:
        subprocess.run(["make", "--no-print-directory", "console"], cwd=repo, check=True)
        dist = repo / "console" / "dist"
        if not (dist / "index.html").is_file():
            raise RuntimeError(
                "make console made no console/dist (is Node.js with npm installed?); "
                "the platform image serves the web console from it"
            )
        shutil.copytree(dist, context / "console" / "dist", dirs_exist_ok=True)

    return prepare


def _go_binary_image(
    repo: Path,
    *,
    name: str,
    summary: str,
    version: str,
    tag: str,
    first_build: str,
    binary: str = "",
) -> ImageSpec:
    """An image holding one Go binary built on this machine (its digest covers the binary).

    ``binary`` is the program's name when it is not the image's (``influxd``).
    """
    program = binary or name

    def inputs() -> dict[str, str]:
        built = _artifacts.go_binary(repo, program, version)
        return {program: version, "sha256": _context.file_digest(built)}

    def prepare(context: Path) -> None:
        target = context / program
        target.write_bytes(_artifacts.go_binary(repo, program, version).read_bytes())
        target.chmod(0o755)

    return ImageSpec(
        name=name,
        summary=summary,
        tags=(f"localhost/dtpoc-{name}:{tag}",),
        context=f"tools/images/{name}",
        bases={"BASE_IMAGE": "base"},
        inputs=inputs,
        prepare=prepare,
        first_build=first_build,
    )


def _toolchain_images(downloads: Path, *, uv: str) -> list[ImageSpec]:
    """What the other images start from: the Debian + Python base and uv."""
    return [
        ImageSpec(
            name="base",
            summary="Debian bookworm + Python 3.11 (mmdebstrap, this machine's apt and CAs)",
            tags=(BASE_TAG,),
            context="tools/images/base",
            inputs=_artifacts.rootfs_inputs,
            prepare=lambda ctx: _artifacts.write_rootfs(ctx / "rootfs.tar"),
            first_build="about 2 min (mmdebstrap)",
        ),
        ImageSpec(
            name="uv",
            summary=f"uv {uv} alone (from its PyPI wheel)",
            tags=(f"localhost/dtpoc-uv:{uv}",),
            context="tools/images/uv",
            inputs=lambda: _artifacts.uv_inputs(uv),
            prepare=lambda ctx: _artifacts.write_uv(version=uv, downloads=downloads, dest=ctx),
            first_build="seconds (one 20 MB download)",
        ),
    ]


def _project_images(repo: Path) -> list[ImageSpec]:
    """The platform image the chart runs and the example analytics image."""
    app = _chart_image(repo)
    histolab = _pyproject_version(repo / "examples/histolab/pyproject.toml")
    return [
        ImageSpec(
            name="dtpoc",
            summary="platform: files, orchestrator, gateway, operator, fetch-inputs",
            tags=(app, f"localhost/dtpoc:{app.rsplit(':', 1)[1]}"),
            context=".",
            dockerfile="services/Dockerfile",
            bases={"PYTHON_IMAGE": "base", "UV_IMAGE": "uv"},
            prepare=_console_step(repo),
            first_build="about 1 min (uv sync from PyPI)",
        ),
        ImageSpec(
            name="histolab",
            summary="histolab example analytics (the original's digital-hosp-des)",
            tags=(
                "ghcr.io/cam-digital-hospitals/digital-hosp-des:latest",
                f"localhost/dtpoc-histolab:{histolab}",
            ),
            context="examples/histolab",
            bases={"PYTHON_IMAGE": "base"},
            first_build="about 30 s (pip from PyPI)",
        ),
    ]


def _data_stack_images(repo: Path) -> list[ImageSpec]:
    """The chart's data stack: FerretDB, Mosquitto, Telegraf, InfluxDB, Node.js, Node-RED."""
    ferretdb = _go_pin(repo, "FERRETDB_VERSION")
    influxdb = _go_pin(repo, "INFLUXDB_VERSION")
    telegraf = "v" + _values_tag(repo, "telegraf").removeprefix("v")
    node_red = _values_tag(repo, "nodeRed")
    return [
        _go_binary_image(
            repo,
            name="ferretdb",
            summary=f"FerretDB {ferretdb} (MongoDB protocol on SQLite), built from source",
            version=ferretdb,
            tag=ferretdb,
            first_build="seconds (binary from tools/testbin/build, ~2 min if not built)",
        ),
        ImageSpec(
            name="mosquitto",
            summary="Mosquitto MQTT broker (Debian package)",
            tags=("localhost/dtpoc-mosquitto:bookworm",),
            context="tools/images/mosquitto",
            bases={"BASE_IMAGE": "base"},
            first_build="about 30 s (apt)",
        ),
        _go_binary_image(
            repo,
            name="telegraf",
            summary=f"Telegraf {telegraf} with the chart's plugins, built from source",
            version=telegraf,
            tag=telegraf.removeprefix("v"),
            first_build="seconds (binary from tools/testbin/build-telegraf, ~3 min if not built)",
        ),
        _go_binary_image(
            repo,
            name="influxdb",
            binary="influxd",
            summary=f"InfluxDB {influxdb} (the chart's 2.x setup on 1.x), built from source",
            version=influxdb,
            tag=influxdb.removeprefix("v"),
            first_build="seconds (binary from tools/testbin/build, ~12 min if not built)",
        ),
        ImageSpec(
            name="node",
            summary="Debian's Node.js on the base (what node-red and mongo-express start from)",
            tags=(NODE_TAG,),
            context="tools/images/node",
            bases={"BASE_IMAGE": "base"},
            first_build="about 30 s (apt)",
        ),
        ImageSpec(
            name="node-red",
            summary="Node-RED (npm package on Debian's Node.js)",
            tags=(f"localhost/dtpoc-node-red:{node_red}",),
            context="tools/images/node-red",
            bases={"NODE_IMAGE": "node"},
            args={"NODE_RED_VERSION": node_red},
            first_build="about 1 min (npm)",
        ),
    ]


_FETCH_NPM = "tools/images/node-red/fetch_npm.py"
"""npm itself, checked against its published sha512 (shared by the two Node.js images)."""


def _mongo_express_image(repo: Path) -> ImageSpec:
    """Mongo Express from its npm package, its browser assets built here (webpack)."""
    version = _values_tag(repo, "mongoExpress")

    def prepare(context: Path) -> None:
        shutil.copy(repo / _FETCH_NPM, context / "fetch_npm.py")

    return ImageSpec(
        name="mongo-express",
        summary="Mongo Express (npm package, assets built with webpack, Debian's Node.js)",
        tags=(f"localhost/dtpoc-mongo-express:{version}",),
        context="tools/images/mongo-express",
        bases={"NODE_IMAGE": "node"},
        args={"MONGO_EXPRESS_VERSION": version},
        inputs=lambda: {"fetch_npm.py": _context.file_digest(repo / _FETCH_NPM)},
        prepare=prepare,
        first_build="about 8 min (npm, webpack)",
    )


def catalogue(repo: Path, downloads: Path) -> dict[str, ImageSpec]:
    """The images by short name, in build order (bases first)."""
    uv = _artifacts.uv_version(repo / "services/Dockerfile")
    specs = [
        *_toolchain_images(downloads, uv=uv),
        *_project_images(repo),
        *_data_stack_images(repo),
        _mongo_express_image(repo),
    ]
    return {spec.name: spec for spec in specs}
