"""``bench.operator_vs_argo --node``: create -> all replicas succeeded, on the real node.

The one-node Kubernetes of ``make cluster`` (:mod:`tools.cluster`, node only:
no chart, in ``var/cluster-bench``) runs the pods; both controllers run on
the host against its apiserver, one phase after the other, each in a
namespace of its own:

- **dtpoc**: ``dtpoc-operator`` (Kubernetes runtime, its ServiceAccount and
  Role) with a real Files service (FerretDB + ``dtpoc-files`` on loopback),
  so it collects every replica's log and outputs as in production; the
  replicas' output claim ``dtpoc-outputs`` is bound to a local volume whose
  folder is the operator's output root. N ondemand Analytics of 3 replicas.
- **argo**: ``workflow-controller`` as in the control-plane bench, with
  ``--executor-image`` the local ``argoexec`` image (``tools/testbin/build
  argo``, imported into the node's containerd); the pods' ServiceAccount has
  the emissary executor's Role. N Workflows of 3 parallel pods.

The trivial container of both is the node's own pause image running
``/pause -v`` (prints its version, exits 0; static, no shell). Argo's pods
add its init container (copies ``argoexec`` into a shared volume) and its
``wait`` sidecar; the main container runs ``argoexec emissary -- /pause -v``.

Measured per run: create -> all 3 pods Succeeded (as the apiserver shows the
pods), and create -> the run done as its controller records it (Analytics
``status.phase: succeeded``, which needs the logs and outputs stored in Files;
Workflow ``status.phase: Succeeded``), p50 / p99 / max, and the wall time
from the first create to the last run done.

The node is one per machine: run it inside ``flock /tmp/dtpoc-cluster.lock``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import operator_vs_argo as bench
from dtpoc_common import analytics, grpcauth
from dtpoc_local import binaries, ferretdb, ports, waiting
from dtpoc_local.credentials import credentials
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers import files as files_server
from dtpoc_local.servers import operator as operator_server
from tools.cluster import addons, cluster, layout

STATE = layout.REPO / "var" / "cluster-bench"
#: The trivial container: the node's sandbox image, asked for its version.
TRIVIAL_COMMAND = ["/pause", "-v"]
OUTPUT_CLAIM = "dtpoc-outputs"
EXECUTOR_ROLE = "executor"
RUN_DEADLINE = 900.0

Obj = dict[str, Any]


@dataclass(frozen=True)
class NodeResult:
    name: str
    count: int
    create_seconds: float
    pods_succeeded: bench.Latency
    run_done: bench.Latency
    wall_seconds: float
    controller: bench.ProcSample


def _build_script(*args: str) -> str:
    return subprocess.run(
        [str(binaries.BUILD_SCRIPT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def argoexec_archive() -> Path:
    archive = Path(_build_script("--path", "argoexec")).with_name("argoexec.oci.tar")
    if not archive.exists():
        raise SystemExit(f"{archive} is missing: run `tools/testbin/build argo` first")
    return archive


def _succeeded_pod_run(label: str) -> Callable[[Obj], str]:
    """A Watch key: the pod's run (from ``label``) once the pod has Succeeded, else ''."""

    def key(obj: Obj) -> str:
        if (obj.get("status") or {}).get("phase") != "Succeeded":
            return ""
        return str(((obj.get("metadata") or {}).get("labels") or {}).get(label) or "")

    return key


def _done_run(phase: str) -> Callable[[Obj], str]:
    """A Watch key: the object's own name once its ``status.phase`` is ``phase``, else ''."""

    def key(obj: Obj) -> str:
        if (obj.get("status") or {}).get("phase") != phase:
            return ""
        return str((obj.get("metadata") or {}).get("name") or "")

    return key


@dataclass
class NodePhase:
    name: str
    namespace: str
    pid: int
    collection: str
    body: Callable[[str], Obj]
    pod_label: str
    done_phase: str


def run_node_phase(kube: KubeCluster, phase: NodePhase, count: int) -> NodeResult:
    ns = phase.namespace
    pods = bench.Watch(kube, f"/api/v1/namespaces/{ns}/pods", _succeeded_pod_run(phase.pod_label))
    done = bench.Watch(kube, phase.collection, _done_run(phase.done_phase))
    names = [f"r{uuid.uuid4().hex[:20]}" for _ in range(count)]
    before = bench.proc_sample(phase.pid)
    since, created, create_seconds = bench.create_burst(kube, phase.collection, phase.body, names)
    waiting.wait_for(
        lambda: (
            all(n in done.first for n in names)
            and all(len(pods.first.get(n, {})) >= bench.REPLICAS for n in names)
        ),
        timeout=RUN_DEADLINE,
        interval=0.5,
        what=f"{count} runs of {phase.name} done",
    )
    after = bench.proc_sample(phase.pid)
    succeeded = {n: sorted(pods.first[n].values())[bench.REPLICAS - 1] for n in names}
    finished = {n: done.first[n][n] for n in names}
    return NodeResult(
        name=phase.name,
        count=count,
        create_seconds=create_seconds,
        pods_succeeded=bench.Latency.of([succeeded[n] - created[n] for n in names]),
        run_done=bench.Latency.of([finished[n] - created[n] for n in names]),
        wall_seconds=max(finished.values()) - since,
        controller=bench.ProcSample(after.cpu_seconds - before.cpu_seconds, after.peak_rss_mib),
    )


# --- dtpoc -----------------------------------------------------------------------------------


def _output_volume(kube: KubeCluster, ns: str, folder: Path) -> None:
    """A local volume on ``folder`` bound to the namespace's ``dtpoc-outputs`` claim."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = addons.local_volume(0, folder)
    volume["metadata"]["name"] = f"{ns}-outputs"
    volume["spec"]["claimRef"] = {"namespace": ns, "name": OUTPUT_CLAIM}
    kube.request("POST", "/api/v1/persistentvolumes", body=volume)
    claim = {
        "metadata": {"name": OUTPUT_CLAIM},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": layout.STORAGE_CLASS,
            "volumeName": volume["metadata"]["name"],
            "resources": {"requests": {"storage": addons.VOLUME_CAPACITY}},
        },
    }
    kube.request("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", body=claim)


def dtpoc_node_phase(
    kube: KubeCluster, workdir: Path, *, files_address: str, stack: list[Any]
) -> NodePhase:
    operator_server.install_analytics_crd(kube)
    ns = kube.create_namespace(prefix="bench-dtpoc")
    outputs = workdir / "outputs"
    _output_volume(kube, ns, outputs)
    kubeconfig = operator_server.operator_kubeconfig(kube, ns, workdir / "operator.kubeconfig")
    operator = operator_server.start_operator(
        {
            "DTPOC_OPERATOR_RUNTIME": "kubernetes",
            "DTPOC_OPERATOR_KUBECONFIG": str(kubeconfig),
            "DTPOC_OPERATOR_NAMESPACES": ns,
            "DTPOC_OPERATOR_FILES_ADDRESS": files_address,
            "DTPOC_OPERATOR_OUTPUT_ROOT": str(outputs),
            "DTPOC_OPERATOR_GRPC_TOKEN_FILE": str(credentials().token_file(grpcauth.OPERATOR)),
            "DTPOC_OPERATOR_FETCH_KEY_FILE": str(credentials().fetch_key_file),
            "DTPOC_OPERATOR_LOG_LEVEL": "WARNING",
        },
        workdir=workdir,
        wait_ready=False,
    )
    stack.append(operator)
    operator.wait_ready(timeout=bench.READY_TIMEOUT)

    def body(name: str) -> Obj:
        return {
            "apiVersion": "eng.cam.ac.uk/v1alpha1",
            "kind": "Analytics",
            "metadata": {"name": name, "finalizers": [analytics.FINALIZER]},
            "spec": {
                "image": bench_pause_image().rsplit(":", 1)[0],
                "version": bench_pause_image().rsplit(":", 1)[1],
                "jobType": "ondemand",
                "reps": bench.REPLICAS,
                "command": TRIVIAL_COMMAND,
            },
        }

    return NodePhase(
        name="dtpoc",
        namespace=ns,
        pid=operator.pid,
        collection=f"/apis/eng.cam.ac.uk/v1alpha1/namespaces/{ns}/analytics",
        body=body,
        pod_label="dtpoc.eng.cam.ac.uk/service-id",
        done_phase="succeeded",
    )


@functools.cache
def bench_pause_image() -> str:
    return _build_script("--pause-image")


# --- Argo ------------------------------------------------------------------------------------


def _executor_role(kube: KubeCluster, ns: str) -> None:
    """The emissary executor's Role (Argo's quick-start), bound to the pods' ``default``."""
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    role = {
        "metadata": {"name": EXECUTOR_ROLE},
        "rules": [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowtaskresults"],
                "verbs": ["create", "patch"],
            }
        ],
    }
    kube.request("POST", f"{rbac}/roles", body=role)
    binding = {
        "metadata": {"name": f"{EXECUTOR_ROLE}-default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": EXECUTOR_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
    }
    kube.request("POST", f"{rbac}/rolebindings", body=binding)


def argo_node_phase(kube: KubeCluster, workdir: Path, *, stack: list[Any]) -> NodePhase:
    binary, manifests = bench.argo_paths()
    ns = kube.create_namespace(prefix="bench-argo")
    kubeconfig = bench.install_argo(kube, manifests, ns, metrics_port=ports.free_port())
    _executor_role(kube, ns)
    controller = bench.start_argo_controller(
        binary,
        kubeconfig=kubeconfig,
        namespace=ns,
        log_path=workdir / "workflow-controller.log",
        extra_args=[
            f"--executor-image={_build_script('--argoexec-image')}",
            "--executor-image-pull-policy=IfNotPresent",
        ],
    )
    stack.append(controller)

    def body(name: str) -> Obj:
        workflow = bench.argo_workflow(name)
        workflow["spec"]["templates"][1]["container"] = {
            "image": bench_pause_image(),
            "command": TRIVIAL_COMMAND,
        }
        return workflow

    return NodePhase(
        name="argo",
        namespace=ns,
        pid=controller.pid,
        collection=f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows",
        body=body,
        pod_label="workflows.argoproj.io/workflow",
        done_phase="Succeeded",
    )


# --- the run ---------------------------------------------------------------------------------


def print_node(result: NodeResult) -> None:
    print(f"\n{result.name} on the node: {result.count} runs of {bench.REPLICAS} replicas")
    rows = [
        ("creates sent in", f"{result.create_seconds:7.2f} s"),
        (f"create -> all {bench.REPLICAS} pods Succeeded", str(result.pods_succeeded)),
        ("create -> run done (its record)", str(result.run_done)),
        ("first create -> last run done", f"{result.wall_seconds:7.2f} s"),
        ("controller CPU", f"{result.controller.cpu_seconds:7.2f} s"),
        ("controller peak RSS", f"{result.controller.peak_rss_mib:7.1f} MiB"),
    ]
    for what, value in rows:
        print(f"  {what:<34} {value}", flush=True)


def print_node_ratios(dtpoc: NodeResult, argo: NodeResult) -> None:
    print("\ndtpoc / Argo on the node (below 1: dtpoc is faster)")
    rows = [
        ("all pods Succeeded p50", dtpoc.pods_succeeded.p50, argo.pods_succeeded.p50),
        ("all pods Succeeded p99", dtpoc.pods_succeeded.p99, argo.pods_succeeded.p99),
        ("run done p50", dtpoc.run_done.p50, argo.run_done.p50),
        ("run done p99", dtpoc.run_done.p99, argo.run_done.p99),
        ("wall time", dtpoc.wall_seconds, argo.wall_seconds),
        ("controller CPU seconds", dtpoc.controller.cpu_seconds, argo.controller.cpu_seconds),
    ]
    for what, a, b in rows:
        print(f"  {what:<42} {a / b:6.2f}x" if b else f"  {what:<42}    n/a")


def _stop_all(stack: list[Any]) -> None:
    for item in reversed(stack):
        item.stop()


def _phases(node: cluster.Node, workdir: Path, *, count: int, only: str | None) -> None:
    stack: list[Any] = []
    results: dict[str, NodeResult] = {}
    try:
        if only in (None, "dtpoc"):
            mongo = ferretdb.start_ferretdb(workdir=workdir / "ferretdb")
            stack.append(mongo)
            files = files_server.start_files_server(mongodb_uri=mongo.uri, workdir=workdir)
            stack.append(files)
            phase = dtpoc_node_phase(node.kube, workdir, files_address=files.address, stack=stack)
            results["dtpoc"] = run_node_phase(node.kube, phase, count)
            print_node(results["dtpoc"])
            stack.pop().stop()  # the operator: Argo's phase runs alone
        if only in (None, "argo"):
            phase = argo_node_phase(node.kube, workdir, stack=stack)
            results["argo"] = run_node_phase(node.kube, phase, count)
            print_node(results["argo"])
        if len(results) == 2:
            print_node_ratios(results["dtpoc"], results["argo"])
        load = os.getloadavg()
        print(f"\nload average after the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    finally:
        _stop_all(stack)


def run_on_node(*, count: int, only: str | None) -> None:
    """Start the node (argoexec imported), Files, then the two phases; print both;
    then remove the node as ``make cluster-down`` does."""
    lay = layout.Layout(state=STATE, images=layout.Layout.default().images)
    print("starting the node...", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-argo-node-") as tmp:
        try:
            node = cluster.start(lay, archives=[argoexec_archive()])
            print(f"node up in {time.monotonic() - started:.0f} s", flush=True)
            try:
                _phases(node, Path(tmp), count=count, only=only)
            finally:
                node.stop()
        finally:  # as make cluster-down, also after a start that failed
            cluster.clear_leftovers(lay)
            shutil.rmtree(STATE, ignore_errors=True)
