"""The orchestrator's domain: what a launch asks for and what a service record is.

Plain dataclasses without I/O. The Analytics spec and status travel as the
generated ``dtpoc.analytics.v1alpha1`` messages because they *are* the
contract with the operator (converted only by :mod:`dtpoc_common.analytics`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import errors

#: A record whose resource is being written; hidden from callers until the
#: resource exists (see :mod:`dtpoc_orchestrator.service` for the repair).
STATE_CREATING = "creating"
#: A record whose resource was written.
STATE_LAUNCHED = "launched"

#: Overall status values of the original API.
STATUS_OK = "ok"
STATUS_RUNNING = "running"
STATUS_ERROR = "error"

OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")


@dataclass(frozen=True)
class AnalyticsOptions:
    """The ``ana`` part of a launch."""

    job_type: str
    reps: int | None = None
    schedule: str | None = None
    parallelism: int | None = None
    backoff_limit_per_index: int | None = None
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None


@dataclass(frozen=True)
class LaunchRequest:
    """Everything a caller asked for in a launch, before validation."""

    image: str
    version: str = ""
    description: str = ""
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    mount_files: dict[str, str] = field(default_factory=dict)
    analytics: AnalyticsOptions | None = None
    simulation: bool = False
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    resource_requests: dict[str, str] = field(default_factory=dict)
    resource_limits: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    #: Publish a persistent service outside the cluster (when the platform exposes any).
    expose: bool = False


@dataclass(frozen=True)
class ServiceRecord:
    """One service as stored in ``orchestrator.services``.

    ``spec`` is the desired state written to the Analytics resource;
    ``last_status`` is the resource's status copied at termination, so that
    answers keep working after the resource is gone.
    """

    id: str
    state: str
    created_at: float
    spec: analytics_pb2.AnalyticsSpec
    labels: dict[str, str]
    namespace: str
    backend: str
    terminated_at: float | None = None
    last_status: analytics_pb2.AnalyticsStatus | None = None
    #: The service this one resubmits (same spec and inputs); empty for a launch.
    resubmitted_from: str = ""
    #: Services resubmitted from this one, oldest first.
    resubmissions: tuple[str, ...] = ()

    @property
    def terminated(self) -> bool:
        return self.terminated_at is not None

    @property
    def input_file_ids(self) -> list[str]:
        return sorted(self.spec.input_files)

    def replace(self, **changes: object) -> ServiceRecord:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AnalyticsObject:
    """An Analytics resource as either store holds it."""

    name: str
    namespace: str
    spec: analytics_pb2.AnalyticsSpec
    status: analytics_pb2.AnalyticsStatus
    labels: dict[str, str] = field(default_factory=dict)
    generation: int = 1
    #: True once deletion was asked for (Kubernetes ``deletionTimestamp``, or
    #: the local store's marker) and the resource has not disappeared yet.
    deleting: bool = False

    @property
    def has_status(self) -> bool:
        return bool(self.status.phase)


@dataclass(frozen=True)
class StoredFile:
    """An output file as the Files service describes it."""

    file_id: str
    filename: str
    path: str
    length: int
    content_type: str
    replica_index: int | None = None
    run: str = ""
    #: ``log`` for a replica's stored log (never an output), else empty.
    kind: str = ""

    @property
    def looks_like_json(self) -> bool:
        name = (self.path or self.filename).lower()
        return name.endswith(".json") or "json" in self.content_type.lower()


def parse_service_id(value: str, *, field_name: str = "id") -> str:
    """A service id in canonical form (24 lower-case hex digits)."""
    if not OBJECT_ID.match(value or ""):
        raise errors.InvalidArgument(
            f"must be 24 hexadecimal digits, got {value!r}", field=field_name
        )
    return value.lower()
