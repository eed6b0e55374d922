"""AnalyticsStore adapter: ``eng.cam.ac.uk/v1alpha1`` Analytics custom resources.

One resource per service, named by the service id, in the configured
namespace. Deleting it is how a service is terminated: its Jobs, CronJobs
and Deployments carry owner references to it, so Kubernetes garbage
collection removes them (background propagation).

API server answers become domain errors here and nowhere else:
401/403 -> PERMISSION_DENIED, 404 on create (namespace or CRD missing) ->
FAILED_PRECONDITION, 409 -> ALREADY_EXISTS, 422 -> INVALID_ARGUMENT, anything
unreachable or 5xx -> UNAVAILABLE. Each message names what was attempted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import analytics, errors
from dtpoc_common import kubeconfig as kubeconfig_loader
from dtpoc_common import logging as dlog
from dtpoc_orchestrator import domain
from dtpoc_orchestrator.adapters import kubelogs, resources
from dtpoc_orchestrator.errors import PermissionDenied

log = dlog.get_logger(__name__)

BACKEND = "kubernetes"


#: Raised at start when no Kubernetes configuration works (see dtpoc_common.kubeconfig).
ConfigurationError = kubeconfig_loader.ConfigurationError


def _api_message(exc: ApiException) -> str:
    """The API server's own explanation (its Status ``message``), else the reason."""
    body = exc.body
    if isinstance(body, bytes | str) and body:
        try:
            status = json.loads(body)
        except ValueError:
            status = None
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    return str(exc.reason or f"HTTP {exc.status}")


def _is_object_not_found(exc: ApiException, name: str) -> bool:
    """404 for the object itself, not for its kind (a missing CRD also answers 404)."""
    if exc.status != 404:
        return False
    try:
        status = json.loads(exc.body or "{}")
    except ValueError:
        return False
    details = status.get("details") or {}
    return bool(details.get("name") == name)


@contextlib.contextmanager
def _api_errors(action: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        message = _api_message(exc)
        log.warning("kubernetes api call failed", action=action, status=exc.status, message=message)
        if exc.status in (401, 403):
            raise PermissionDenied(
                f"the Kubernetes API server refused to {action}: {message}"
            ) from exc
        if exc.status == 404:
            raise errors.FailedPrecondition(
                f"cannot {action}: {message} (does the namespace exist and is the Analytics "
                "CRD installed?)"
            ) from exc
        if exc.status == 409:
            raise errors.AlreadyExists(f"cannot {action}: {message}") from exc
        if exc.status in (400, 422):
            raise errors.InvalidArgument(
                f"the Kubernetes API server refused the resource: {message}"
            ) from exc
        raise errors.Unavailable(
            f"the Kubernetes API server could not {action} (HTTP {exc.status}): {message}"
        ) from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("kubernetes api unreachable", action=action, error=repr(exc)[:300])
        raise errors.Unavailable(
            f"the Kubernetes API server is unreachable; could not {action}"
        ) from exc


class KubernetesAnalyticsStore:
    """Analytics resources in one namespace of a cluster."""

    backend = BACKEND

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str,
        timeout_seconds: float,
        watch_renew_seconds: int = 300,
    ) -> None:
        self._api_client = api_client
        self._api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self._timeout = timeout_seconds
        self._watch_renew = watch_renew_seconds

    @classmethod
    async def connect(
        cls,
        *,
        kubeconfig: Path | None,
        namespace: str,
        timeout_seconds: float,
        watch_renew_seconds: int = 300,
    ) -> KubernetesAnalyticsStore:
        configuration = await kubeconfig_loader.load_configuration(
            kubeconfig,
            setting="DTPOC_ORCHESTRATOR_KUBECONFIG",
            hint="DTPOC_ORCHESTRATOR_BACKEND=local",
        )
        return cls(
            client.ApiClient(configuration),
            namespace=namespace,
            timeout_seconds=timeout_seconds,
            watch_renew_seconds=watch_renew_seconds,
        )

    def live_logs(self) -> kubelogs.KubeLiveLogs:
        """Running replicas' logs, through the same client (see :mod:`.kubelogs`)."""
        return kubelogs.KubeLiveLogs(
            self._api_client, namespace=self.namespace, timeout_seconds=self._timeout
        )

    def _common(self) -> tuple[str, str, str, str]:
        return (analytics.GROUP, analytics.VERSION, self.namespace, analytics.PLURAL)

    async def create(
        self,
        *,
        service_id: str,
        spec: analytics_pb2.AnalyticsSpec,
        labels: dict[str, str],
    ) -> domain.AnalyticsObject:
        body = analytics.build_resource(
            service_id=service_id, namespace=self.namespace, spec=spec, labels=labels
        )
        # Created with the operator's finalizer: the operator need not patch it in, and
        # a deletion waits for the operator even before it has seen the service.
        body["metadata"]["finalizers"] = [analytics.FINALIZER]
        action = f"create Analytics {service_id} in namespace {self.namespace}"
        with _api_errors(action):
            created = await self._api.create_namespaced_custom_object(
                *self._common(), body, _request_timeout=self._timeout
            )
        return resources.from_resource(created)

    async def get(self, service_id: str) -> domain.AnalyticsObject | None:
        action = f"read Analytics {service_id} in namespace {self.namespace}"
        try:
            with _api_errors(action):
                raw = await self._api.get_namespaced_custom_object(
                    *self._common(), service_id, _request_timeout=self._timeout
                )
        except errors.FailedPrecondition as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and _is_object_not_found(cause, service_id):
                return None
            raise
        return resources.from_resource(raw)

    async def get_many(self, service_ids: Sequence[str]) -> dict[str, domain.AnalyticsObject]:
        if not service_ids:
            return {}
        wanted = set(service_ids)
        if len(wanted) <= 3:
            found = await asyncio.gather(*(self.get(i) for i in wanted))
            return {o.name: o for o in found if o is not None}
        action = f"list Analytics in namespace {self.namespace}"
        objects: dict[str, domain.AnalyticsObject] = {}
        token: str | None = None
        while True:
            with _api_errors(action):
                paging: dict[str, Any] = {"_continue": token} if token else {}
                listing = await self._api.list_namespaced_custom_object(
                    *self._common(),
                    label_selector=analytics.LABEL_SERVICE_ID,
                    limit=500,
                    _request_timeout=self._timeout,
                    **paging,
                )
            for raw in listing.get("items", []):
                name = raw.get("metadata", {}).get("name")
                if name in wanted:
                    objects[name] = resources.from_resource(raw)
            token = (listing.get("metadata") or {}).get("continue")
            if not token:
                return objects

    async def patch_spec(self, service_id: str, changes: dict[str, Any]) -> domain.AnalyticsObject:
        """A JSON merge patch of the spec (maps merge by key, as ``changes`` intend)."""
        action = f"update Analytics {service_id} in namespace {self.namespace}"
        try:
            with _api_errors(action):
                patched = await self._api.patch_namespaced_custom_object(
                    *self._common(),
                    service_id,
                    {"spec": changes},
                    # The client would pick JSON Patch, which a dict body is not.
                    _content_type="application/merge-patch+json",  # type: ignore[call-arg]
                    _request_timeout=self._timeout,
                )
        except errors.FailedPrecondition as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and _is_object_not_found(cause, service_id):
                raise errors.NotFound(f"no Analytics {service_id}") from exc
            raise
        return resources.from_resource(patched)

    async def delete(self, service_id: str) -> bool:
        action = f"delete Analytics {service_id} in namespace {self.namespace}"
        try:
            with _api_errors(action):
                await self._api.delete_namespaced_custom_object(
                    *self._common(),
                    service_id,
                    propagation_policy="Background",
                    _request_timeout=self._timeout,
                )
        except errors.FailedPrecondition as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and _is_object_not_found(cause, service_id):
                return False
            raise
        return True

    async def watch(self, service_id: str) -> AsyncGenerator[domain.AnalyticsObject | None, None]:
        """The resource now, then after each change (None once it is gone).

        A list pins the resource version the watch starts from, so no change
        between the two is missed; each watch request lasts
        ``watch_renew_seconds``, then the list and watch start again.
        """
        selector = f"metadata.name={service_id}"
        action = f"watch Analytics {service_id} in namespace {self.namespace}"
        while True:
            with _api_errors(action):
                listing = await self._api.list_namespaced_custom_object(
                    *self._common(), field_selector=selector, _request_timeout=self._timeout
                )
            items = listing.get("items", [])
            yield resources.from_resource(items[0]) if items else None
            version = (listing.get("metadata") or {}).get("resourceVersion")
            async with watch.Watch() as stream:
                try:
                    with _api_errors(action):
                        async for event in stream.stream(
                            self._api.list_namespaced_custom_object,
                            *self._common(),
                            field_selector=selector,
                            resource_version=version,
                            timeout_seconds=self._watch_renew,
                            _request_timeout=self._watch_renew + self._timeout,
                        ):
                            kind = event.get("type")
                            raw = event.get("raw_object") or {}
                            if kind == "DELETED":
                                yield None
                            elif kind in ("ADDED", "MODIFIED"):
                                yield resources.from_resource(raw)
                except errors.Unavailable as exc:
                    cause = exc.__cause__
                    if isinstance(cause, ApiException) and cause.status == 410:
                        continue  # history compacted: list again
                    raise

    async def close(self) -> None:
        await self._api_client.close()
