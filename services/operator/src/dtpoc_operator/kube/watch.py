"""kopf watches Analytics and their children; every event adds a key to the work queue.

kopf does what it is good at here: list+watch streams with reconnects and
resource-version bookkeeping, per-object event serialisation, login. It
writes nothing to the resources: no change-detection handlers (so no
``last-handled-configuration`` annotation), no daemons (so no kopf
finalizer), no progress storage, no posted events. Reconciliation itself is
the work queue's (bounded parallelism, backoff, one worker per key), which
kopf's per-handler model does not give for "status from many children".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

from dtpoc_common import analytics
from dtpoc_operator.kube import manifests
from dtpoc_operator.kube.cache import WatchCache
from dtpoc_operator.model import ServiceKey
from dtpoc_operator.workqueue import WorkQueue

CHILD_RESOURCES = (
    ("batch", "v1", "jobs"),
    ("batch", "v1", "cronjobs"),
    ("apps", "v1", "deployments"),
    ("", "v1", "pods"),
)
#: How long a child's event waits for its siblings' before its service is reconciled.
CHILD_EVENT_BATCH_SECONDS = 0.5
#: Children whose events the cache keeps (the reads it serves: ondemand Jobs and their pods).
CACHED_CHILDREN = frozenset({"jobs", "pods"})


def service_key_of(namespace: str | None, annotations: Any, labels: Any) -> ServiceKey | None:
    """The service a child or pod belongs to (annotation first: it holds the full id)."""
    service_id = (annotations or {}).get(manifests.SERVICE_ID_ANNOTATION) or (labels or {}).get(
        analytics.LABEL_SERVICE_ID
    )
    if not service_id or not namespace:
        return None
    return ServiceKey(namespace=namespace, name=str(service_id))


def _changed(cache: WatchCache | None, plural: str, event: Mapping[str, Any]) -> bool:
    """Record the event in the cache; False when it only echoes the operator's own write."""
    if cache is None:
        return True
    return cache.observe(plural, event.get("type"), dict(event.get("object") or {}))


def build_registry(
    queue: WorkQueue[ServiceKey],
    *,
    credentials: kopf.ConnectionInfo,
    cache: WatchCache | None = None,
) -> kopf.OperatorRegistry:
    """A registry of our own (nothing registered at import time). With a ``cache``, each
    event is recorded in it before its key is queued, so the reconcile reads that state."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return credentials

    @kopf.on.event(analytics.GROUP, analytics.VERSION, analytics.PLURAL, registry=registry)
    async def analytics_event(
        name: str, namespace: str | None, event: Mapping[str, Any], **_: Any
    ) -> None:
        if namespace and _changed(cache, analytics.PLURAL, event):
            queue.add(ServiceKey(namespace=namespace, name=name))

    for group, version, plural in CHILD_RESOURCES:
        kopf.on.event(
            group,
            version,
            plural,
            labels={analytics.LABEL_MANAGED_BY: analytics.MANAGED_BY},
            registry=registry,
        )(_child_handler(queue, plural, cache if plural in CACHED_CHILDREN else None))

    return registry


def _child_handler(queue: WorkQueue[ServiceKey], plural: str, cache: WatchCache | None) -> Any:
    async def child_event(
        namespace: str | None,
        annotations: Mapping[str, str],
        labels: Mapping[str, str],
        event: Mapping[str, Any],
        **_: Any,
    ) -> None:
        key = service_key_of(namespace, annotations, labels)
        if key is not None and _changed(cache, plural, event):
            # A Job's pods come in a burst (the Job controller creates them in one
            # sync): one reconcile, and one status write, for all of them.
            queue.add_after(key, CHILD_EVENT_BATCH_SECONDS)

    child_event.__name__ = f"{plural}_event"
    return child_event


class _NoDiffBase(kopf.DiffBaseStorage):
    """No change detection: kopf would deep-copy every body of every event to find the
    changes that change handlers see (there are none here): most of its CPU per event."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class _NoProgress(kopf.ProgressStorage):
    """No handler progress: only change and daemon handlers keep any, and there are none.
    kopf's default storage deep-copies the body's essence on every event to clear its
    own marks from it."""

    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        return None

    def store(
        self,
        *,
        key: kopf.HandlerId,
        record: kopf.ProgressRecord,
        body: kopf.Body,
        patch: kopf.Patch,
    ) -> None:
        return None

    def purge(self, *, key: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        return None

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        return essence


def settings() -> kopf.OperatorSettings:
    """kopf settings for a namespaced operator that writes nothing itself."""
    result = kopf.OperatorSettings()
    result.persistence.diffbase_storage = _NoDiffBase()
    result.persistence.progress_storage = _NoProgress()
    result.posting.enabled = False
    result.scanning.disabled = True
    result.peering.standalone = True
    result.peering.mandatory = False
    result.watching.server_timeout = 300
    result.watching.client_timeout = 330
    result.networking.request_timeout = 60
    # The app stops kopf with its stop flag; never let kopf SIGKILL the process.
    result.process.ultimate_exiting_timeout = None
    return result


async def run(
    queue: WorkQueue[ServiceKey],
    *,
    credentials: kopf.ConnectionInfo,
    namespaces: list[str],
    ready: asyncio.Event,
    stop: asyncio.Event,
    cache: WatchCache | None = None,
) -> None:
    """Run kopf's watchers until ``stop`` is set; ``ready`` once kopf has started."""
    logging.getLogger("kopf").setLevel(logging.WARNING)
    kopf_ready = asyncio.Event()
    kopf_stop: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def relay_stop() -> None:
        await stop.wait()
        if not kopf_stop.done():
            kopf_stop.set_result(None)

    async def relay_ready() -> None:
        await kopf_ready.wait()
        ready.set()

    helpers = [asyncio.create_task(relay_stop()), asyncio.create_task(relay_ready())]
    try:
        await kopf.operator(
            registry=build_registry(queue, credentials=credentials, cache=cache),
            settings=settings(),
            namespaces=namespaces,
            standalone=True,
            ready_flag=kopf_ready,
            stop_flag=kopf_stop,
        )
    finally:
        for helper in helpers:
            helper.cancel()
