"""The AnalyticsStore port: where desired state is written and status read.

Two adapters implement it and pass the same contract tests
(``tests/orchestrator/test_store_contract.py``):
:class:`~dtpoc_orchestrator.adapters.kubernetes.KubernetesAnalyticsStore`
(custom resources) and
:class:`~dtpoc_orchestrator.adapters.local.LocalAnalyticsStore` (a MongoDB
collection for the local runtime).

Failures are domain errors. UNAVAILABLE means "the outcome is unknown" (the
write may have happened); every other error means nothing was written.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, Protocol

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_orchestrator import domain


class AnalyticsStore(Protocol):
    """Analytics resources named by service id."""

    #: ``kubernetes`` or ``local``.
    backend: str
    #: Namespace the resources are written to.
    namespace: str

    async def create(
        self,
        *,
        service_id: str,
        spec: analytics_pb2.AnalyticsSpec,
        labels: dict[str, str],
    ) -> domain.AnalyticsObject:
        """Write a new resource; ALREADY_EXISTS if one has this name."""
        ...

    async def get(self, service_id: str) -> domain.AnalyticsObject | None:
        """The resource, None when it does not exist."""
        ...

    async def get_many(self, service_ids: Sequence[str]) -> dict[str, domain.AnalyticsObject]:
        """The resources that exist among ``service_ids``, by id."""
        ...

    async def patch_spec(self, service_id: str, changes: dict[str, Any]) -> domain.AnalyticsObject:
        """Merge ``changes`` (spec fields, resource JSON; maps merged by key) into the
        resource's spec; NOT_FOUND when it does not exist. A new generation for the operator."""
        ...

    async def delete(self, service_id: str) -> bool:
        """Ask for the resource to go (its workload with it); idempotent.

        True when it existed. The resource may stay visible, ``deleting``,
        until its workload is stopped.
        """
        ...

    def watch(self, service_id: str) -> AsyncGenerator[domain.AnalyticsObject | None, None]:
        """The resource now, then again after each change; None while it does not exist.

        Runs until the consumer stops iterating (close it with
        ``contextlib.aclosing``). May repeat an unchanged resource.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
