"""One launch, two runtimes: what a user sees through the orchestrator must not depend on which.

The same ``LaunchService`` body (the histolab example, two replicas, the
sample workbook uploaded through Files) goes to an orchestrator with the
Kubernetes backend and to one with the local backend, each with its
operator. Both must end ``succeeded`` with each replica's KPI JSON as its
output, and the ``GetServiceStatus`` answers must have the same shape.

Kubernetes side: real kube-apiserver and controller-manager (the Job
controller creates the pods), the operator as its ServiceAccount with the
documented Role, real Files and orchestrator processes. There is no kubelet,
so **the test plays the kubelet**: for each Job pod it runs the pod's init
container (``dtpoc-fetch-inputs``, which downloads the workbook from Files)
and its main container (``python -m histolab``) as processes here, with the
pod's environment resolved and its ``/input`` and ``/output`` mounts mapped to
local folders (``/output`` = ``<operator output root>/<service id>/<index>``,
the subPath the operator collects), then reports the exit code through
``kubelet_double``. Local side: nothing is a double.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from tests.e2e.localrun import SAMPLE
from tests.operator.helpers import INIT_IMAGE, OUTPUT_PVC
from tests.realdeps.kubelet_double import KubeletDouble

pytestmark = pytest.mark.slow

REPS = 2
SAMPLE_SHA256 = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
RUN_TIMEOUT = 240.0
"""Two short simulations on a shared two-core machine, plus output collection."""

SERVICE_ID_LABEL = "dtpoc.eng.cam.ac.uk/service-id"


def launch_request(file_id: str) -> orchestrator_pb2.LaunchServiceRequest:
    """The one launch body both runtimes get."""
    return orchestrator_pb2.LaunchServiceRequest(
        image="dtpoc-histolab",
        version="local",
        description="runtimes agree",
        env={"SIM_HOURS": "48", "INPUT_EXCEL_FILE": "/input/input.xlsx"},
        mount_files={file_id: "input.xlsx"},
        ana=orchestrator_pb2.AnalyticsOptions(job_type="ondemand", reps=REPS),
        command=[sys.executable, "-m", "histolab"],
    )


def wait_succeeded(
    orchestrator: runtimes.Orchestrator, service_id: str, what: str, details: Callable[[], str]
) -> dict[str, Any]:
    """Until the status says succeeded with every replica's outputs collected."""
    last: list[dict[str, Any]] = [{}]

    def check() -> dict[str, Any] | None:
        last[0] = runtimes.status_dict(orchestrator.stub, service_id)
        status = last[0]
        final = status.get("phase") in ("succeeded", "failed", "terminated")
        collected = all(r.get("outputs_collected") for r in status.get("replicas", []))
        return status if final and collected else None

    status: dict[str, Any] = waiting.wait_for(
        check,
        timeout=RUN_TIMEOUT,
        what=f"{what}: service {service_id} final with outputs collected",
        details=lambda: f"last status: {last[0]}\n{details()}",
    )
    assert status["phase"] == "succeeded", status
    return status


def check_outputs(orchestrator: runtimes.Orchestrator, service_id: str) -> list[dict[str, Any]]:
    """Outputs 0..REPS-1 are the KPI JSON of their own replica, each with its own seed."""
    outputs = [runtimes.output_of(orchestrator.stub, service_id, idx) for idx in range(REPS)]
    for idx, kpis in enumerate(outputs):
        assert isinstance(kpis, dict), kpis
        assert kpis["schema"] == "dtpoc.histolab.kpis/v1"
        assert kpis["replica_index"] == idx
        assert kpis["sim_hours"] == 48
        assert kpis["input"]["sha256"] == SAMPLE_SHA256, "the replica read the uploaded workbook"
    assert len({o["seed"] for o in outputs}) == REPS, "each replica runs its own seed"
    return outputs


def shape(value: Any) -> Any:
    """The keys of a status, recursively; list entries by shape, scalars by type name."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def test_kubernetes_and_local_runtimes_show_users_the_same_service(
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
        file_id = runtimes.upload(files, SAMPLE, "input.xlsx")

    # --- Kubernetes ---------------------------------------------------------------------------
    install_analytics_crd(kube)
    kube_orchestrator = orchestrator_server_factory(
        files_address=files_server.address,
        backend="kubernetes",
        kubeconfig_path=kube.kubeconfig_path,
        namespace=kube_namespace,
    )
    kube_output_root = tmp_path / "kube-outputs"
    kube_operator = operator_process(
        runtime="kubernetes",
        kubeconfig=operator_kubeconfig(kube, kube_namespace, tmp_path / "operator.kubeconfig"),
        namespace=kube_namespace,
        files_address=files_server.address,
        output_root=kube_output_root,
        env={
            "DTPOC_OPERATOR_IMAGE": INIT_IMAGE,
            "DTPOC_OPERATOR_OUTPUT_PVC": OUTPUT_PVC,
            "DTPOC_OPERATOR_RESYNC_SECONDS": "5",
        },
    )
    kube_client = runtimes.Orchestrator.open(kube_orchestrator.address)
    try:
        kube_id = kube_client.stub.LaunchService(
            launch_request(file_id), timeout=runtimes.RPC_TIMEOUT
        ).id

        def job_name() -> str | None:
            answer = kube.request(
                "GET",
                f"/apis/batch/v1/namespaces/{kube_namespace}/jobs"
                f"?labelSelector={SERVICE_ID_LABEL.replace('/', '%2F')}%3D{kube_id}",
            )
            items = answer.get("items") or []
            return str(items[0]["metadata"]["name"]) if items else None

        job = waiting.wait_for(
            job_name,
            timeout=60,
            what=f"the Job of service {kube_id}",
            details=lambda: kube_operator.process.log_tail(30),
        )
        runs = runtimes.play_kubelet_for_job(
            kubelet_double,
            kube_namespace,
            job,
            reps=REPS,
            output_root=kube_output_root,
            workdir=tmp_path / "kubelet",
            timeout=60,
        )
        assert sorted(r.index for r in runs) == list(range(REPS))
        for run in runs:
            assert run.env["REPLICA_INDEX"] == str(run.index)
            attempt = kube_output_root / kube_id / str(run.index) / run.name  # the pod's own
            assert run.env["OUTPUT_FOLDER"] == str(attempt)
        kube_status = wait_succeeded(
            kube_client, kube_id, "kubernetes", lambda: kube_operator.process.log_tail(30)
        )
        kube_outputs = check_outputs(kube_client, kube_id)
    finally:
        kube_client.channel.close()

    # --- local --------------------------------------------------------------------------------
    local_orchestrator = orchestrator_server_factory(
        files_address=files_server.address, backend="local"
    )
    local_operator = operator_process(
        runtime="local",
        namespace=local_orchestrator.namespace,
        files_address=files_server.address,
        output_root=tmp_path / "local-outputs",
        mongodb_uri=local_orchestrator.env["DTPOC_MONGODB_URI"],
        local_database=local_orchestrator.database,
        env={"DTPOC_OPERATOR_LOCAL_POLL_SECONDS": "0.3"},
    )
    local_client = runtimes.Orchestrator.open(local_orchestrator.address)
    try:
        local_id = local_client.stub.LaunchService(
            launch_request(file_id), timeout=runtimes.RPC_TIMEOUT
        ).id
        local_status = wait_succeeded(
            local_client, local_id, "local", lambda: local_operator.process.log_tail(30)
        )
        local_outputs = check_outputs(local_client, local_id)
    finally:
        local_client.channel.close()

    # --- what users see -----------------------------------------------------------------------
    print("kubernetes status shape:", json.dumps(shape(kube_status), indent=1))
    print("local status shape:", json.dumps(shape(local_status), indent=1))
    print("kubernetes status:", json.dumps(kube_status, indent=1))
    print("local status:", json.dumps(local_status, indent=1))

    # MessageToDict leaves out proto3 zeros (failed_runs, active_runs, replica 0's index)
    # in both runtimes alike, so an absent count reads as 0.
    for status in (kube_status, local_status):
        counts = {
            k: status.get(k, 0)
            for k in ("succeeded_runs", "total_runs", "failed_runs", "active_runs")
        }
        assert counts == {
            "succeeded_runs": REPS,
            "total_runs": REPS,
            "failed_runs": 0,
            "active_runs": 0,
        }, status
        assert (status["status"], status["phase"]) == ("ok", "succeeded"), status
    assert set(kube_status) == set(local_status), (
        f"top-level keys differ: only kubernetes {set(kube_status) - set(local_status)}, "
        f"only local {set(local_status) - set(kube_status)}"
    )
    assert len(kube_status["replicas"]) == len(local_status["replicas"]) == REPS
    assert len(kube_status["output_files"]) == len(local_status["output_files"]) == REPS
    for kube_replica, local_replica in zip(
        sorted(kube_status["replicas"], key=lambda r: r.get("index", 0)),
        sorted(local_status["replicas"], key=lambda r: r.get("index", 0)),
        strict=True,
    ):
        assert set(kube_replica) == set(local_replica), (
            f"replica keys differ: only kubernetes {set(kube_replica) - set(local_replica)}, "
            f"only local {set(local_replica) - set(kube_replica)}"
        )
    conditions = [
        {(c["type"], c["status"], c.get("reason")) for c in s["conditions"]}
        for s in (kube_status, local_status)
    ]
    assert conditions[0] == conditions[1], conditions
    assert shape(kube_status) == shape(local_status), "the status documents differ in shape"
    assert [o["replica_index"] for o in kube_outputs] == [o["replica_index"] for o in local_outputs]
    assert set(kube_outputs[0]) == set(local_outputs[0]), "the KPI documents have one schema"
