"""Assembles the orchestrator: settings in, gRPC registrations and a cleanup out.

Starting never waits for MongoDB (calls answer UNAVAILABLE "database
unreachable" meanwhile; indexes are created in the background once it
answers). The Kubernetes configuration is loaded at start, so a missing
kubeconfig or service account fails the process at once, not the first launch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from pymongo import AsyncMongoClient

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2_grpc
from dtpoc_common import errors, grpcauth
from dtpoc_common import logging as dlog
from dtpoc_common.grpcserver import Registration
from dtpoc_orchestrator import logs, service, servicer, settings, store
from dtpoc_orchestrator.adapters import files, local, locallogs, mongo, records

log = dlog.get_logger(__name__)

#: Seconds between attempts to create indexes while MongoDB cannot be reached.
INDEX_RETRY_SECONDS = 5.0

Cleanup = Callable[[], Awaitable[None]]


class StartupError(RuntimeError):
    """The settings do not allow the process to start; the message says why."""


def build_live_logs(
    config: settings.OrchestratorSettings, analytics_store: store.AnalyticsStore
) -> logs.LiveLogs:
    """Where running replicas' logs are read: the local operator's state folder,
    or pods through the apiserver; without either, only stored logs answer."""
    if config.backend == settings.BACKEND_LOCAL:
        if config.local_state_root is None:
            return logs.NoLiveLogs()
        return locallogs.LocalLiveLogs(config.local_state_root)
    from dtpoc_orchestrator.adapters import kubernetes

    if isinstance(analytics_store, kubernetes.KubernetesAnalyticsStore):
        return analytics_store.live_logs()
    return logs.NoLiveLogs()


async def build_store(
    config: settings.OrchestratorSettings, client: AsyncMongoClient[mongo.Document]
) -> store.AnalyticsStore:
    """The AnalyticsStore adapter the settings choose."""
    if config.backend == settings.BACKEND_LOCAL:
        collection = client[config.local_store_database_name][config.local_store_collection]
        return local.LocalAnalyticsStore(
            collection,
            namespace=config.namespace,
            poll_seconds=config.watch_poll_seconds,
            read_cache=True,
        )
    # Imported here: the Kubernetes client takes seconds to import, which the local
    # runtime need not pay at every start.
    from dtpoc_orchestrator.adapters import kubernetes

    try:
        return await kubernetes.KubernetesAnalyticsStore.connect(
            kubeconfig=config.kubeconfig,
            namespace=config.namespace,
            timeout_seconds=config.kube_timeout_seconds,
            watch_renew_seconds=config.watch_renew_seconds,
        )
    except kubernetes.ConfigurationError as exc:
        raise StartupError(str(exc)) from exc


async def build(
    config: settings.OrchestratorSettings,
) -> tuple[list[Registration], Cleanup]:
    """The servicer to register and the coroutine that releases its resources."""
    client = mongo.open_client(config.mongodb_uri, timeout_ms=config.mongodb_timeout_ms)
    # The local backend has one orchestrator (``make run``): its reads by id answer from
    # memory (adapters.readcache); on Kubernetes several may share the records.
    records_class = (
        records.CachedServiceRecords
        if config.backend == settings.BACKEND_LOCAL
        else records.ServiceRecords
    )
    service_records = records_class(client[config.database][config.services_collection])
    analytics_store = await build_store(config, client)
    files_client = files.FilesClient(
        config.files_address,
        timeout_seconds=config.files_timeout_seconds,
        token=grpcauth.own_token(config.grpc_token_file),
    )

    async def ping() -> None:
        await mongo.ping(client)

    orchestrator = service.Orchestrator(
        records=service_records,
        analytics_store=analytics_store,
        files=files_client,
        ping_database=ping,
        creating_grace_seconds=config.creating_grace_seconds,
        max_inline_output_bytes=config.max_inline_output_bytes,
        local_containers=config.local_containers,
        expose_services=config.expose_services,
        live_logs=build_live_logs(config, analytics_store),
    )
    indexes = asyncio.create_task(_ensure_indexes(service_records), name="orchestrator-indexes")
    log.info(
        "orchestrator configured",
        backend=config.backend,
        local_containers=config.local_containers,
        expose_services=config.expose_services,
        namespace=config.namespace,
        database=config.database,
        files=config.files_address,
    )

    async def cleanup() -> None:
        indexes.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await indexes
        await files_client.close()
        await analytics_store.close()
        await client.close()

    registration = Registration(
        service_name=servicer.SERVICE_NAME,
        add_to_server=orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
        servicer=servicer.OrchestratorServicer(orchestrator),
    )
    return [registration], cleanup


async def _ensure_indexes(service_records: records.ServiceRecords) -> None:
    while True:
        try:
            await service_records.ensure_indexes()
        except errors.Unavailable:
            log.warning("database unreachable; indexes created later")
            await asyncio.sleep(INDEX_RETRY_SECONDS)
            continue
        return
