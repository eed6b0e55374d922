"""Render the Helm chart in ``infra/`` with the pinned helm and read what it renders.

The chart is rendered by the real ``helm`` binary (``dtpoc_local.binaries``)
for the three shapes the project supports: the defaults, production and
Docker Desktop. ``helm template`` has no cluster, so ``lookup`` finds nothing
and every credential is generated afresh on each render; tests rely on that.

``DTPOC_TEST_CHART_DIR`` points the tests at another copy of the chart (for
trying a change without touching ``infra/``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dtpoc_local import binaries
from dtpoc_local.sensors.render import Manifest as Manifest
from dtpoc_local.sensors.render import Rendered as HarnessRendered
from dtpoc_local.sensors.render import containers as containers
from dtpoc_local.sensors.render import merged_values as merged_values
from dtpoc_local.sensors.render import pod_spec as pod_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = Path(os.environ.get("DTPOC_TEST_CHART_DIR", REPO_ROOT / "infra"))
CRD_DIR = CHART_DIR / "crds"
OPERATOR_ROLE_FILE = CHART_DIR / "rbac" / "operator-role.yaml"

PRODUCTION = CHART_DIR / "values-production.yaml"
DOCKER_DESKTOP = CHART_DIR / "values-docker-desktop.yaml"
CLUSTER = CHART_DIR / "values-cluster.yaml"
"""The node of ``make cluster`` (tools/cluster)."""
PUBLIC_BROKER = CHART_DIR / "examples" / "values-public-broker.yaml"
"""The original's sensors on the public test broker (a documented example, not a default)."""

SHAPES: dict[str, tuple[Path, ...]] = {
    "default": (),
    "production": (PRODUCTION,),
    "docker-desktop": (DOCKER_DESKTOP,),
    "cluster": (CLUSTER,),
    "public-broker": (PUBLIC_BROKER,),
}
"""The supported values shapes: name -> values files passed with ``-f``."""

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def kube_version() -> str:
    """The Kubernetes version tests render for: the pinned control plane's.

    The pinned helm is built without the Kubernetes version stamp of helm's
    release builds and would otherwise assume v1.20.
    """
    return binaries.version("kube-apiserver")


@dataclass(frozen=True)
class Rendered(HarnessRendered):
    """The harness's render (lookups by kind and name) with helm's text and the values files."""

    text: str
    values_files: tuple[Path, ...] = field(default=())

    def workloads(self) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] in WORKLOAD_KINDS]


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True) -> str:
    """Run the pinned helm and return its stdout; a failure raises with helm's stderr."""
    argv = [str(binaries.path("helm")), *args]
    if kubeconfig is not None:
        argv.append(f"--kubeconfig={kubeconfig}")
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise HelmFailed(argv, result.returncode, result.stderr + result.stdout)
    return result.stdout


class HelmFailed(AssertionError):
    """helm exited non-zero; the message carries its stderr."""

    def __init__(self, argv: Sequence[str], code: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv[1:])} exited {code}:\n{stderr}")
        self.stderr = stderr


def values_args(values_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> list[str]:
    args: list[str] = []
    for path in values_files:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


def render(
    values_files: Sequence[Path] = (),
    *,
    sets: Sequence[str] = (),
    namespace: str = "dtpoc",
    release: str = "dtpoc",
) -> Rendered:
    """``helm template`` the chart and parse every document it prints."""
    text = helm(
        "template",
        release,
        str(CHART_DIR),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version(),
        *values_args(values_files, sets),
    )
    manifests = [doc for doc in yaml.safe_load_all(text) if doc]
    return Rendered(
        manifests=manifests,
        text=text,
        namespace=namespace,
        release=release,
        values_files=tuple(values_files),
    )


def render_notes(
    values_files: Sequence[Path] = (), *, sets: Sequence[str] = (), workdir: Path
) -> str:
    """The NOTES ``helm install`` prints, rendered offline.

    ``helm template`` never renders NOTES.txt and ``helm install --dry-run``
    needs a cluster, so a copy of the chart in ``workdir`` carries the notes
    as the body of one extra template, rendered with the same values.
    """
    copy = workdir / "chart"
    shutil.copytree(CHART_DIR, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "zz-notes-under-test.yaml").write_text(
        '{{- define "test.notes" -}}\n' + notes + "\n{{- end -}}\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\n"
        'data:\n  notes: {{ include "test.notes" . | toJson }}\n'
    )
    text = helm(
        "template",
        "dtpoc",
        str(copy),
        "--namespace",
        "dtpoc",
        "--kube-version",
        kube_version(),
        "--show-only",
        "templates/zz-notes-under-test.yaml",
        *values_args(values_files, sets),
    )
    return str(yaml.safe_load(text)["data"]["notes"])


def render_error(values_files: Sequence[Path] = (), *, sets: Sequence[str] = ()) -> str:
    """Render expecting failure; return helm's error output."""
    try:
        render(values_files, sets=sets)
    except HelmFailed as failure:
        return failure.stderr
    raise AssertionError(f"helm template accepted {list(values_files)} {list(sets)}")
