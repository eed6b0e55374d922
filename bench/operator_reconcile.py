"""Operator throughput: 200 Analytics created at once against a real apiserver.

Starts the local control plane (etcd, kube-apiserver, kube-controller-manager
from :mod:`dtpoc_local`), installs the CRD, runs ``dtpoc-operator`` as its
ServiceAccount with exactly ``infra/rbac/operator-role.yaml``, then creates N
ondemand Analytics (reps 3) as fast as the apiserver takes them. A watch on
Jobs records when each service's Job appears.

Prints:

- time from the first create to all N Jobs present, and to all N statuses
  written (the operator's first full pass over every service);
- reconciles/s over that window (``dtpoc_operator_reconciles_total``), and
  reconciles per service (the cost of level-triggered reconciling: ~2-3 is
  one pass plus the events of its own children);
- p50 / p99 / max latency from an Analytics' create to its Job being present.

No kubelet runs (there is none here), so pods stay Pending: the figures are
the operator's and the apiserver's, not a container runtime's.

Run: ``uv run python -m bench.operator_reconcile [--count 200] [--workers 8]``. The
machine is shared; run it twice before trusting a figure.
"""

import argparse
import re
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import watch

from dtpoc_local import controlplane, waiting
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers import operator as operator_platform

DEADLINE = 600.0


def reconciles_total(metrics: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^dtpoc_operator_reconciles_total\{[^}]*\} (\S+)$", metrics, re.M)
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8, help="max parallel reconciles")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        workdir = Path(tmp)
        print("starting the control plane...", flush=True)
        plane = controlplane.start_control_plane(workdir / "kube")
        kube = KubeCluster(kubeconfig_path=plane.admin_kubeconfig, managed=True)
        operator = None
        try:
            operator_platform.install_analytics_crd(kube)
            namespace = kube.create_namespace(prefix="bench")
            kubeconfig = operator_platform.operator_kubeconfig(
                kube, namespace, workdir / "operator.kubeconfig"
            )
            (workdir / "outputs").mkdir()
            operator = operator_platform.start_operator(
                {
                    "DTPOC_OPERATOR_RUNTIME": "kubernetes",
                    "DTPOC_OPERATOR_KUBECONFIG": str(kubeconfig),
                    "DTPOC_OPERATOR_NAMESPACES": namespace,
                    "DTPOC_OPERATOR_FILES_ADDRESS": "127.0.0.1:1",
                    "DTPOC_OPERATOR_OUTPUT_ROOT": str(workdir / "outputs"),
                    "DTPOC_OPERATOR_MAX_PARALLEL_RECONCILES": str(args.workers),
                    "DTPOC_OPERATOR_LOG_LEVEL": "WARNING",
                },
                workdir=workdir,
            )
            seen: dict[str, float] = {}
            stop = threading.Event()
            batch = k8s.BatchV1Api(kube.api_client())

            def watch_jobs() -> None:
                stream = watch.Watch()
                for event in stream.stream(
                    batch.list_namespaced_job, namespace, timeout_seconds=int(DEADLINE)
                ):
                    name = event["object"].metadata.name
                    seen.setdefault(name, time.monotonic())
                    if stop.is_set():
                        stream.stop()

            watcher = threading.Thread(target=watch_jobs, daemon=True)
            watcher.start()
            time.sleep(0.5)  # let the watch open before the first create

            ids = [uuid.uuid4().hex[:24] for _ in range(args.count)]
            path = f"/apis/eng.cam.ac.uk/v1alpha1/namespaces/{namespace}/analytics"
            before = reconciles_total(operator.metrics())
            created: dict[str, float] = {}
            start = time.monotonic()
            for service_id in ids:
                created[service_id] = time.monotonic()
                kube.request(
                    "POST",
                    path,
                    body={
                        "apiVersion": "eng.cam.ac.uk/v1alpha1",
                        "kind": "Analytics",
                        "metadata": {"name": service_id},
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
                what=f"{args.count} Jobs",
            )
            jobs_seconds = max(seen[f"ana-{i}"] for i in ids) - start

            def statuses_written() -> bool:
                items = kube.request("GET", path).get("items") or []
                return sum(1 for o in items if (o.get("status") or {}).get("total") == 3) == len(
                    ids
                )

            waiting.wait_for(statuses_written, timeout=DEADLINE, what="every status written")
            status_seconds = time.monotonic() - start
            after = reconciles_total(operator.metrics())
            stop.set()
            latencies = [seen[f"ana-{i}"] - created[i] for i in ids]
            reconciles = after - before
            print(f"\n{args.count} ondemand Analytics (reps 3), {args.workers} reconcile workers")
            print(f"  creates sent in                 {create_seconds:7.2f} s")
            print(f"  all Jobs present after          {jobs_seconds:7.2f} s")
            print(f"  all statuses written after      {status_seconds:7.2f} s")
            print(
                f"  reconciles                      {reconciles:7.0f} "
                f"({reconciles / status_seconds:.1f}/s, {reconciles / args.count:.2f} per service)"
            )
            p50 = statistics.median(latencies) * 1000
            p99 = percentile(latencies, 0.99) * 1000
            print(
                f"  create -> Job present           p50 {p50:.0f} ms  p99 {p99:.0f} ms"
                f"  max {max(latencies) * 1000:.0f} ms"
            )
        finally:
            if operator is not None:
                operator.stop()
            plane.stop()


if __name__ == "__main__":
    main()
