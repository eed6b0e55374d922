"""HTTP probes and metrics: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

Liveness answers 200 while the event loop turns and every core task (the
reconcile workers, the watch or poll feeder) is alive, so a wedged operator
is restarted. Readiness answers 200 once the operator has listed its
Analytics at least once, i.e. it is actually reconciling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class Health:
    """What the probes report; the app updates it."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def alive(self) -> bool:
        return all(not t.done() for t in self.tasks)


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def start_servers(
    health: Health, *, health_listen: str, metrics_listen: str
) -> Iterable[web.AppRunner]:
    """Start the probe server (and the metrics server when ``metrics_listen`` is set)."""

    async def healthz(_: web.Request) -> web.Response:
        if health.alive():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "a core task stopped"}, status=500)

    async def readyz(_: web.Request) -> web.Response:
        if health.ready.is_set() and health.alive():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    runners = []
    probe_app = web.Application()
    probe_app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])
    if metrics_listen == health_listen:
        probe_app.add_routes([web.get("/metrics", metrics)])
    runners.append(await _serve(probe_app, health_listen))
    if metrics_listen and metrics_listen != health_listen:
        metrics_app = web.Application()
        metrics_app.add_routes([web.get("/metrics", metrics)])
        runners.append(await _serve(metrics_app, metrics_listen))
    return runners


async def _serve(app: web.Application, listen: str) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = _split(listen)
    await web.TCPSite(runner, host, port).start()
    return runner
