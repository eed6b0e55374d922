"""A retried replica: only the attempt that counts is collected.

A replica that fails and is retried (``backoffLimitPerIndex``) runs again
in a new pod (locally: a new supervised process). Each attempt writes to a
folder of its own, named by its pod name; the replica's outputs are the
files of the attempt its status names (the one that succeeded), never the
partial files of the failed try, which are removed with the collected copies.

Both runtimes: the local one with real processes, the Kubernetes one with
the real Job controller (the test plays the kubelet, writing each pod's
files at the path its ``subPathExpr`` expands to).
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable

from dtpoc_local import waiting
from tests.operator.helpers import KubeOperator, child_name
from tests.operator.test_local_runtime import (  # noqa: F401 - the fixture is used by name
    LocalOperator,
    local_operator_factory,
)
from tests.realdeps.kubelet_double import KubeletDouble

#: The first attempt writes a partial result and a scratch file, then fails;
#: the second writes the real result.
FLAKY = textwrap.dedent(
    """
    import json, os, pathlib, sys
    out = pathlib.Path(os.environ["OUTPUT_FOLDER"])
    marker = pathlib.Path(os.environ["CONTROL_DIR"]) / "tried"
    if not marker.exists():
        marker.write_text(os.environ["RUN_ID"])
        (out / "result.json").write_text(json.dumps({"attempt": 1, "partial": True}))
        (out / "scratch.csv").write_text("half,written\\n")
        sys.exit(3)
    (out / "result.json").write_text(json.dumps({"attempt": 2}))
    """
)


def test_local_retry_collects_only_the_attempt_that_succeeded(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
) -> None:
    op = local_operator_factory()
    service_id = op.launch(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "ondemand",
            "reps": 1,
            "backoffLimitPerIndex": 1,
            "command": [sys.executable, "-c", FLAKY],
            "env": {"CONTROL_DIR": str(op.control)},
        }
    )
    status = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    (replica,) = status["replicas"]
    assert replica["podName"] == f"{service_id}-0-1", "the second attempt counts"
    (file_id,) = replica["outputFileIds"]
    assert json.loads(op.files.content(file_id)) == {"attempt": 2}
    assert [f["metadata"]["path"] for f in op.files.outputs(service_id)] == ["result.json"]
    waiting.wait_for(
        lambda: not (op.output_root / service_id / "0").exists(),
        timeout=10,
        what="both attempt folders removed once the replica is collected",
    )


def test_kubernetes_retry_collects_only_the_pod_that_succeeded(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    op = kube_operator
    service_id = op.create(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "ondemand",
            "reps": 1,
            "backoffLimitPerIndex": 1,
            "command": ["run"],
        }
    )
    job = child_name(service_id)
    (first,) = kubelet_double.wait_for_job_pods(op.namespace, job, count=1)
    failed_pod = first["metadata"]["name"]
    kubelet_double.write_container_outputs(
        op.output_root,
        f"{service_id}/0/{failed_pod}",
        {"result.json": b'{"attempt": 1, "partial": true}', "scratch.csv": b"half\n"},
    )
    kubelet_double.finish_pod(op.namespace, failed_pod, exit_code=3)

    def retry() -> list[dict[str, object]]:
        pods = kubelet_double.wait_for_job_pods(op.namespace, job, count=1)
        return [p for p in pods if p["metadata"]["name"] != failed_pod]

    waiting.wait_for(lambda: bool(retry()), timeout=60, what="the Job controller's retry pod")
    (second,) = retry()
    retry_pod = str(second["metadata"]["name"])  # type: ignore[index]
    kubelet_double.write_container_outputs(
        op.output_root, f"{service_id}/0/{retry_pod}", {"result.json": b'{"attempt": 2}'}
    )
    kubelet_double.finish_pod(op.namespace, retry_pod, exit_code=0)

    status = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    replica = op.replica(status, 0)
    assert replica["podName"] == retry_pod
    (file_id,) = replica["outputFileIds"]
    assert json.loads(op.content(file_id)) == {"attempt": 2}
    assert [f["metadata"]["path"] for f in op.outputs(service_id)] == ["result.json"]
    waiting.wait_for(
        lambda: not (op.output_root / service_id / "0").exists(),
        timeout=10,
        what="both attempt folders removed once the replica is collected",
    )
