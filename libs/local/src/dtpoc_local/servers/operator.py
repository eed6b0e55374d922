"""Start ``dtpoc-operator`` as a process, and prepare a Kubernetes API for it.

:func:`start_operator` starts ``dtpoc-operator`` with the given environment
(free loopback ports for its probes and metrics, own process group) and,
unless told not to, returns once its ``/readyz`` answers 200 (deadline
:data:`READY_TIMEOUT`), i.e. once it has listed its Analytics and is
reconciling. :class:`OperatorProcess` has ``.env``, ``.pid``,
``.health_address``, ``.metrics_address``, ``.log_path``, ``.process``, and
``.kill()`` (SIGKILL, waits for the exit), ``.restart(**env_overrides)`` (a
new process with the same environment plus overrides), ``.wait_exited()``,
``.metrics()`` (the Prometheus text). The caller stops it; the
``operator_process`` fixture (``tests/platform/operator.py``) does for tests.

Helpers for the Kubernetes runtime: :func:`install_analytics_crd` applies
``infra/crds/analytics.yaml`` (create or replace, wait Established);
:func:`operator_kubeconfig` applies ``infra/rbac/operator-role.yaml`` in a
namespace, requests a token for its ServiceAccount with the TokenRequest API
and writes a kubeconfig that authenticates with it.
"""

from __future__ import annotations

import base64
import os
import signal
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from dtpoc_local import ports, probes, processes, waiting
from dtpoc_local.kube import KubeCluster
from dtpoc_local.paths import REPO_ROOT

CRD_PATH = REPO_ROOT / "infra" / "crds" / "analytics.yaml"
ROLE_PATH = REPO_ROOT / "infra" / "rbac" / "operator-role.yaml"
SERVICE_ACCOUNT = "dtpoc-operator"
READY_TIMEOUT = 180.0


def operator_executable() -> str:
    """The ``dtpoc-operator`` console script of the environment running the tests."""
    return processes.console_script("dtpoc-operator")


@dataclass
class OperatorProcess:
    """One running ``dtpoc-operator`` (see the module docstring)."""

    env: dict[str, str]
    health_address: str
    metrics_address: str
    log_path: Path
    process: processes.ServerProcess
    workdir: Path
    #: The command it runs: ``dtpoc-operator``, or a wrapper of it (a test's fault injection).
    argv: list[str] = field(default_factory=list)
    _started: list[OperatorProcess] = field(default_factory=list, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self) -> bool:
        return probes.http_ok(f"http://{self.health_address}/readyz")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        self.process.wait_ready(self.ready, timeout=timeout, what="/readyz 200")

    def wait_exited(self, timeout: float = 60.0) -> None:
        waiting.wait_for(
            lambda: not self.process.is_running(),
            timeout=timeout,
            what=f"dtpoc-operator {self.pid} to exit",
            details=self.process.log_tail,
        )
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it; waits until it is gone."""
        if self.process.is_running():
            os.kill(self.pid, signal.SIGKILL)
        self.wait_exited(timeout=10)

    def stop(self) -> None:
        self.process.stop()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def restart(
        self, *, argv: Sequence[str] | None = None, wait_ready: bool = True, **env_overrides: str
    ) -> OperatorProcess:
        """A new process with this one's environment plus ``env_overrides``.

        Same command unless ``argv`` says otherwise (``[operator_executable()]``
        restarts a wrapped operator as the plain one).
        """
        if self.process.is_running():
            self.kill()
        return _start(
            {**self.env, **env_overrides},
            workdir=self.workdir,
            started=self._started,
            wait_ready=wait_ready,
            argv=list(argv) if argv is not None else self.argv,
        )


def start_operator(
    env: dict[str, str],
    *,
    workdir: Path,
    started: list[OperatorProcess] | None = None,
    wait_ready: bool = True,
    argv: Sequence[str] | None = None,
) -> OperatorProcess:
    """Start ``dtpoc-operator`` with ``env``; free loopback ports are chosen for its probes
    and metrics. ``argv`` replaces the command (default ``[operator_executable()]``), so a
    test can run the operator under a wrapper without a hook in the operator. The caller
    stops it (``started`` collects it for a fixture's teardown)."""
    return _start(
        env,
        workdir=workdir,
        started=started if started is not None else [],
        wait_ready=wait_ready,
        argv=list(argv) if argv is not None else [operator_executable()],
    )


def _start(
    env: dict[str, str],
    *,
    workdir: Path,
    started: list[OperatorProcess],
    wait_ready: bool,
    argv: list[str],
) -> OperatorProcess:
    health_port, metrics_port = ports.free_ports(2)
    env = {
        **env,
        "DTPOC_OPERATOR_HEALTH_LISTEN": f"{ports.LOOPBACK}:{health_port}",
        "DTPOC_OPERATOR_METRICS_LISTEN": f"{ports.LOOPBACK}:{metrics_port}",
    }
    log_path = workdir / f"dtpoc-operator-{uuid.uuid4().hex[:6]}.log"
    server = processes.ServerProcess(
        name="dtpoc-operator",
        argv=argv,
        log_path=log_path,
        env=env,
        cwd=workdir,
    ).start()
    operator = OperatorProcess(
        env=env,
        health_address=f"{ports.LOOPBACK}:{health_port}",
        metrics_address=f"{ports.LOOPBACK}:{metrics_port}",
        log_path=log_path,
        process=server,
        workdir=workdir,
        argv=argv,
        _started=started,
    )
    started.append(operator)
    if wait_ready:
        operator.wait_ready()
    return operator


# --- Kubernetes helpers ------------------------------------------------------------------------


def install_analytics_crd(kube: KubeCluster) -> str:
    """Apply ``infra/crds/analytics.yaml`` (create, or replace if present); wait Established."""
    manifest = yaml.safe_load(CRD_PATH.read_text())
    name = str(manifest["metadata"]["name"])
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    try:
        kube.create_crd(manifest)
    except ApiException as error:
        if error.status != 409:
            raise
        current = kube.request("GET", path)
        manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        kube.request("PUT", path, body=manifest)
        kube.wait_crd_established(name)
    return name


def apply_operator_role(kube: KubeCluster, namespace: str) -> None:
    """Create the ServiceAccount, Role and RoleBinding of ``infra/rbac/operator-role.yaml``."""
    paths = {
        "ServiceAccount": f"/api/v1/namespaces/{namespace}/serviceaccounts",
        "Role": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        "RoleBinding": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
    }
    for document in yaml.safe_load_all(ROLE_PATH.read_text()):
        if not document:
            continue
        try:
            kube.request("POST", paths[document["kind"]], body=document)
        except ApiException as error:
            if error.status != 409:
                raise


def operator_kubeconfig(kube: KubeCluster, namespace: str, path: Path) -> Path:
    """A kubeconfig acting as the operator's ServiceAccount in ``namespace`` (module docs)."""
    apply_operator_role(kube, namespace)
    answer = kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{SERVICE_ACCOUNT}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        },
    )
    token = answer["status"]["token"]
    admin = yaml.safe_load(kube.kubeconfig_path.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    cluster_entry: dict[str, Any] = dict(cluster["cluster"])
    if "certificate-authority" in cluster_entry:
        ca = Path(cluster_entry.pop("certificate-authority")).read_bytes()
        cluster_entry["certificate-authority-data"] = base64.b64encode(ca).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster_entry}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": "test", "user": SERVICE_ACCOUNT, "namespace": namespace},
            }
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
