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
from collections.abc import Awaitable, Callable
from typing import Any

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc_common import grpcauth, grpcclient, mongo
from dtpoc_common import logging as dlog
from dtpoc_operator import collector, fetch_tokens, health, metrics, ports, reconciler
from dtpoc_operator.model import ServiceKey
from dtpoc_operator.settings import OperatorSettings
from dtpoc_operator.workqueue import WorkQueue

log = dlog.get_logger(__name__)


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


async def run(settings: OperatorSettings) -> None:
    """Run until SIGTERM/SIGINT (or a core task fails)."""
    dlog.configure(settings.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    queue: WorkQueue[ServiceKey] = WorkQueue()
    channel = grpcclient.open_channel(
        settings.files_address,
        max_message_bytes=settings.max_message_bytes,
        token=grpcauth.own_token(settings.grpc_token_file),
    )
    minter = fetch_tokens.FetchTokens.from_file(
        settings.fetch_key_file, ttl_seconds=settings.fetch_token_ttl_seconds
    )
    output_collector = collector.OutputCollector(
        files_pb2_grpc.FilesServiceStub(channel),
        max_parallel_uploads=settings.max_parallel_uploads,
        timeout_seconds=settings.files_timeout_seconds,
        max_file_bytes=settings.max_output_file_bytes,
    )
    state = health.Health()
    listed = asyncio.Event()
    closers: list[Callable[[], Awaitable[Any]]] = [channel.close]
    feeders: list[Awaitable[None]] = []

    store: ports.AnalyticsStore
    runtime: ports.Runtime
    if settings.runtime == "kubernetes":
        from dtpoc_operator.kube import api as kapi
        from dtpoc_operator.kube import manifests, watch
        from dtpoc_operator.kube.cache import WatchCache
        from dtpoc_operator.kube.runtime import KubeRuntime
        from dtpoc_operator.kube.store import KubeAnalyticsStore

        configuration = await kapi.load_configuration(settings.kubeconfig)
        api = kapi.KubeApi(configuration)
        closers.append(api.close)
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
        )
        watching = asyncio.Event()
        feeders.append(
            watch.run(
                queue,
                credentials=await kapi.connection_info(configuration),
                namespaces=namespaces,
                ready=watching,
                stop=stop,
                cache=cache,
            )
        )
        resyncer = _resync(store, queue, interval=settings.resync_seconds, ready=listed)
        ready_events = [listed, watching]
        log.info("operator starting", runtime="kubernetes", namespaces=namespaces)
    else:
        from dtpoc_operator.local import containers, poll
        from dtpoc_operator.local.runtime import LocalRuntime
        from dtpoc_operator.local.store import MongoAnalyticsStore

        client = mongo.open_client(
            settings.mongodb_uri, timeout_ms=settings.mongodb_timeout_ms, appname="dtpoc-operator"
        )
        closers.append(client.close)
        local_store = MongoAnalyticsStore(
            client, database=settings.local_database, collection=settings.local_collection
        )
        store = local_store
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
        )
        # The journal every poll, the full listing every resync (local/poll.py).
        resyncer = poll.feed(
            local_store,
            queue,
            poll_seconds=settings.local_poll_seconds,
            resync_seconds=settings.resync_seconds,
            ready=listed,
        )
        ready_events = [listed]
        log.info(
            "operator starting",
            runtime="local",
            output_root=str(settings.output_root),
            container_engine=engine.name if engine else "none",
        )

    worker = reconciler.Reconciler(
        store=store,
        runtime=runtime,
        collector=output_collector,
        options=reconciler.ReconcilerOptions(
            terminate_grace_seconds=settings.terminate_grace_seconds,
            status_max_runs=settings.status_max_runs,
        ),
        book=metrics.StateBook(),
    )

    tasks = [
        asyncio.create_task(
            queue.run(workers=settings.max_parallel_reconciles, handler=worker.reconcile),
            name="work queue",
        ),
        asyncio.create_task(_as_task(resyncer), name="resync"),
    ]
    tasks += [asyncio.create_task(_as_task(f), name="watch") for f in feeders]
    state.tasks = list(tasks)

    async def readiness() -> None:
        for event in ready_events:
            await event.wait()
        state.ready.set()
        log.info("operator ready")

    tasks.append(asyncio.create_task(readiness(), name="readiness"))
    runners = await health.start_servers(
        state, health_listen=settings.health_listen, metrics_listen=settings.metrics_listen
    )
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait(
            [stopper, *[t for t in tasks if t.get_name() != "readiness"]],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                log.error("core task failed", task=task.get_name(), error=str(task.exception()))
    finally:
        stop.set()
        for task in tasks:
            if task.get_name() != "watch":
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=15)
        for runner in runners:
            await runner.cleanup()
        for close in closers:
            with contextlib.suppress(Exception):
                await close()
        log.info("operator stopped")


async def _as_task(awaitable: Awaitable[None]) -> None:
    await awaitable
