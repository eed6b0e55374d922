"""Operator throughput: 200 Analytics created at once against a real apiserver.

Starts the local control plane (etcd, kube-apiserver with an audit log,
kube-controller-manager from :mod:`dtpoc_local`), installs the CRD, runs
``dtpoc-operator`` as its ServiceAccount with exactly
``infra/rbac/operator-role.yaml``, then creates N ondemand Analytics (reps 3)
as fast as the apiserver takes them. A watch on Jobs records when each
service's Job appears.

Prints:

- time from the first create to all N Jobs present, and to all N statuses
  written (the operator's first full pass over every service);
- reconciles/s over that window (``dtpoc_operator_reconciles_total``), and
  reconciles per service (the cost of level-triggered reconciling: ~2-3 is
  one pass plus the events of its own children);
- p50 / p99 / max latency from an Analytics' create to its Job being present;
- the operator's apiserver requests per service, by verb and resource (from the
  audit log, the operator's ServiceAccount only), counted until every status is
  written.

The Analytics are created as the orchestrator creates them: with the
operator's finalizer already set (:data:`dtpoc_common.analytics.FINALIZER`),
or, for a ``--baseline`` revision whose orchestrator did not set it, without.

``--baseline REV`` runs the operator of git revision REV (its
``services/operator/src``, ``libs/common/src`` and ``libs/api/src``, on
``PYTHONPATH`` ahead of the workspace's) and the
working tree's one after the other on the same control plane, each in a
namespace of its own, ``--rounds`` times alternating (baseline first), and
prints the ratios: on a shared machine only figures taken side by side
compare.

No kubelet runs (there is none here), so pods stay Pending: the figures are
the operator's and the apiserver's, not a container runtime's.

Run: ``uv run python -m bench.operator_reconcile [--count 200] [--workers 8]
[--baseline REV [--rounds N]]``. The machine is shared; the load average is
printed with every phase.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import urllib3
from kubernetes import client as k8s
from kubernetes import watch

from bench.operator_vs_argo import AuditLog, audit_to
from dtpoc_common import analytics
from dtpoc_local import controlplane, waiting
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers import operator as operator_platform

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 600.0
READY_TIMEOUT = 300.0
#: The sources of a revision's operator: its own, and the libraries whose code it runs
#: (the generated API included: a revision's model reads its own protos' fields).
REVISION_SOURCES = ("services/operator/src", "libs/common/src", "libs/api/src")
#: The orchestrator's Kubernetes adapter: whether a revision creates with the finalizer.
ORCHESTRATOR_ADAPTER = "services/orchestrator/src/dtpoc_orchestrator/adapters/kubernetes.py"


def reconciles_total(metrics: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^dtpoc_operator_reconciles_total\{[^}]*\} (\S+)$", metrics, re.M)
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Burst:
    label: str
    count: int
    load: float
    create_seconds: float
    jobs_seconds: float
    status_seconds: float
    reconciles: float
    latencies: list[float]
    requests: collections.Counter[str]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    @property
    def requests_per_service(self) -> float:
        return sum(self.requests.values()) / self.count

    def print(self, workers: int) -> None:
        n = self.count
        print(f"\n[{self.label}] {n} ondemand Analytics (reps 3), {workers} reconcile workers")
        print(f"  load average at the start       {self.load:7.1f}")
        print(f"  creates sent in                 {self.create_seconds:7.2f} s")
        print(f"  all Jobs present after          {self.jobs_seconds:7.2f} s")
        print(f"  all statuses written after      {self.status_seconds:7.2f} s")
        print(
            f"  reconciles                      {self.reconciles:7.0f} "
            f"({self.reconciles / self.status_seconds:.1f}/s, "
            f"{self.reconciles / n:.2f} per service)"
        )
        print(
            f"  create -> Job present           p50 {self.p50 * 1000:.0f} ms  "
            f"p99 {self.p99 * 1000:.0f} ms  max {max(self.latencies) * 1000:.0f} ms"
        )
        print(f"  operator requests per service   {self.requests_per_service:7.2f}")
        for what, number in self.requests.most_common(8):
            print(f"      {what:<36} {number / n:6.2f}")


def burst(
    kube: KubeCluster,
    audit: AuditLog,
    workdir: Path,
    *,
    label: str,
    count: int,
    workers: int,
    extra_env: dict[str, str],
    with_finalizer: bool,
) -> Burst:
    """One operator in a namespace of its own, N creates, until every status is written."""
    namespace = kube.create_namespace(prefix="bench")
    kubeconfig = operator_platform.operator_kubeconfig(
        kube, namespace, workdir / f"operator-{namespace}.kubeconfig"
    )
    outputs = workdir / f"outputs-{namespace}"
    outputs.mkdir()
    operator = operator_platform.start_operator(
        {
            "DTPOC_OPERATOR_RUNTIME": "kubernetes",
            "DTPOC_OPERATOR_KUBECONFIG": str(kubeconfig),
            "DTPOC_OPERATOR_NAMESPACES": namespace,
            "DTPOC_OPERATOR_FILES_ADDRESS": "127.0.0.1:1",
            "DTPOC_OPERATOR_OUTPUT_ROOT": str(outputs),
            "DTPOC_OPERATOR_MAX_PARALLEL_RECONCILES": str(workers),
            "DTPOC_OPERATOR_LOG_LEVEL": "WARNING",
            **extra_env,
        },
        workdir=workdir,
        wait_ready=False,
    )
    # Importing the operator alone takes a minute when the machine is this loaded.
    operator.wait_ready(timeout=READY_TIMEOUT)
    user = f"system:serviceaccount:{namespace}:{operator_platform.SERVICE_ACCOUNT}"
    try:
        seen: dict[str, float] = {}
        stop = threading.Event()
        batch = k8s.BatchV1Api(kube.api_client())

        def watch_jobs() -> None:
            # Opened again when the apiserver ends it (its timeout, or a loaded server
            # dropping it); a new watch lists what exists first, which setdefault keeps.
            while not stop.is_set():
                stream = watch.Watch()
                try:
                    for event in stream.stream(
                        batch.list_namespaced_job, namespace, timeout_seconds=int(DEADLINE)
                    ):
                        name = event["object"].metadata.name
                        seen.setdefault(name, time.monotonic())
                        if stop.is_set():
                            stream.stop()
                except (urllib3.exceptions.HTTPError, k8s.ApiException):
                    time.sleep(0.2)

        watcher = threading.Thread(target=watch_jobs, daemon=True)
        watcher.start()
        # The operator's start-up (its listings) is not the burst's.
        audit.wait_quiet(since=time.time() - DEADLINE, users={user})
        load = os.getloadavg()[0]

        ids = [uuid.uuid4().hex[:24] for _ in range(count)]
        path = f"/apis/eng.cam.ac.uk/v1alpha1/namespaces/{namespace}/analytics"
        before = reconciles_total(operator.metrics())
        created: dict[str, float] = {}
        since = time.time()
        start = time.monotonic()
        for service_id in ids:
            created[service_id] = time.monotonic()
            kube.request(
                "POST",
                path,
                body={
                    "apiVersion": "eng.cam.ac.uk/v1alpha1",
                    "kind": "Analytics",
                    "metadata": {
                        "name": service_id,
                        "finalizers": [analytics.FINALIZER] if with_finalizer else [],
                    },
                    "spec": {
                        "image": "ghcr.io/example/sim",
                        "jobType": "ondemand",
                        "reps": 3,
                        "command": ["run"],
                    },
                },
            )
        create_seconds = time.monotonic() - start
        waiting.wait_for(
            lambda: all(f"ana-{i}" in seen for i in ids),
            timeout=DEADLINE,
            what=f"{count} Jobs",
            details=lambda: (
                f"{sum(f'ana-{i}' in seen for i in ids)} seen\n" + operator.process.log_tail()
            ),
        )
        jobs_seconds = max(seen[f"ana-{i}"] for i in ids) - start

        def statuses_written() -> bool:
            items = kube.request("GET", path).get("items") or []
            done = sum(1 for o in items if (o.get("status") or {}).get("total") == 3)
            return done == len(ids)

        waiting.wait_for(statuses_written, timeout=DEADLINE, what="every status written")
        status_seconds = time.monotonic() - start
        after = reconciles_total(operator.metrics())
        stop.set()
        # The pods' events and the Job controller's status updates come after the last
        # status write; let their reconciles finish so their requests are counted too.
        until = audit.wait_quiet(since=since, users={user})
        return Burst(
            label=label,
            count=count,
            load=load,
            create_seconds=create_seconds,
            jobs_seconds=jobs_seconds,
            status_seconds=status_seconds,
            reconciles=after - before,
            latencies=[seen[f"ana-{i}"] - created[i] for i in ids],
            requests=audit.by_request(since=since, until=until, users={user}),
        )
    finally:
        operator.stop()


def creates_with_finalizer(revision: str) -> bool:
    """Whether the orchestrator of ``revision`` creates Analytics with the finalizer."""
    found = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "grep",
            "-q",
            "analytics.FINALIZER",
            revision,
            "--",
            ORCHESTRATOR_ADAPTER,
        ],
        check=False,
    )
    return found.returncode == 0


def export_operator(revision: str, target: Path) -> str:
    """The operator's sources of ``revision``, unpacked under ``target``: a PYTHONPATH."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, *REVISION_SOURCES],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    roots = [target / source for source in REVISION_SOURCES]
    for root in roots:
        # Compiled once here, as the workspace's own sources are: not in the timed start.
        compileall.compile_dir(root, quiet=1)
    return os.pathsep.join(str(root) for root in roots)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8, help="max parallel reconciles")
    parser.add_argument("--baseline", metavar="REV", help="also run the operator of REV")
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: pairs of runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        workdir = Path(tmp)
        plan: list[tuple[str, dict[str, str], bool]] = [("working tree", {}, True)]
        if args.baseline:
            path = export_operator(args.baseline, workdir / "baseline")
            base = (
                "baseline " + args.baseline,
                {"PYTHONPATH": path},
                creates_with_finalizer(args.baseline),
            )
            plan = [base, plan[0]] * args.rounds
        audit_path, audit_args = audit_to(workdir)
        options = controlplane.ControlPlaneOptions(extra_apiserver_args=audit_args)
        print("starting the control plane...", flush=True)
        plane = controlplane.start_control_plane(workdir / "kube", options)
        kube = KubeCluster(kubeconfig_path=plane.admin_kubeconfig, managed=True)
        results: list[Burst] = []
        try:
            operator_platform.install_analytics_crd(kube)
            for label, env, with_finalizer in plan:
                result = burst(
                    kube,
                    AuditLog(audit_path),
                    workdir,
                    label=f"{label}; created {'with' if with_finalizer else 'without'} "
                    "the operator's finalizer",
                    count=args.count,
                    workers=args.workers,
                    extra_env=env,
                    with_finalizer=with_finalizer,
                )
                result.print(args.workers)
                results.append(result)
        finally:
            plane.stop()
    if args.baseline:
        print_ratios(results)


def print_ratios(results: list[Burst]) -> None:
    print("\nworking tree / baseline, per round (below 1: the working tree is faster or cheaper)")
    for number in range(0, len(results) - 1, 2):
        base, new = results[number], results[number + 1]
        rows = [
            ("create -> Job p50", new.p50, base.p50),
            ("create -> Job p99", new.p99, base.p99),
            ("all Jobs present after", new.jobs_seconds, base.jobs_seconds),
            ("operator requests per service", new.requests_per_service, base.requests_per_service),
        ]
        print(f"  round {number // 2 + 1}")
        for what, a, b in rows:
            print(f"    {what:<34} {a:8.2f} / {b:8.2f} = {a / b:5.2f}x")


if __name__ == "__main__":
    main()
