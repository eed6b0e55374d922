"""Wires one operator process: settings -> adapters -> reconciler -> work queue -> feeders.

Both runtimes share everything but the adapters and the feeder that adds
keys to the queue: kopf's watch streams (Kubernetes) or polling of the
local store. A periodic full resync adds every key in both, so a missed
event delays a reconcile but never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc_common import grpcauth, grpcclient, mongo
from dtpoc_common import logging as dlog
from dtpoc_operator import collector, fetch_tokens, health, logstore, metrics, ports, reconciler
from dtpoc_operator.model import ServiceKey
from dtpoc_operator.settings import OperatorSettings
from dtpoc_operator.workqueue import WorkQueue

log = dlog.get_logger(__name__)

#: Closes one client the wiring opened (a gRPC channel, the Kubernetes API, MongoDB).
Closer = Callable[[], Awaitable[Any]]


async def _resync(
    store: ports.AnalyticsStore,
    queue: WorkQueue[ServiceKey],
    *,
    interval: float,
    ready: asyncio.Event,
) -> None:
    """Add every key every ``interval`` seconds; ``ready`` after the first full listing."""
    while True:
        try:
            keys = await store.list_keys()
        except ports.AdapterError as error:
            log.warning("listing Analytics failed; retrying", error=str(error))
            await asyncio.sleep(min(interval, 5.0))
            continue
        for key in keys:
            queue.add(key)
        ready.set()
        await asyncio.sleep(interval)


@dataclass
class Wiring:
    """What one runtime's wiring built: its adapters, what feeds the queue, what to close.

    ``watches`` end by themselves once ``stop`` is set (kopf's streams);
    ``resync`` runs until cancelled; the operator is ready when every event
    of ``ready`` is set.
    """

    store: ports.AnalyticsStore
    runtime: ports.Runtime
    resync: Awaitable[None]
    watches: list[Awaitable[None]] = field(default_factory=list)
    ready: list[asyncio.Event] = field(default_factory=list)
    closers: list[Closer] = field(default_factory=list)


@dataclass(frozen=True)
class Tasks:
    """The running tasks, grouped by how they stop (no supervision by name strings)."""

    #: Cancelled at shutdown: the work queue and the resync.
    cancelled: list[asyncio.Task[None]]
    #: Stop by themselves once ``stop`` is set: the watch streams.
    self_stopping: list[asyncio.Task[None]]
    #: Sets the health state's ready flag; its end stops nothing.
    readiness: asyncio.Task[None]

    @property
    def core(self) -> list[asyncio.Task[None]]:
        """The tasks whose end (by failure or otherwise) stops the operator."""
        return [*self.cancelled, *self.self_stopping]


async def run(settings: OperatorSettings) -> None:
    """Run until SIGTERM/SIGINT (or a core task fails): wire, spawn, supervise, shut down."""
    dlog.configure(settings.log_level)
    stop = _stop_on_signals()
    queue: WorkQueue[ServiceKey] = WorkQueue()
    channel = grpcclient.open_channel(
        settings.files_address,
        max_message_bytes=settings.max_message_bytes,
        token=grpcauth.own_token(settings.grpc_token_file),
    )
    minter = fetch_tokens.FetchTokens.from_file(
        settings.fetch_key_file, ttl_seconds=settings.fetch_token_ttl_seconds
    )
    if settings.runtime == "kubernetes":
        wiring = await wire_kubernetes(settings, queue=queue, minter=minter, stop=stop)
    else:
        wiring = await wire_local(settings, queue=queue, minter=minter)
    worker = _reconciler(settings, wiring, files=channel)
    state = health.Health()
    tasks = spawn(settings, queue=queue, worker=worker, wiring=wiring, state=state)
    runners = await health.start_servers(
        state, health_listen=settings.health_listen, metrics_listen=settings.metrics_listen
    )
    try:
        await supervise(tasks, stop=stop)
    finally:
        await shut_down(tasks, stop=stop, runners=runners, closers=[channel.close, *wiring.closers])


def _stop_on_signals() -> asyncio.Event:
    """An event SIGTERM and SIGINT set."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def wire_kubernetes(
    settings: OperatorSettings,
    *,
    queue: WorkQueue[ServiceKey],
    minter: fetch_tokens.FetchTokens | None,
    stop: asyncio.Event,
) -> Wiring:
    """The Kubernetes adapters (one watch cache for store and runtime) and kopf's watches."""
    from dtpoc_operator.kube import api as kapi
    from dtpoc_operator.kube import manifests, watch
    from dtpoc_operator.kube.cache import WatchCache
    from dtpoc_operator.kube.runtime import KubeRuntime
    from dtpoc_operator.kube.store import KubeAnalyticsStore

    configuration = await kapi.load_configuration(settings.kubeconfig)
    api = kapi.KubeApi(configuration)
    namespaces = settings.namespace_list()
    cache = WatchCache(job_label=manifests.JOB_NAME_LABEL)
    store = KubeAnalyticsStore(api, namespaces=namespaces, cache=cache)
    runtime = KubeRuntime(
        api,
        children=manifests.ChildSettings(
            init_image=settings.image,
            output_pvc=settings.output_pvc,
            files_address=settings.files_address_for_pods(),
            ingress_class=settings.ingress_class,
            ingress_host=settings.ingress_host,
            expose=settings.expose_services,
            auth_url=settings.expose_auth_url,
            ingress_tls_secret=settings.ingress_tls_secret_name,
            fetch_tokens=minter,
        ),
        output_root=settings.output_root,
        cache=cache,
        log_max_bytes=settings.log_max_bytes,
    )
    listed, watching = asyncio.Event(), asyncio.Event()
    watcher = watch.run(
        queue,
        credentials=await kapi.connection_info(configuration),
        namespaces=namespaces,
        ready=watching,
        stop=stop,
        cache=cache,
    )
    log.info("operator starting", runtime="kubernetes", namespaces=namespaces)
    return Wiring(
        store=store,
        runtime=runtime,
        resync=_resync(store, queue, interval=settings.resync_seconds, ready=listed),
        watches=[watcher],
        ready=[listed, watching],
        closers=[api.close],
    )


async def wire_local(
    settings: OperatorSettings,
    *,
    queue: WorkQueue[ServiceKey],
    minter: fetch_tokens.FetchTokens | None,
) -> Wiring:
    """The local adapters (MongoDB store, processes or containers) and the store's poller."""
    from dtpoc_operator.local import containers, forkserver, poll
    from dtpoc_operator.local.runtime import LocalRuntime
    from dtpoc_operator.local.store import MongoAnalyticsStore

    client = mongo.open_client(
        settings.mongodb_uri, timeout_ms=settings.mongodb_timeout_ms, appname="dtpoc-operator"
    )
    store = MongoAnalyticsStore(
        client, database=settings.local_database, collection=settings.local_collection
    )
    settings.output_root.mkdir(parents=True, exist_ok=True)
    engine = await asyncio.to_thread(
        containers.detect,
        settings.local_container_engine,
        oci_runtime=settings.local_oci_runtime,
        containers_conf=settings.local_containers_conf,
        state_root=settings.state_root(),
    )
    runtime = LocalRuntime(
        output_root=settings.output_root,
        state_root=settings.state_root(),
        files_address=settings.files_address,
        max_processes=settings.local_max_processes,
        on_change=queue.add,
        engine=engine,
        stop_grace_seconds=settings.terminate_grace_seconds,
        fetch_tokens=minter,
        fork_server=forkserver.ForkServer(),
        log_max_bytes=settings.log_max_bytes,
    )
    listed = asyncio.Event()
    log.info(
        "operator starting",
        runtime="local",
        output_root=str(settings.output_root),
        container_engine=engine.name if engine else "none",
    )
    return Wiring(
        store=store,
        runtime=runtime,
        # The journal every poll, the full listing every resync (local/poll.py).
        resync=poll.feed(
            store,
            queue,
            poll_seconds=settings.local_poll_seconds,
            resync_seconds=settings.resync_seconds,
            ready=listed,
        ),
        ready=[listed],
        closers=[client.close],
    )


def _reconciler(
    settings: OperatorSettings, wiring: Wiring, *, files: grpc.aio.Channel
) -> reconciler.Reconciler:
    """The reconciler over the wired adapters, moving outputs into Files over ``files``."""
    return reconciler.Reconciler(
        store=wiring.store,
        runtime=wiring.runtime,
        collector=collector.OutputCollector(
            files_pb2_grpc.FilesServiceStub(files),
            max_parallel_uploads=settings.max_parallel_uploads,
            timeout_seconds=settings.files_timeout_seconds,
            max_file_bytes=settings.max_output_file_bytes,
        ),
        options=reconciler.ReconcilerOptions(
            terminate_grace_seconds=settings.terminate_grace_seconds,
            status_max_runs=settings.status_max_runs,
        ),
        book=metrics.StateBook(),
        log_store=logstore.LogStore(
            files_pb2_grpc.FilesServiceStub(files), timeout_seconds=settings.files_timeout_seconds
        ),
    )


def spawn(
    settings: OperatorSettings,
    *,
    queue: WorkQueue[ServiceKey],
    worker: reconciler.Reconciler,
    wiring: Wiring,
    state: health.Health,
) -> Tasks:
    """Start the work queue, the feeders and the readiness watcher; liveness follows the core."""
    handled = queue.run(workers=settings.max_parallel_reconciles, handler=worker.reconcile)
    tasks = Tasks(
        cancelled=[
            asyncio.create_task(handled, name="work queue"),
            asyncio.create_task(_as_task(wiring.resync), name="resync"),
        ],
        self_stopping=[asyncio.create_task(_as_task(w), name="watch") for w in wiring.watches],
        readiness=asyncio.create_task(_readiness(wiring.ready, state), name="readiness"),
    )
    state.tasks = tasks.core
    return tasks


async def _readiness(events: list[asyncio.Event], state: health.Health) -> None:
    for event in events:
        await event.wait()
    state.ready.set()
    log.info("operator ready")


async def supervise(tasks: Tasks, *, stop: asyncio.Event) -> None:
    """Wait for ``stop`` or the first core task to end; log a core task's failure."""
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopper, *tasks.core], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            log.error("core task failed", task=task.get_name(), error=str(task.exception()))


async def shut_down(
    tasks: Tasks,
    *,
    stop: asyncio.Event,
    runners: Iterable[web.AppRunner],
    closers: list[Closer],
) -> None:
    """Stop the watches, cancel the rest, wait for all (15 s at most), close what was opened."""
    stop.set()
    for task in [*tasks.cancelled, tasks.readiness]:
        task.cancel()
    everything = [*tasks.core, tasks.readiness]
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(asyncio.gather(*everything, return_exceptions=True), timeout=15)
    for runner in runners:
        await runner.cleanup()
    for close in closers:
        with contextlib.suppress(Exception):
            await close()
    log.info("operator stopped")


async def _as_task(awaitable: Awaitable[None]) -> None:
    await awaitable
