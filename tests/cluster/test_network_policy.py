"""The chart's NetworkPolicies are enforced on the node (kube-router's firewall controller)."""

from __future__ import annotations

from dtpoc_local import waiting
from tests.cluster import _api as api
from tests.cluster.helpers import Platform
from tools.cluster import layout

SCRIPT = """
import socket
for name, port in (("{release}-mongodb", 27017), ("{release}-gateway", 80)):
    try:
        socket.create_connection((name, port), timeout=5).close()
        print(name, "open")
    except OSError:
        print(name, "blocked")
"""


def test_a_pod_that_is_no_platform_service_reaches_the_gateway_but_not_mongodb(
    platform: Platform,
) -> None:
    job = api.job(
        "netpol-probe",
        platform.images["dtpoc"],
        SCRIPT.format(release=layout.RELEASE),
        completions=1,
    )
    path = f"/apis/batch/v1/namespaces/{layout.NAMESPACE}/jobs"
    platform.kube.request("POST", path, body=job)
    try:
        waiting.wait_for(
            lambda: api.complete(platform, layout.NAMESPACE, "netpol-probe"),
            timeout=api.JOB_TIMEOUT,
            what="the probe pod to finish",
        )
        logs = platform.kubectl("-n", layout.NAMESPACE, "logs", "job/netpol-probe").split("\n")
        assert [line for line in logs if line] == [
            f"{layout.RELEASE}-mongodb blocked",
            f"{layout.RELEASE}-gateway open",
        ]
    finally:
        platform.kubectl("-n", layout.NAMESPACE, "delete", "job", "netpol-probe", "--wait=false")
