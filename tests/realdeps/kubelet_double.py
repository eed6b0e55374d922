"""KubeletDouble: a named test double that plays the kubelet's part for pods.

No kubelet can run containers on these machines, so with the local control
plane pods stay Pending forever. The double does, through the real API, what a
kubelet would: bind the pod to a node name, report it Running, then report
its containers terminated with an exit code (through the ``pods/status``
subresource), and write the files the container would have left in its
output volume. The controllers (Job, CronJob, ...) react to those updates
exactly as they would to a real kubelet's.

It also serves what a kubelet serves the apiserver for ``pods/<pod>/log``
(:mod:`tests.realdeps.kubelet_double_logs`): lines a test says a container
printed (:meth:`KubeletDouble.print_logs`), followed until the double
finishes the pod. For that it registers its Node (loopback address, the
log server's port).

It is only a double for the kubelet: the apiserver, admission, RBAC and the
controllers are the real ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from dtpoc_local import waiting
from dtpoc_local.kube import KubeCluster
from tests.realdeps import kubelet_double_logs

NODE_NAME = "kubelet-double"
"""The node name pods are bound to; no Node object is needed for binding."""

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(*, ready: bool, at: str) -> list[dict[str, str]]:
    status = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
        {"type": "Initialized", "status": "True", "lastTransitionTime": at},
        {"type": "ContainersReady", "status": status, "lastTransitionTime": at},
        {"type": "Ready", "status": status, "lastTransitionTime": at},
    ]


Pod = dict[str, Any]
"""A pod as the API returns it in JSON (camelCase keys)."""


class KubeletDouble:
    """Moves pods through Running and Succeeded/Failed as a kubelet would report them.

    Pods are passed by namespace and name and returned as JSON dicts
    (:data:`Pod`), the shape ``kubectl get -o json`` shows.
    """

    def __init__(self, cluster: KubeCluster, *, workdir: Path | None = None) -> None:
        self._kube = cluster
        self._workdir = workdir
        self._logs = kubelet_double_logs.ContainerLogs()
        self._log_server: kubelet_double_logs.LogServer | None = None

    # --- container logs ----------------------------------------------------------------------

    def print_logs(self, namespace: str, pod: str, container: str, lines: list[str]) -> None:
        """Lines ``container`` of ``pod`` printed now; the apiserver's pod log serves them."""
        self._serving_logs()
        self._logs.append((namespace, pod, container), lines)

    def _serving_logs(self) -> kubelet_double_logs.LogServer:
        if self._log_server is None:
            assert self._workdir is not None, "a KubeletDouble with a workdir serves logs"
            self._log_server = kubelet_double_logs.LogServer(self._workdir, self._logs)
            self._register_node(self._log_server.port)
        return self._log_server

    def _register_node(self, port: int) -> None:
        """The Node the apiserver looks up to reach this kubelet (its address and port)."""
        try:
            self._kube.request(
                "POST",
                "/api/v1/nodes",
                body={"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME}},
            )
        except ApiException as error:
            if error.status != 409:
                raise
        self._kube.request(
            "PATCH",
            f"/api/v1/nodes/{NODE_NAME}/status",
            body={
                "status": {
                    "addresses": [{"type": "InternalIP", "address": kubelet_double_logs.LOOPBACK}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                }
            },
            content_type="application/merge-patch+json",
        )

    def close(self) -> None:
        """Stop serving logs; the Node goes too (no later test reaches a closed port)."""
        if self._log_server is not None:
            self._log_server.close()
            self._log_server = None
            try:
                self._kube.request("DELETE", f"/api/v1/nodes/{NODE_NAME}")
            except ApiException as error:
                if error.status != 404:
                    raise

    # --- finding pods ------------------------------------------------------------------------

    def job_pods(self, namespace: str, job_name: str) -> list[Pod]:
        """Pods the Job controller created for ``job_name``, oldest first."""
        listing = self._kube.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods?labelSelector={JOB_NAME_LABEL}%3D{job_name}",
        )
        pods: list[Pod] = listing.get("items") or []
        return sorted(pods, key=lambda p: str(p["metadata"]["creationTimestamp"]))

    def wait_for_job_pods(
        self, namespace: str, job_name: str, *, count: int, timeout: float = 30.0
    ) -> list[Pod]:
        """Wait until at least ``count`` pods of the Job exist that are neither terminal nor
        being deleted; return those."""

        def active() -> list[Pod]:
            pods = [
                p
                for p in self.job_pods(namespace, job_name)
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                and "deletionTimestamp" not in p["metadata"]
            ]
            return pods if len(pods) >= count else []

        return waiting.wait_for(
            active, timeout=timeout, what=f"{count} active pods of Job {namespace}/{job_name}"
        )

    @staticmethod
    def completion_index(pod: Pod) -> int | None:
        """The completion index of a pod of an Indexed Job, else None."""
        value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
        return int(value) if value is not None else None

    # --- playing the kubelet -----------------------------------------------------------------

    def set_pod_running(self, namespace: str, pod: str) -> Pod:
        """Bind the pod (if unbound) and report all its containers running and ready."""
        current = self._bound(namespace, pod)
        at = _now()
        uid = current["metadata"]["uid"]
        for init in current["spec"].get("initContainers") or []:
            self._logs.finish((namespace, pod, init["name"]))  # a running pod's have ended
        status: dict[str, Any] = {
            "phase": "Running",
            "conditions": _conditions(ready=True, at=at),
            "startTime": at,
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "containerID": f"double://{uid}/{c['name']}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": at}},
                }
                for c in current["spec"]["containers"]
            ],
        }
        return self._patch_status(namespace, pod, status)

    def finish_pod(
        self,
        namespace: str,
        pod: str,
        exit_code: int = 0,
        reason: str | None = None,
        message: str | None = None,
    ) -> Pod:
        """Report the pod's containers terminated with ``exit_code``.

        Phase becomes Succeeded for exit code 0, else Failed; each container
        gets ``state.terminated`` with the exit code, reason (default
        "Completed" or "Error", as the kubelet says), message and times.
        A pod never reported running is bound and started first.
        """
        current = self._bound(namespace, pod)
        if (current.get("status") or {}).get("phase") != "Running":
            current = self.set_pod_running(namespace, pod)
        started = {
            s["name"]: s["state"]["running"]["startedAt"]
            for s in current["status"].get("containerStatuses") or []
            if "running" in (s.get("state") or {})
        }
        at = _now()
        uid = current["metadata"]["uid"]
        spec = current["spec"]
        for c in [*(spec.get("initContainers") or []), *spec["containers"]]:
            self._logs.finish((namespace, pod, c["name"]))
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "finishedAt": at,
        }
        if message is not None:
            terminated["message"] = message
        status: dict[str, Any] = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "conditions": _conditions(ready=False, at=at),
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "containerID": f"double://{uid}/{c['name']}",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            **terminated,
                            "startedAt": started.get(c["name"], at),
                            "containerID": f"double://{uid}/{c['name']}",
                        }
                    },
                }
                for c in current["spec"]["containers"]
            ],
        }
        return self._patch_status(namespace, pod, status)

    def _patch_status(self, namespace: str, pod: str, status: dict[str, Any]) -> Pod:
        # A strategic merge patch of the status subresource, as the kubelet sends;
        # containerStatuses is replaced whole, conditions merge by type.
        return self._kube.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{pod}/status",
            body={"status": status},
            content_type="application/strategic-merge-patch+json",
        )

    def _bound(self, namespace: str, pod: str) -> Pod:
        """Read the pod, binding it to :data:`NODE_NAME` first if the (absent) scheduler has not."""
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
        current = self._kube.request("GET", path)
        if current["spec"].get("nodeName"):
            return current
        self._kube.request(
            "POST",
            f"{path}/binding",
            body={
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME},
            },
        )
        return self._kube.request("GET", path)

    # --- the container's side of the output volume -------------------------------------------

    @staticmethod
    def write_container_outputs(
        output_root: Path, relpath: str, files: Mapping[str, bytes]
    ) -> list[Path]:
        """Write ``files`` (name -> content) under ``output_root/relpath``, as a container would.

        ``relpath`` and each name are relative POSIX paths (e.g.
        ``"<service>/<replica index>"`` and ``"results/summary.json"``); paths
        that would escape ``output_root`` are refused.
        """
        root = output_root.resolve()
        written = []
        for name, content in files.items():
            relative = PurePosixPath(relpath) / name
            target = (root / relative).resolve()
            if relative.is_absolute() or not target.is_relative_to(root):
                raise ValueError(f"output path {relative} escapes {root}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written.append(target)
        return written


@pytest.fixture
def kubelet_double(kube: KubeCluster, tmp_path: Path) -> Iterator[KubeletDouble]:
    """A :class:`KubeletDouble` for the local control plane.

    Skips on a cluster of your own (``DTPOC_TEST_KUBECONFIG``/``KUBECONFIG``),
    whose real kubelets would contradict the double.
    """
    if not kube.managed:
        pytest.skip("kubelet_double plays the kubelet only on the local control plane")
    double = KubeletDouble(kube, workdir=tmp_path / "kubelet-double")
    yield double
    double.close()
