"""LiveLogs of Kubernetes: a replica's pods' logs through the apiserver.

The pods of a service carry its ``dtpoc.eng.cam.ac.uk/service-id`` label;
those of replica ``idx`` the Job controller's completion-index annotation
(and, for a scheduled run, the run's ``batch.kubernetes.io/job-name``
label). Attempts are numbered as the operator numbers the logs it stores
(:func:`dtpoc_common.replica_logs.pod_attempts`). A pod's log is its init
container's (the input fetcher) and then its container's, read with
``timestamps=true``; with ``follow`` each is followed until it ends (the
apiserver's own follow), waiting while a container has not started yet.

Needs ``pods`` get/list and ``pods/log`` get in the namespace (the chart's
Role). API server failures become UNAVAILABLE / PERMISSION_DENIED here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import analytics, errors, replica_logs
from dtpoc_orchestrator.logs import AttemptLog, Ended

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
#: Seconds between looks at a container that has not started yet.
WAIT_SECONDS = 0.5


class KubeLiveLogs:
    """:class:`dtpoc_orchestrator.logs.LiveLogs` over the apiserver's pod logs."""

    def __init__(self, api_client: client.ApiClient, *, namespace: str, timeout_seconds: float):
        self._client = api_client
        self._core = client.CoreV1Api(api_client)
        self._namespace = namespace
        self._timeout = timeout_seconds

    async def _pods(
        self, service_id: str, replica: analytics_pb2.ReplicaStatus
    ) -> list[tuple[int, list[Any]]]:
        selector = f"{analytics.LABEL_SERVICE_ID}={service_id}"
        if replica.run and replica.run != service_id:
            selector += f",{JOB_NAME_LABEL}={replica.run}"
        try:
            listing = await self._core.list_namespaced_pod(
                self._namespace, label_selector=selector, _request_timeout=self._timeout
            )
        except ApiException as exc:
            raise _error(exc, f"list the pods of service {service_id}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise errors.Unavailable("the Kubernetes API server is unreachable") from exc
        pods = [self._client.sanitize_for_serialization(p) for p in listing.items]
        return replica_logs.pod_attempts(pods, index=replica.index)

    async def attempts(self, *, service_id: str, replica: analytics_pb2.ReplicaStatus) -> list[int]:
        return [attempt for attempt, _pod in await self._pods(service_id, replica)]

    async def stream(self, log: AttemptLog, *, until: Ended | None) -> AsyncIterator[bytes]:
        tries = dict(await self._pods(log.service_id, log.replica)).get(log.attempt, [])
        for position, pod in enumerate(tries):
            last = position == len(tries) - 1  # earlier tries under backoffLimitPerIndex ended
            name = pod["metadata"]["name"]
            for container in replica_logs.pod_containers(pod):
                async for data in self._container(name, container, until=until if last else None):
                    yield data

    async def _container(
        self, pod: str, container: str, *, until: Ended | None
    ) -> AsyncIterator[bytes]:
        follow = until is not None
        while True:
            try:
                response: Any = await self._core.read_namespaced_pod_log(
                    pod,
                    self._namespace,
                    container=container,
                    follow=follow,
                    timestamps=True,
                    _preload_content=False,
                    _request_timeout=None if follow else self._timeout,
                )
            except ApiException as exc:
                if exc.status == 400 and until is not None and not await until():
                    await asyncio.sleep(WAIT_SECONDS)  # not started yet
                    continue
                if exc.status in (400, 404):
                    return  # never started, or the pod is gone
                raise _error(exc, f"read the log of pod {pod}") from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise errors.Unavailable("the Kubernetes API server is unreachable") from exc
            try:
                async for data in response.content.iter_any():
                    yield data
            finally:
                response.release()
            return


def _error(exc: ApiException, action: str) -> errors.DomainError:
    if exc.status in (401, 403):
        return errors.Unavailable(f"the orchestrator may not {action} (HTTP {exc.status})")
    return errors.Unavailable(f"the Kubernetes API server could not {action} (HTTP {exc.status})")
