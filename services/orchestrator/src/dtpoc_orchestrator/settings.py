"""Settings of the orchestrator process, from ``DTPOC_ORCHESTRATOR_*`` variables.

The MongoDB URI is shared by every process (``DTPOC_MONGODB_URI``); the
orchestrator also accepts ``DTPOC_ORCHESTRATOR_MONGODB_URI`` so that one
process can be pointed elsewhere. No default names a remote host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from dtpoc_common.settings import BaseServiceSettings, mongodb_timeout_field, mongodb_uri_field

#: Where a pod finds the namespace it runs in.
IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

BACKEND_KUBERNETES: Final = "kubernetes"
BACKEND_LOCAL: Final = "local"
Backend = Literal["kubernetes", "local"]


def default_namespace() -> str:
    """The namespace the process runs in when in a pod, ``default`` otherwise."""
    try:
        name = IN_CLUSTER_NAMESPACE_FILE.read_text().strip()
    except OSError:
        return "default"
    return name or "default"


class OrchestratorSettings(BaseServiceSettings):
    """Everything the orchestrator reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="DTPOC_ORCHESTRATOR_", extra="ignore", populate_by_name=True
    )

    #: gRPC listen address (``host:port``).
    listen: str = "127.0.0.1:50052"
    #: Where Analytics resources live: Kubernetes custom resources, or a
    #: MongoDB collection read by the local operator.
    backend: Backend = BACKEND_KUBERNETES
    #: Local backend only: the operator runs launches without a command as
    #: containers of their image (its ``DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE``
    #: is set), so such launches are accepted; false: they need a command.
    local_containers: bool = False
    #: Whether this platform publishes persistent services that ask for it
    #: (``expose``) outside the cluster: the chart's ``analytics.expose.enabled``,
    #: the same switch as the operator's ``DTPOC_OPERATOR_EXPOSE_SERVICES``.
    #: False: a launch with ``expose`` is refused, naming the field.
    expose_services: bool = False
    #: Local backend only: the operator's ``DTPOC_OPERATOR_LOCAL_STATE_ROOT``, where
    #: running replicas' logs are read live; unset: a replica's log answers once
    #: it ended and the operator stored it.
    local_state_root: Path | None = None
    #: Namespace of the Analytics resources (also recorded in local documents).
    namespace: str = Field(default_factory=default_namespace, min_length=1)
    #: Kubeconfig file; the in-cluster service account is used when unset.
    kubeconfig: Path | None = None
    #: Database of the service records (and, by default, of the local store).
    database: str = Field(default="orchestrator", min_length=1)
    #: Collection of the service records.
    services_collection: str = Field(default="services", min_length=1)
    #: Database of the local store's Analytics documents; ``database`` when empty.
    local_store_database: str = ""
    #: Collection of the local store's Analytics documents.
    local_store_collection: str = Field(default="analytics", min_length=1)
    #: gRPC address of the Files service.
    files_address: str = "127.0.0.1:50051"
    #: Deadline of each call to the Files service, in seconds.
    files_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Deadline of each call to the Kubernetes API server, in seconds.
    kube_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Seconds after which a record still marked ``creating`` whose resource
    #: does not exist is taken for a crashed launch and removed.
    creating_grace_seconds: float = Field(default=60.0, gt=0)
    #: Poll interval of WatchService on the local store, in seconds.
    watch_poll_seconds: float = Field(default=0.5, gt=0)
    #: Seconds one Kubernetes watch request lasts before it is renewed.
    watch_renew_seconds: int = Field(default=300, gt=0)
    #: Largest JSON output document answered inline by GetServiceOutput.
    max_inline_output_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    #: MongoDB connection string (shared ``DTPOC_MONGODB_URI``).
    mongodb_uri: str = mongodb_uri_field("DTPOC_ORCHESTRATOR_")
    #: Milliseconds to wait for MongoDB before a call answers UNAVAILABLE.
    mongodb_timeout_ms: int = mongodb_timeout_field("DTPOC_ORCHESTRATOR_")

    @property
    def local_store_database_name(self) -> str:
        return self.local_store_database or self.database
