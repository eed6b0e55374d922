"""The logs of a Kubernetes replica's attempts: its pods' logs through the apiserver.

Each attempt of a Job index is a pod, numbered by
:func:`dtpoc_common.replica_logs.pod_attempts`. A pod's log is its init container's
(``dtpoc-fetch-inputs``) then its container's, read with ``timestamps=true``
(the line format of :mod:`dtpoc_common.replica_logs`) and capped like a
local log: past the cap one marker line ends it.
"""

from __future__ import annotations

from typing import Any

from dtpoc_common import logging as dlog
from dtpoc_common import replica_logs
from dtpoc_operator import logstore
from dtpoc_operator.kube import api as kapi

Obj = dict[str, Any]

log = dlog.get_logger(__name__)


async def pod_log(api: kapi.KubeApi, *, namespace: str, pod: Obj, max_bytes: int) -> bytes:
    """The pod's whole log (init containers first), capped; a container that never
    started adds nothing."""
    name = pod["metadata"]["name"]
    path = kapi.ns_path("", "v1", namespace, "pods", name) + "/log"
    parts: list[bytes] = []
    size = 0
    for container in replica_logs.pod_containers(pod):
        query = {"container": container, "timestamps": "true", "limitBytes": str(max_bytes + 1)}
        try:
            data = await api.text(path, query=query)
        except kapi.KubeError as error:
            if error.status == 0:
                raise  # the apiserver unreachable: the reconcile is retried
            # Waiting to start, gone, or a node that cannot serve it: no log to keep.
            if error.status not in (400, 404):
                log.warning(
                    "pod log unreadable", pod=name, container=container, status=error.status
                )
            continue
        if data and not data.endswith(b"\n"):
            data += b"\n"
        parts.append(data)
        size += len(data)
        if size > max_bytes:
            break
    return logstore.capped(b"".join(parts), max_bytes=max_bytes)
