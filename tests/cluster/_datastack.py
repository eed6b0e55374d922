"""What the data-stack tests of the cluster tier share: Secrets, workloads, port-forwards.

The data stack's Services are reached as docs/deploy.md tells a user to reach
them: ``kubectl port-forward`` to a loopback port, with the credentials read
from the Secrets the chart names.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

from dtpoc_local import binaries, ports, processes
from tests.cluster.helpers import Platform
from tools.cluster import layout

NS = layout.NAMESPACE
RELEASE = layout.RELEASE


def secret(platform: Platform, name: str) -> dict[str, str]:
    """A Secret's data, decoded."""
    data = json.loads(platform.kubectl("-n", NS, "get", "secret", name, "-o", "json"))["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def workload(platform: Platform, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(platform.kubectl("-n", NS, "get", kind, name, "-o", "json"))
    return found


def image_of(found: dict[str, Any]) -> str:
    """The image of a workload's first container."""
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


@contextlib.contextmanager
def forward(platform: Platform, service: str, port: int) -> Iterator[int]:
    """``kubectl port-forward svc/<service>`` on a free loopback port, until the block ends."""
    local = ports.free_port()
    forwarding = processes.ServerProcess(
        name=f"port-forward-{service}",
        argv=[
            str(binaries.path("kubectl")),
            f"--kubeconfig={platform.node.lay.kubeconfig}",
            f"--namespace={NS}",
            "port-forward",
            "--address=127.0.0.1",
            f"svc/{service}",
            f"{local}:{port}",
        ],
        log_path=platform.node.lay.logs / f"port-forward-{service}.log",
    ).start()
    try:
        # The log file is per Service and kept across forwards: wait for this one's port.
        forwarding.wait_ready(
            lambda: f"Forwarding from 127.0.0.1:{local}" in forwarding.log_tail(20),
            timeout=30,
            what=f"port-forward to {service}",
        )
        yield local
    finally:
        forwarding.stop()
