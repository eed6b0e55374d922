"""Analytics custom resources as the operator's store.

The operator writes only the ``status`` subresource, plus its own finalizer
(:data:`dtpoc_common.analytics.FINALIZER`) in ``metadata.finalizers``: a
terminated service's resource stays (with a deletion timestamp) until the
outputs of its replicas are in Files and its final status is written. The
orchestrator creates resources with the finalizer set, so the patch that adds
it is only sent for resources created otherwise (kubectl). If the operator is
down, a deletion waits for it, even of a service it never saw; ``kubectl
patch`` removing the finalizer lets it go without collection.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from dtpoc_common import analytics
from dtpoc_common import logging as dlog
from dtpoc_operator import model
from dtpoc_operator.kube import api as kapi
from dtpoc_operator.kube.cache import WatchCache
from dtpoc_operator.kube.observe import parse_time
from dtpoc_operator.model import AnalyticsResource, ServiceKey, Status

log = dlog.get_logger(__name__)


def resource_path(namespace: str, name: str = "") -> str:
    return kapi.ns_path(analytics.GROUP, analytics.VERSION, namespace, analytics.PLURAL, name)


def to_resource(obj: dict[str, Any]) -> AnalyticsResource:
    """An Analytics object as the reconciler sees it."""
    meta = obj.get("metadata") or {}
    key = ServiceKey(namespace=str(meta.get("namespace") or ""), name=str(meta["name"]))
    spec = model.ServiceSpec.from_proto(analytics.spec_from_dict(obj.get("spec") or {}))
    raw_status = obj.get("status") or {}
    try:
        status = model.status_from_proto(analytics.status_from_dict(raw_status))
    except json_format.ParseError as error:
        log.warning("unreadable status replaced", service_id=key.name, error=str(error))
        status = Status()
    return AnalyticsResource(
        key=key,
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        spec=spec,
        status=status,
        deleting=bool(meta.get("deletionTimestamp")),
        deletion_time=parse_time(meta.get("deletionTimestamp")),
        creation_time=parse_time(meta.get("creationTimestamp")),
        finalizers=tuple(meta.get("finalizers") or ()),
        resource_version=str(meta.get("resourceVersion") or ""),
        raw_status=raw_status,
    )


class KubeAnalyticsStore:
    """:class:`dtpoc_operator.ports.AnalyticsStore` over the Kubernetes API."""

    def __init__(
        self, api: kapi.KubeApi, *, namespaces: list[str], cache: WatchCache | None = None
    ) -> None:
        self._api = api
        self._namespaces = namespaces
        self._cache = cache

    async def get(self, key: ServiceKey) -> AnalyticsResource | None:
        """From the watch cache when it holds the object, else from the apiserver."""
        if self._cache is not None:
            cached = self._cache.get(analytics.PLURAL, key.namespace, key.name)
            if cached is not None:
                return to_resource(cached)
        obj = await self._api.get(resource_path(key.namespace, key.name))
        if self._cache is not None:
            self._cache.confirmed(analytics.PLURAL, key.namespace, key.name, obj)
        return to_resource(obj) if obj is not None else None

    def _written(self, obj: dict[str, Any]) -> None:
        if self._cache is not None and obj:
            self._cache.written(analytics.PLURAL, obj)

    async def list_keys(self) -> list[ServiceKey]:
        keys = []
        for namespace in self._namespaces:
            for obj in await self._api.list(resource_path(namespace)):
                keys.append(ServiceKey(namespace=namespace, name=obj["metadata"]["name"]))
        return keys

    async def ensure_finalizer(self, resource: AnalyticsResource) -> AnalyticsResource:
        if analytics.FINALIZER in resource.finalizers:
            return resource
        patch = {
            "metadata": {
                "finalizers": [*resource.finalizers, analytics.FINALIZER],
                # Conditional on the version read, so a concurrent change is never lost.
                "resourceVersion": resource.resource_version,
            }
        }
        obj = await self._api.patch(resource_path(resource.key.namespace, resource.key.name), patch)
        self._written(obj)
        return to_resource(obj)

    async def write_status(self, resource: AnalyticsResource, status: Status) -> None:
        new = analytics.status_to_dict(model.status_to_proto(status))
        # A merge patch keeps keys it does not mention: clear the ones that went away.
        body = {**{k: None for k in resource.raw_status if k not in new}, **new}
        self._written(
            await self._api.patch(
                resource_path(resource.key.namespace, resource.key.name) + "/status",
                {"status": body},
            )
        )

    async def finish_deletion(self, resource: AnalyticsResource) -> None:
        current = await self._api.get(resource_path(resource.key.namespace, resource.key.name))
        if current is None:
            return
        finalizers = list((current.get("metadata") or {}).get("finalizers") or [])
        if analytics.FINALIZER not in finalizers:
            return
        patch = {
            "metadata": {
                "finalizers": [f for f in finalizers if f != analytics.FINALIZER],
                "resourceVersion": current["metadata"]["resourceVersion"],
            }
        }
        try:
            self._written(
                await self._api.patch(
                    resource_path(resource.key.namespace, resource.key.name), patch
                )
            )
        except kapi.KubeError as error:
            if not error.not_found:
                raise
