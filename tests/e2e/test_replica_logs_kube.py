"""Replica logs on the Kubernetes runtime: pod logs through the real apiserver.

The kubelet double serves the apiserver's pod-log proxy (the lines a
container printed, followed until the pod finishes); the orchestrator reads
a running replica's log through ``pods/log``, the operator (as its own
ServiceAccount, the chart's Role) stores it in Files when the replica ends,
and after the pod is deleted the orchestrator answers it from Files.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_local import waiting
from dtpoc_local.credentials import credentials
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.operator import OperatorProcess, install_analytics_crd, operator_kubeconfig
from dtpoc_local.servers.orchestrator import OrchestratorServer
from tests.e2e import runtimes
from tests.operator.helpers import INIT_IMAGE, OUTPUT_PVC
from tests.realdeps.kubelet_double import KubeletDouble

pytestmark = [pytest.mark.slow, pytest.mark.kube]

LINES = 10_000
HALF = LINES // 2
TIMEOUT = 90.0
INIT_LINES = ["fetched input.csv (8 bytes)"]


def _lines(start: int, stop: int) -> list[str]:
    return [f"line {i:05d} of the replica" for i in range(start, stop)]


class Follower(threading.Thread):
    """Reads ``GetReplicaLog(follow=True)`` as a client would, on a thread."""

    def __init__(self, stub: Any, service_id: str) -> None:
        super().__init__(daemon=True)
        self._call = stub.GetReplicaLog(
            orchestrator_pb2.GetReplicaLogRequest(id=service_id, idx=0, follow=True),
            timeout=TIMEOUT,
        )
        self.text = ""
        self.ended = threading.Event()
        self.error: grpc.RpcError | None = None

    def run(self) -> None:
        try:
            for message in self._call:
                assert message.attempt == 1
                self.text += message.text
        except grpc.RpcError as error:
            self.error = error
        self.ended.set()


def _whole(stub: Any, service_id: str, **query: Any) -> str:
    request = orchestrator_pb2.GetReplicaLogRequest(id=service_id, idx=0, **query)
    return "".join(m.text for m in stub.GetReplicaLog(request, timeout=TIMEOUT))


def test_a_failing_pods_log_is_followed_through_the_apiserver_and_kept_after_the_pod_is_gone(
    kube: KubeCluster,
    kube_namespace: str,
    kubelet_double: KubeletDouble,
    files_server: FilesServer,
    orchestrator_server_factory: Callable[..., OrchestratorServer],
    operator_process: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    with credentials().channel(files_server.address) as files_channel:
        files = files_pb2_grpc.FilesServiceStub(files_channel)
        input_path = tmp_path / "input.csv"
        input_path.write_bytes(b"a,b\n1,2\n")
        file_id = runtimes.upload(files, input_path, "input.csv")
    install_analytics_crd(kube)
    orchestrator = orchestrator_server_factory(
        files_address=files_server.address,
        backend="kubernetes",
        kubeconfig_path=kube.kubeconfig_path,
        namespace=kube_namespace,
    )
    operator = operator_process(
        runtime="kubernetes",
        kubeconfig=operator_kubeconfig(kube, kube_namespace, tmp_path / "operator.kubeconfig"),
        namespace=kube_namespace,
        files_address=files_server.address,
        output_root=tmp_path / "outputs",
        env={
            "DTPOC_OPERATOR_IMAGE": INIT_IMAGE,
            "DTPOC_OPERATOR_OUTPUT_PVC": OUTPUT_PVC,
            "DTPOC_OPERATOR_RESYNC_SECONDS": "5",
        },
    )
    client = runtimes.Orchestrator.open(orchestrator.address)
    try:
        stub = client.stub
        service_id = stub.LaunchService(
            orchestrator_pb2.LaunchServiceRequest(
                image="example.test/printer",
                version="1",
                ana=orchestrator_pb2.AnalyticsOptions(job_type="ondemand", reps=1),
                mount_files={file_id: "input.csv"},
                command=[sys.executable, "-c", "print('never run: the double plays it')"],
            ),
            timeout=runtimes.RPC_TIMEOUT,
        ).id
        [pod] = waiting.wait_for(
            lambda: kubelet_double.job_pods(kube_namespace, f"ana-{service_id}"),
            timeout=TIMEOUT,
            what="the replica's pod",
            details=lambda: operator.process.log_tail(30),
        )
        name = pod["metadata"]["name"]
        init = pod["spec"]["initContainers"][0]["name"]
        main = pod["spec"]["containers"][0]["name"]
        kubelet_double.print_logs(kube_namespace, name, init, INIT_LINES)
        kubelet_double.set_pod_running(kube_namespace, name)
        kubelet_double.print_logs(kube_namespace, name, main, _lines(0, HALF))
        waiting.wait_for(
            lambda: (
                (runtimes.status_dict(stub, service_id).get("replicas") or [{}])[0].get("state")
                == "running"
            ),
            timeout=TIMEOUT,
            what="the replica to run",
        )

        follower = Follower(stub, service_id)
        follower.start()
        waiting.wait_for(
            lambda: f"line {HALF - 1:05d}" in follower.text,
            timeout=TIMEOUT,
            what="the follow to deliver the first half while the pod runs",
            details=lambda: follower.text[-300:] + str(follower.error),
        )
        assert not follower.ended.is_set()
        kubelet_double.print_logs(kube_namespace, name, main, _lines(HALF, LINES))
        waiting.wait_for(
            lambda: f"line {LINES - 1:05d}" in follower.text,
            timeout=TIMEOUT,
            what="the follow to deliver the second half",
        )
        kubelet_double.finish_pod(kube_namespace, name, exit_code=1)
        assert follower.ended.wait(TIMEOUT), "the follow ends when the pod does"
        assert follower.error is None, follower.error
        expected = "\n".join([*INIT_LINES, *_lines(0, LINES)]) + "\n"
        assert follower.text == expected

        final = waiting.wait_for(
            lambda: (
                (s := runtimes.status_dict(stub, service_id))["phase"] == "failed"
                and (s.get("replicas") or [{}])[0].get("logs")
                and s
            ),
            timeout=TIMEOUT,
            what="the replica to fail with its log stored",
            details=lambda: operator.process.log_tail(30),
        )
        assert final["replicas"][0]["logs"][0]["attempt"] == 1
        assert final["replicas"][0].get("output_file_ids", []) == []

        kube.request("DELETE", f"/api/v1/namespaces/{kube_namespace}/pods/{name}")
        waiting.wait_for(
            lambda: not kubelet_double.job_pods(kube_namespace, f"ana-{service_id}"),
            timeout=TIMEOUT,
            what="the pod to be gone",
        )
        assert _whole(stub, service_id) == expected
        assert _whole(stub, service_id, tail_lines=1) == f"line {LINES - 1:05d} of the replica\n"
    finally:
        client.channel.close()
