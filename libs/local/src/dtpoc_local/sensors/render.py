"""``helm template`` of ``infra/`` with the pinned helm, parsed (what the sensor stack reads).

``helm template`` has no cluster, so ``lookup`` finds nothing and every
credential is generated afresh by each render: one render configures every
server of a run. ``DTPOC_TEST_CHART_DIR`` points at another copy of the chart.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dtpoc_local import binaries
from dtpoc_local.paths import REPO_ROOT

CHART_DIR = Path(os.environ.get("DTPOC_TEST_CHART_DIR", REPO_ROOT / "infra"))

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """The manifests of one render, with lookups by kind and name."""

    manifests: list[Manifest]
    namespace: str
    release: str

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def named(self, kind: str, name: str) -> Manifest:
        for m in self.of_kind(kind):
            if m["metadata"]["name"] == name:
                return m
        names = [m["metadata"]["name"] for m in self.of_kind(kind)]
        raise KeyError(f"no {kind} {name!r}; rendered {kind}s: {names}")

    def secret_values(self) -> dict[tuple[str, str], str]:
        """``(secret name, key) -> value`` of every rendered Secret (stringData and data)."""
        values: dict[tuple[str, str], str] = {}
        for secret in self.of_kind("Secret"):
            name = secret["metadata"]["name"]
            for key, value in (secret.get("stringData") or {}).items():
                values[(name, key)] = str(value)
            for key, value in (secret.get("data") or {}).items():
                values[(name, key)] = base64.b64decode(value).decode()
        return values


def pod_spec(workload: Manifest) -> dict[str, Any]:
    """The pod spec inside a workload manifest."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def containers(workload: Manifest, *, init: bool = False) -> Iterator[dict[str, Any]]:
    """The containers (or init containers) of a workload."""
    yield from pod_spec(workload).get("initContainers" if init else "containers") or []


def render(
    values_files: Sequence[Path] = (), *, namespace: str = "dtpoc", release: str = "dtpoc"
) -> Rendered:
    """``helm template`` the chart with ``values_files`` and parse every document."""
    argv = [str(binaries.path("helm")), "template", release, str(CHART_DIR)]
    argv += ["--namespace", namespace, "--kube-version", binaries.version("kube-apiserver")]
    for path in values_files:
        argv += ["-f", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{result.stderr}")
    manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return Rendered(manifests=manifests, namespace=namespace, release=release)


def merged_values(values_files: Sequence[Path] = ()) -> dict[str, Any]:
    """The values after ``values_files``, merged as helm does (maps merge, lists replace)."""

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    values: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for path in values_files:
        values = merge(values, yaml.safe_load(path.read_text()) or {})
    return values
