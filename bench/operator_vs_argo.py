"""dtpoc's operator against Argo Workflows' workflow-controller, on one apiserver, in one run.

Starts the local control plane (etcd, kube-apiserver with an audit log,
kube-controller-manager; :mod:`dtpoc_local.controlplane`), then runs two
phases one after the other, each in a namespace of its own and with only its
controller running:

- **dtpoc**: ``dtpoc-operator`` (Kubernetes runtime, as its ServiceAccount
  with exactly ``infra/rbac/operator-role.yaml``) and N ondemand Analytics of
  3 replicas: the operator creates one Indexed Job each, the Job controller
  of kube-controller-manager creates the 3 pods;
- **argo**: Argo's ``workflow-controller`` (``tools/testbin/build argo``,
  namespaced, as its ServiceAccount with the Role of Argo's namespace
  install, its own defaults otherwise) and N Workflows of one container
  template fanned out to 3 parallel pods (``withSequence: {count: 3}``).

The same client creates the N objects of a phase as fast as the apiserver
takes them; a watch records when each pod object appears. No kubelet runs,
so pods stay Pending: the figures are the controllers' and the apiserver's.

Per phase it prints: create -> first pod and create -> all 3 pods (p50, p99,
max), create -> Job (dtpoc), apiserver requests per run from the audit log
by user (the controller's ServiceAccount; for dtpoc also the Job
controller's, which does the pod work Argo's controller does itself), CPU
seconds and peak RSS of the controller (``/proc``), and the CPU of the
apiserver, etcd and kube-controller-manager. Then the ratios dtpoc / Argo.

Both controllers are client-rate-limited by default (kube-controller-manager
and Argo's controller: 20 QPS, burst 30); ``--client-qps N`` gives both N
(burst 2N), to see them when the apiserver, not their clients, sets the pace.

Run: ``uv run python -m bench.operator_vs_argo [--count 200] [--workers 8]
[--only dtpoc|argo] [--client-qps N]``. ``--node`` measures instead create ->
all replicas succeeded on the real node, for a trivial container
(:mod:`bench.argo_node`). The machine is shared; run it twice
before trusting a figure (the load average is printed first).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.watch.watch import iter_resp_lines

from dtpoc_common import analytics
from dtpoc_local import controlplane, ports, processes, waiting
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers import operator as operator_server

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 600.0
#: How long the operator may take to start (its imports, on a loaded machine).
READY_TIMEOUT = 300.0
REPLICAS = 3
#: Before a phase, its controller's start-up requests must have stopped this long.
QUIET_SECONDS = 3.0
#: A phase's requests are counted from its first create to this long after its last pod
#: appeared (the status writes that follow the pods; the operator's 30 s resync, if the
#: window is that long, is its cost too).
SETTLE_SECONDS = 5.0
JOB_CONTROLLER_USER = "system:serviceaccount:kube-system:job-controller"
ARGO_SERVICE_ACCOUNT = "argo"
ARGO_CONFIGMAP = "workflow-controller-configmap"
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    # One event per request: when its answer is complete (a watch: when it ends).
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "Metadata"}],
}
IMAGE = "ghcr.io/example/sim"


def audit_to(workdir: Path) -> tuple[Path, tuple[str, ...]]:
    """The apiserver arguments that write AUDIT_POLICY's log into ``workdir``,
    and that log's path."""
    policy = workdir / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    audit_path = workdir / "audit.log"
    return audit_path, (
        f"--audit-policy-file={policy}",
        f"--audit-log-path={audit_path}",
        "--audit-log-format=json",
        "--audit-log-maxsize=0",
    )


# --- measurements ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Latency:
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        return cls(statistics.median(seconds), percentile(seconds, 0.99), max(seconds))

    def __str__(self) -> str:
        return f"p50 {self.p50:6.2f} s  p99 {self.p99:6.2f} s  max {self.max:6.2f} s"


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float
    peak_rss_mib: float


def proc_sample(pid: int) -> ProcSample:
    """CPU (user + system, children included) and peak RSS (VmHWM) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    hwm_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm_kib = int(line.split()[1])
    return ProcSample(ticks / os.sysconf("SC_CLK_TCK"), hwm_kib / 1024)


class Watch:
    """First time each object of a namespaced collection is seen, by a key from its labels."""

    def __init__(self, kube: KubeCluster, path: str, key: Callable[[dict[str, Any]], str]) -> None:
        self._key = key
        self.first: dict[str, dict[str, float]] = collections.defaultdict(dict)
        api = kube.api_client()
        serialized = api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=[("watch", "true"), ("timeoutSeconds", str(int(DEADLINE)))],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        # The call returns once the apiserver answered: the watch is open before any create.
        self._response = api.call_api(*serialized).response
        # Daemon: it ends with its stream (the plane stops) or the process.
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in iter_resp_lines(self._response):  # type: ignore[no-untyped-call]
                seen = time.time()
                obj = json.loads(line).get("object") or {}
                name = (obj.get("metadata") or {}).get("name")
                run = self._key(obj)
                if name and run:
                    self.first[run].setdefault(name, seen)
        except urllib3.exceptions.ProtocolError:
            return  # the apiserver stopped: the bench is over


class AuditLog:
    """Requests the apiserver answered, read from its audit log (JSON lines)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def events(self, *, since: float) -> Iterator[dict[str, Any]]:
        with self._path.open() as handle:
            for line in handle:
                event = json.loads(line)
                if _wall(event["requestReceivedTimestamp"]) >= since:
                    yield event

    def count_by_user(self, *, since: float, until: float) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        for event in self.events(since=since):
            if _wall(event["requestReceivedTimestamp"]) <= until:
                counts[event["user"]["username"]] += 1
        return counts

    def by_request(
        self, *, since: float, until: float, users: set[str]
    ) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        for event in self.events(since=since):
            if (
                event["user"]["username"] in users
                and _wall(event["requestReceivedTimestamp"]) <= until
            ):
                ref = event.get("objectRef") or {}
                what = ref.get("resource", "?") + (
                    "/" + ref["subresource"] if ref.get("subresource") else ""
                )
                counts[f"{event['verb']} {what}"] += 1
        return counts

    def wait_quiet(self, *, since: float, users: set[str]) -> float:
        """Wall time of the users' last request once they have been quiet QUIET_SECONDS
        (watches aside: they last)."""

        def last() -> float:
            times = [
                _wall(e["requestReceivedTimestamp"])
                for e in self.events(since=since)
                if e["user"]["username"] in users and e["verb"] != "watch"
            ]
            return max(times, default=since)

        waiting.wait_for(
            lambda: time.time() - last() >= QUIET_SECONDS,
            timeout=DEADLINE,
            interval=0.5,
            what="the controllers to stop sending requests",
        )
        return last()


def _wall(timestamp: str) -> float:
    # 2026-12-01T12:00:00.123456Z
    from datetime import datetime

    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


# --- one phase -------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    count: int
    create_seconds: float
    first_pod: Latency
    all_pods: Latency
    all_pods_after: float
    requests: collections.Counter[str]
    controller_users: set[str]
    by_request: collections.Counter[str]
    controller: ProcSample
    others: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Latency] = field(default_factory=dict)

    @property
    def controller_requests(self) -> int:
        return sum(self.requests[u] for u in self.controller_users)


@dataclass
class Phase:
    """What differs between the two controllers: their objects and who counts as them."""

    name: str
    namespace: str
    pid: int
    users: set[str]
    collection: str
    body: Callable[[str], dict[str, Any]]
    pod_run: Callable[[dict[str, Any]], str]
    children: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = field(default_factory=dict)


def create_burst(
    kube: KubeCluster,
    collection: str,
    body: Callable[[str], dict[str, Any]],
    names: list[str],
) -> tuple[float, dict[str, float], float]:
    """POST ``body(name)`` to ``collection`` for each name, one after the other: when the
    burst began, when each create was sent, and the seconds it took to send them all."""
    since = time.time()
    created: dict[str, float] = {}
    for name in names:
        created[name] = time.time()
        kube.request("POST", collection, body=body(name))
    return since, created, time.time() - since


def run_phase(
    kube: KubeCluster, plane: controlplane.ControlPlane, audit: AuditLog, phase: Phase, count: int
) -> PhaseResult:
    ns = phase.namespace
    pods = Watch(kube, f"/api/v1/namespaces/{ns}/pods", phase.pod_run)
    children = {n: Watch(kube, path, key) for n, (path, key) in phase.children.items()}
    names = [f"r{uuid.uuid4().hex[:20]}" for _ in range(count)]
    servers = {
        "kube-apiserver": plane.apiserver.pid,
        "etcd": plane.etcd.pid,
        "kube-controller-manager": plane.controller_manager.pid,
    }
    # The controller's start-up (informer lists, discovery) is not the burst's.
    audit.wait_quiet(since=time.time() - DEADLINE, users=phase.users)
    before = proc_sample(phase.pid)
    others_before = {k: proc_sample(pid).cpu_seconds for k, pid in servers.items()}
    since, created, create_seconds = create_burst(kube, phase.collection, phase.body, names)
    waiting.wait_for(
        lambda: all(len(pods.first.get(n, {})) >= REPLICAS for n in names),
        timeout=DEADLINE,
        interval=0.2,
        what=f"{count * REPLICAS} pods of {phase.name}",
    )
    users = phase.users
    last_pod = max(max(pods.first[n].values()) for n in names)
    time.sleep(max(0.0, last_pod + SETTLE_SECONDS - time.time()))
    until = last_pod + SETTLE_SECONDS
    after = proc_sample(phase.pid)
    firsts = {n: sorted(pods.first[n].values()) for n in names}
    return PhaseResult(
        name=phase.name,
        count=count,
        create_seconds=create_seconds,
        first_pod=Latency.of([firsts[n][0] - created[n] for n in names]),
        all_pods=Latency.of([firsts[n][REPLICAS - 1] - created[n] for n in names]),
        all_pods_after=max(firsts[n][REPLICAS - 1] for n in names) - since,
        requests=audit.count_by_user(since=since, until=until),
        controller_users=users,
        by_request=audit.by_request(since=since, until=until, users=users),
        controller=ProcSample(after.cpu_seconds - before.cpu_seconds, after.peak_rss_mib),
        others={k: proc_sample(pid).cpu_seconds - others_before[k] for k, pid in servers.items()},
        extra={
            f"create -> {n}": Latency.of([min(w.first[r].values()) - created[r] for r in names])
            for n, w in children.items()
        },
    )


# --- dtpoc -----------------------------------------------------------------------------------


def dtpoc_phase(
    kube: KubeCluster, workdir: Path, *, workers: int
) -> tuple[Phase, operator_server.OperatorProcess]:
    operator_server.install_analytics_crd(kube)
    ns = kube.create_namespace(prefix="bench-dtpoc")
    kubeconfig = operator_server.operator_kubeconfig(kube, ns, workdir / "operator.kubeconfig")
    (workdir / "outputs").mkdir(exist_ok=True)
    operator = operator_server.start_operator(
        {
            "DTPOC_OPERATOR_RUNTIME": "kubernetes",
            "DTPOC_OPERATOR_KUBECONFIG": str(kubeconfig),
            "DTPOC_OPERATOR_NAMESPACES": ns,
            "DTPOC_OPERATOR_FILES_ADDRESS": "127.0.0.1:1",
            "DTPOC_OPERATOR_OUTPUT_ROOT": str(workdir / "outputs"),
            "DTPOC_OPERATOR_MAX_PARALLEL_RECONCILES": str(workers),
            "DTPOC_OPERATOR_LOG_LEVEL": "WARNING",
        },
        workdir=workdir,
        wait_ready=False,
    )
    # Importing the operator alone takes a minute or more on a loaded machine.
    operator.wait_ready(timeout=READY_TIMEOUT)

    def body(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "eng.cam.ac.uk/v1alpha1",
            "kind": "Analytics",
            # As the orchestrator creates them: with the operator's finalizer.
            "metadata": {"name": name, "finalizers": [analytics.FINALIZER]},
            "spec": {"image": IMAGE, "jobType": "ondemand", "reps": REPLICAS, "command": ["run"]},
        }

    def service_of(obj: dict[str, Any]) -> str:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return str(labels.get("dtpoc.eng.cam.ac.uk/service-id") or "")

    phase = Phase(
        name="dtpoc",
        namespace=ns,
        pid=operator.pid,
        users={
            f"system:serviceaccount:{ns}:{operator_server.SERVICE_ACCOUNT}",
            JOB_CONTROLLER_USER,
        },
        collection=f"/apis/eng.cam.ac.uk/v1alpha1/namespaces/{ns}/analytics",
        body=body,
        pod_run=service_of,
        children={"Job": (f"/apis/batch/v1/namespaces/{ns}/jobs", service_of)},
    )
    return phase, operator


# --- Argo ------------------------------------------------------------------------------------


def argo_paths() -> tuple[Path, Path]:
    """The controller binary and its manifests folder (built by ``tools/testbin/build argo``)."""
    binary = Path(
        subprocess.run(
            [str(ROOT / "tools" / "testbin" / "build"), "--path", "argo-workflow-controller"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: run `tools/testbin/build argo` first")
    return binary, binary.parent


def install_argo(kube: KubeCluster, manifests: Path, ns: str, *, metrics_port: int) -> Path:
    """Argo's CRDs, its namespaced Role for a ServiceAccount, its configmap; a kubeconfig."""
    for crd in sorted((manifests / "crds").glob("argoproj.io_*.yaml")):
        document = yaml.safe_load(crd.read_text())
        try:
            kube.create_crd(document)
        except k8s.ApiException as error:
            if error.status != 409:
                raise
    kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        body={"metadata": {"name": ARGO_SERVICE_ACCOUNT}},
    )
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    for name, plural in (("role", "roles"), ("rolebinding", "rolebindings")):
        document = yaml.safe_load(
            (manifests / "rbac" / f"workflow-controller-{name}.yaml").read_text()
        )
        for subject in document.get("subjects") or []:
            subject["namespace"] = ns
        kube.request("POST", f"{rbac}/{plural}", body=document)
    config = {"metricsConfig": {"port": metrics_port, "secure": False}}
    kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        body={
            "metadata": {"name": ARGO_CONFIGMAP},
            "data": {k: yaml.safe_dump(v) for k, v in config.items()},
        },
    )
    return service_account_kubeconfig(kube, ns, ARGO_SERVICE_ACCOUNT, kube_workdir(kube) / "argo")


def kube_workdir(kube: KubeCluster) -> Path:
    return kube.kubeconfig_path.parent


def service_account_kubeconfig(kube: KubeCluster, ns: str, account: str, path: Path) -> Path:
    answer = kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token",
        body={"spec": {"expirationSeconds": 7200}},
    )
    admin = yaml.safe_load(kube.kubeconfig_path.read_text())
    cluster = dict(admin["clusters"][0]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": answer["status"]["token"]}}],
        "contexts": [
            {"name": "bench", "context": {"cluster": "bench", "user": account, "namespace": ns}}
        ],
        "current-context": "bench",
    }
    path.mkdir(parents=True, exist_ok=True)
    target = path / "kubeconfig"
    target.write_text(yaml.safe_dump(config))
    return target


def argo_workflow(name: str) -> dict[str, Any]:
    """One container template fanned out to 3 parallel pods: the equivalent of an Analytics."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "steps": [
                        [
                            {
                                "name": "replica",
                                "template": "sim",
                                "withSequence": {"count": str(REPLICAS)},
                            }
                        ]
                    ],
                },
                {"name": "sim", "container": {"image": IMAGE, "command": ["run"]}},
            ],
        },
    }


def start_argo_controller(
    binary: Path,
    *,
    kubeconfig: Path,
    namespace: str,
    log_path: Path,
    extra_args: Sequence[str],
) -> processes.ServerProcess:
    """Argo's workflow-controller, namespaced to ``namespace``, started and healthy."""
    controller = processes.ServerProcess(
        name="workflow-controller",
        argv=[
            str(binary),
            f"--kubeconfig={kubeconfig}",
            "--namespaced",
            f"--managed-namespace={namespace}",
            f"--namespace={namespace}",
            f"--configmap={ARGO_CONFIGMAP}",
            "--loglevel=warn",
            *extra_args,
        ],
        log_path=log_path,
        env={**os.environ, "LEADER_ELECTION_DISABLE": "true"},
    ).start()
    try:
        controller.wait_ready(
            lambda: _http_ok("http://127.0.0.1:6060/healthz"),
            timeout=READY_TIMEOUT,
            what="Argo /healthz",
        )
    except BaseException:
        controller.stop()
        raise
    return controller


def argo_phase(
    kube: KubeCluster, workdir: Path, *, client_qps: int
) -> tuple[Phase, processes.ServerProcess]:
    binary, manifests = argo_paths()
    ns = kube.create_namespace(prefix="bench-argo")
    kubeconfig = install_argo(kube, manifests, ns, metrics_port=ports.free_port())
    controller = start_argo_controller(
        binary,
        kubeconfig=kubeconfig,
        namespace=ns,
        log_path=workdir / "workflow-controller.log",
        extra_args=[
            f"--executor-image={IMAGE}-argoexec",
            *((f"--qps={client_qps}", f"--burst={2 * client_qps}") if client_qps else ()),
        ],
    )

    def body(name: str) -> dict[str, Any]:
        return argo_workflow(name)

    def workflow_of(obj: dict[str, Any]) -> str:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return str(labels.get("workflows.argoproj.io/workflow") or "")

    phase = Phase(
        name="argo",
        namespace=ns,
        pid=controller.pid,
        users={f"system:serviceaccount:{ns}:{ARGO_SERVICE_ACCOUNT}"},
        collection=f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows",
        body=body,
        pod_run=workflow_of,
    )
    return phase, controller


def _http_ok(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


# --- report ----------------------------------------------------------------------------------


def print_phase(result: PhaseResult) -> None:
    n = result.count
    print(f"\n{result.name}: {n} runs of {REPLICAS} replicas")
    print(f"  creates sent in                {result.create_seconds:7.2f} s")
    print(
        f"  all pods present after         {result.all_pods_after:7.2f} s (from the first create)"
    )
    print(f"  create -> first pod            {result.first_pod}")
    print(f"  create -> all {REPLICAS} pods             {result.all_pods}")
    for what, latency in result.extra.items():
        print(f"  {what:<30} {latency}")
    total = result.controller_requests
    print(f"  apiserver requests per run     {total / n:7.2f} ({total} in all)")
    for user in sorted(result.controller_users):
        print(f"    {user:<60} {result.requests[user]:6d}")
    others = sum(v for u, v in result.requests.items() if u not in result.controller_users)
    print(f"    (others in the window, not counted: {others})")
    for what, number in result.by_request.most_common(12):
        print(f"      {what:<40} {number:6d}")
    print(f"  controller CPU                 {result.controller.cpu_seconds:7.2f} s")
    print(f"  controller peak RSS            {result.controller.peak_rss_mib:7.1f} MiB")
    for name, seconds in result.others.items():
        print(f"  {name + ' CPU':<30} {seconds:7.2f} s")


def print_ratios(dtpoc: PhaseResult, argo: PhaseResult) -> None:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:6.2f}x" if b else "   n/a"

    print("\ndtpoc / Argo (below 1: dtpoc is faster or cheaper)")
    rows = [
        ("create -> first pod p50", dtpoc.first_pod.p50, argo.first_pod.p50),
        ("create -> first pod p99", dtpoc.first_pod.p99, argo.first_pod.p99),
        ("create -> all pods p50", dtpoc.all_pods.p50, argo.all_pods.p50),
        ("create -> all pods p99 (target <= 0.67)", dtpoc.all_pods.p99, argo.all_pods.p99),
        ("create -> all pods max", dtpoc.all_pods.max, argo.all_pods.max),
        (
            "apiserver requests per run (target <= 1)",
            dtpoc.controller_requests / dtpoc.count,
            argo.controller_requests / argo.count,
        ),
        ("controller CPU seconds", dtpoc.controller.cpu_seconds, argo.controller.cpu_seconds),
        ("controller peak RSS", dtpoc.controller.peak_rss_mib, argo.controller.peak_rss_mib),
    ]
    for what, a, b in rows:
        print(f"  {what:<42} {ratio(a, b)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8, help="dtpoc's max parallel reconciles")
    parser.add_argument("--only", choices=("dtpoc", "argo"), help="run one phase")
    parser.add_argument(
        "--client-qps",
        type=int,
        default=0,
        help="client rate limit of kube-controller-manager and of Argo's controller alike "
        "(burst twice that); 0: each one's default (20 QPS, burst 30)",
    )
    parser.add_argument(
        "--node",
        action="store_true",
        help="on the real node (make cluster's, node only): create -> all replicas succeeded "
        "for a trivial container (bench/argo_node.py; inside flock /tmp/dtpoc-cluster.lock)",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average before the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    if args.node:
        from bench import argo_node

        argo_node.run_on_node(count=args.count, only=args.only)
        return
    with tempfile.TemporaryDirectory(prefix="bench-vs-argo-") as tmp:
        workdir = Path(tmp)
        audit_path, audit_args = audit_to(workdir)
        options = controlplane.ControlPlaneOptions(
            extra_apiserver_args=audit_args,
            extra_controller_manager_args=(
                (f"--kube-api-qps={args.client_qps}", f"--kube-api-burst={2 * args.client_qps}")
                if args.client_qps
                else ()
            ),
        )
        print("starting the control plane...", flush=True)
        plane = controlplane.start_control_plane(workdir / "kube", options)
        kube = KubeCluster(kubeconfig_path=plane.admin_kubeconfig, managed=True)
        audit = AuditLog(audit_path)
        results: dict[str, PhaseResult] = {}
        try:
            if args.only in (None, "dtpoc"):
                phase, operator = dtpoc_phase(kube, workdir, workers=args.workers)
                try:
                    results["dtpoc"] = run_phase(kube, plane, audit, phase, args.count)
                finally:
                    operator.stop()
                print_phase(results["dtpoc"])
            if args.only in (None, "argo"):
                phase, controller = argo_phase(kube, workdir, client_qps=args.client_qps)
                try:
                    results["argo"] = run_phase(kube, plane, audit, phase, args.count)
                finally:
                    controller.stop()
                print_phase(results["argo"])
            if len(results) == 2:
                print_ratios(results["dtpoc"], results["argo"])
        finally:
            plane.stop()


if __name__ == "__main__":
    main()
