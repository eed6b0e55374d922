"""Settings of the operator, read from ``DTPOC_OPERATOR_*`` environment variables.

One object per process. Addresses default to loopback for a local run; the
Helm chart sets the in-cluster ones. The MongoDB URI (local runtime only)
is the shared ``DTPOC_MONGODB_URI``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dtpoc_common import limits, replica_logs
from dtpoc_common.settings import OptionalPath, mongodb_timeout_field, mongodb_uri_field

#: Default local replica slots per CPU (see ``local_max_processes``).
PROCESSES_PER_CPU = 4

Runtime = Literal["kubernetes", "local"]


class OperatorSettings(BaseSettings):
    """Everything ``dtpoc-operator`` needs; see services/operator/README.md."""

    model_config = SettingsConfigDict(env_prefix="DTPOC_OPERATOR_", extra="ignore")

    #: ``kubernetes`` (Analytics custom resources, Jobs...) or ``local``
    #: (Analytics documents in MongoDB, child processes). ``--runtime`` overrides.
    runtime: Runtime = "kubernetes"
    #: Log level name.
    log_level: str = "INFO"

    # --- where Analytics live ----------------------------------------------------------------
    #: Comma-separated namespaces whose Analytics this operator reconciles.
    namespaces: str = "default"
    #: Kubeconfig file; empty: ``$KUBECONFIG``, then the in-cluster service account.
    kubeconfig: str = ""
    #: MongoDB connection string of the local Analytics store (local runtime).
    mongodb_uri: str = mongodb_uri_field("DTPOC_OPERATOR_")
    #: Milliseconds to wait for MongoDB before a call fails.
    mongodb_timeout_ms: int = mongodb_timeout_field("DTPOC_OPERATOR_")
    #: Database and collection of the local Analytics store (the orchestrator writes it).
    local_database: str = "orchestrator"
    local_collection: str = "analytics"

    # --- outputs and inputs ------------------------------------------------------------------
    #: Where the operator sees the shared output volume (Kubernetes: its mount of the
    #: output PVC; local: the folder replicas write under).
    output_root: Path = Path("/var/lib/dtpoc/outputs")
    #: Where the local runtime keeps each replica's input folder, pid and exit record;
    #: empty: ``<output_root>/.local-runtime``.
    local_state_root: str = ""
    #: Files service address (``host:port``) the operator uploads outputs to.
    files_address: str = "127.0.0.1:50051"
    #: File holding the operator's own token, presented to the Files service.
    grpc_token_file: OptionalPath = None
    #: File holding the key fetch tokens are signed with (Files holds the same
    #: key); unset: input fetchers get no token (Files without auth only).
    fetch_key_file: OptionalPath = None
    #: Seconds a fetch token is valid: from a local replica's start; in
    #: Kubernetes the end of the next window this long (see ``fetch_tokens``).
    fetch_token_ttl_seconds: float = Field(default=24 * 3600.0, ge=60)
    #: Files address as pods see it (init containers fetch inputs from it);
    #: empty: the same as ``files_address``.
    pod_files_address: str = ""
    #: Image of the init container that fetches inputs: the operator's own image.
    image: str = ""
    #: PersistentVolumeClaim of the shared output volume mounted by every replica.
    output_pvc: str = "dtpoc-outputs"
    #: IngressClass of a persistent service's Ingress; empty: the cluster default.
    ingress_class: str = ""
    #: Host of a persistent service's Ingress rule; empty: any host.
    ingress_host: str = ""
    #: Exposure policy of persistent services with a port. Off (default): reachable
    #: in the cluster only, through their Service. On: also an Ingress on
    #: ``/<service-id>`` behind the gateway's token check (:attr:`expose_auth_url`).
    expose_services: bool = False
    #: The gateway's token check (``http://<gateway>/auth/check``): the external
    #: auth of every exposed service's Ingress. Required with :attr:`expose_services`.
    expose_auth_url: str = ""
    #: TLS Secret of exposed services' Ingresses (the chart's); empty: no TLS section.
    ingress_tls_secret_name: str = ""

    # --- pacing ------------------------------------------------------------------------------
    #: Reconciles running at once (each handles one service).
    max_parallel_reconciles: int = Field(default=8, ge=1, le=256)
    #: Output files uploaded at once, across services.
    max_parallel_uploads: int = Field(default=4, ge=1, le=64)
    #: Largest output file the collector stores; a larger one is left in place
    #: and named in the replica's status, without being read. Keep it at or
    #: below the Files service's ``DTPOC_FILES_MAX_UPLOAD_BYTES``.
    max_output_file_bytes: int = Field(default=limits.DEFAULT_MAX_UPLOAD_BYTES, gt=0)
    #: Cap of one attempt's log (stdout and stderr), in bytes: what a replica
    #: prints beyond it is discarded, and a marker line says so.
    log_max_bytes: int = Field(default=replica_logs.DEFAULT_MAX_BYTES, ge=4096)
    #: Container engine of the local runtime for launches with an image and no
    #: command: ``auto`` (podman, else docker when ``docker info`` answers, else
    #: nerdctl; none found: launches need a command), an engine's name (it must
    #: work, or the operator does not start), or ``none`` (processes only).
    local_container_engine: Literal["auto", "podman", "docker", "nerdctl", "none"] = "none"
    #: OCI runtime podman runs containers with (``--runtime``); empty: podman's default.
    #: ``runc``: crun refuses hybrid cgroup v1 hosts.
    local_oci_runtime: str = "runc"
    #: containers.conf podman runs with: empty: a generated one whose
    #: ``default_ulimits`` is empty (containers inherit the engine's limits; hosts
    #: without CAP_SYS_RESOURCE refuse podman's defaults); ``system``: podman's own
    #: configuration; else the path of a file.
    local_containers_conf: str = ""
    #: Replica processes the local runtime runs at once, across services: four per
    #: CPU. A slot is held while the replica's supervisor starts, while it waits
    #: and while it exits, not only while it computes; with one slot per CPU the
    #: CPUs idled between short replicas (bench/local_scale.py: at most 2 of 2
    #: busy, often none). CPU-bound replicas beyond the CPU count share the CPUs,
    #: as pods without CPU requests share a node.
    local_max_processes: int = Field(
        default_factory=lambda: PROCESSES_PER_CPU * max(os.cpu_count() or 1, 1), ge=1
    )
    #: Seconds between full resyncs (every service reconciled even without events).
    resync_seconds: float = Field(default=30.0, gt=0)
    #: Seconds between polls of the local store (it has no change streams).
    local_poll_seconds: float = Field(default=1.0, gt=0)
    #: Seconds a terminated service's replicas get between SIGTERM and SIGKILL
    #: (local), or to stop before their outputs are collected anyway (Kubernetes).
    terminate_grace_seconds: float = Field(default=30.0, ge=0)
    #: Runs of a scheduled service kept in its status (older ones keep their
    #: outputs in Files, found by the ``run`` metadata).
    status_max_runs: int = Field(default=20, ge=1)
    #: Seconds any call to the Files service may take.
    files_timeout_seconds: float = Field(default=120.0, gt=0)
    #: Largest gRPC message to Files, in bytes.
    max_message_bytes: int = Field(default=8 * 1024 * 1024, gt=0)

    # --- probes and metrics ------------------------------------------------------------------
    #: ``host:port`` of the HTTP server answering ``/healthz`` and ``/readyz``.
    health_listen: str = "127.0.0.1:8080"
    #: ``host:port`` of the Prometheus ``/metrics`` endpoint; empty: off.
    metrics_listen: str = "127.0.0.1:9090"

    def namespace_list(self) -> list[str]:
        """The watched namespaces, in order, without blanks or repeats."""
        seen: list[str] = []
        for part in self.namespaces.split(","):
            name = part.strip()
            if name and name not in seen:
                seen.append(name)
        return seen

    def state_root(self) -> Path:
        """The local runtime's state folder."""
        return (
            Path(self.local_state_root)
            if self.local_state_root
            else (self.output_root / ".local-runtime")
        )

    def files_address_for_pods(self) -> str:
        return self.pod_files_address or self.files_address

    @model_validator(mode="after")
    def _exposure_needs_the_token_check(self) -> OperatorSettings:
        """An exposed service without the gateway's check would be open to anyone."""
        if self.expose_services and not self.expose_auth_url.strip():
            raise ValueError(
                "DTPOC_OPERATOR_EXPOSE_SERVICES=true needs DTPOC_OPERATOR_EXPOSE_AUTH_URL "
                "(the gateway's http://<gateway>/auth/check): an exposed service is never "
                "published without the API's token check"
            )
        return self
