"""Gateway overhead: one GET through REST vs the same call over gRPC directly.

Starts FerretDB (:mod:`dtpoc_local`), ``dtpoc-files``, ``dtpoc-orchestrator``
(local backend) and ``dtpoc-gateway`` (bearer auth on, access log on: as
deployed), launches one service record, then measures
``GET /api/orchestrator/v1alpha1/service/{id}/status`` through the gateway
and ``GetServiceStatus`` straight to the orchestrator, at concurrency 1 and
32, in one run. Prints p50/p99 latency and requests/s for each, and the
ratio REST/gRPC; the target is REST p50 <= 1.5 x gRPC p50 at concurrency 1.
The same comparison for ``/healthz`` (no database behind it) shows the
gateway's own cost against a bare gRPC round trip, for information.

Both clients are as light as Python allows, so that the figures show the
servers and not the client libraries: gRPC uses ``grpc.aio`` on one channel;
REST uses a minimal HTTP/1.1 keep-alive client on raw asyncio streams (one
connection per concurrent caller), the way a browser or ``requests.Session``
reuses connections.

Run: ``uv run python bench/gateway.py [--requests N] [--mongodb-uri URI]``.
The machine is shared; run it twice before trusting a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_common.vocabulary import API_PREFIX as PREFIX
from dtpoc_local import ferretdb
from dtpoc_local.credentials import credentials
from dtpoc_local.servers import files as files_platform
from dtpoc_local.servers import gateway as gateway_platform
from dtpoc_local.servers import orchestrator as orchestrator_platform

TOKEN = "bench-token"
TARGET_RATIO = 1.5
CONCURRENCIES = (1, 32)


@dataclass
class Figures:
    target: str
    way: str
    concurrency: int
    count: int
    p50_ms: float
    p99_ms: float
    per_second: float


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class HttpConnection:
    """A keep-alive HTTP/1.1 connection that sends GETs and reads sized answers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str) -> tuple[int, bytes]:
        try:
            return await self._get(path)
        except (ConnectionError, IndexError, asyncio.IncompleteReadError):
            # The server closed an idle connection: open a new one, as clients do.
            self.close()
            await self.open()
            return await self._get(path)

    async def _get(self, path: str) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def measure(
    target: str, way: str, concurrency: int, count: int, call: object, *, warmup: int
) -> Figures:
    """Run ``count`` calls split over ``concurrency`` callers; time each one."""
    callers: list[Any] = call if isinstance(call, list) else [call] * concurrency
    for index in range(warmup):
        await callers[index % concurrency]()
    samples: list[float] = []
    per_caller = count // concurrency

    async def caller(fn: Any) -> None:
        for _ in range(per_caller):
            started = time.perf_counter()
            await fn()
            samples.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller(callers[i]) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Figures(
        target=target,
        way=way,
        concurrency=concurrency,
        count=len(samples),
        p50_ms=percentile(samples, 0.50) * 1000,
        p99_ms=percentile(samples, 0.99) * 1000,
        per_second=len(samples) / elapsed,
    )


async def compare(
    target: str,
    *,
    base_url: str,
    path: str,
    grpc_call: Callable[[], Awaitable[None]],
    check: Callable[[bytes], None],
    count: int,
) -> list[Figures]:
    """REST vs gRPC for one GET, at each concurrency, the two ways interleaved."""
    host, _, port = base_url.removeprefix("http://").rpartition(":")
    results: list[Figures] = []
    for concurrency in CONCURRENCIES:
        connections = [HttpConnection(host, int(port)) for _ in range(concurrency)]
        for connection in connections:
            await connection.open()

        def rest_caller(connection: HttpConnection) -> Callable[[], Awaitable[None]]:
            async def rest_call() -> None:
                status, body = await connection.get(path)
                assert status == 200, body[:200]
                check(body)

            return rest_call

        rest_callers = [rest_caller(c) for c in connections]
        total = count * (4 if concurrency > 1 else 1)
        warmup = min(200, total // 5)
        # Interleave the two ways in halves so that a burst of load from other
        # processes on the machine does not land on one way only.
        halves: dict[str, list[Figures]] = {"rest": [], "grpc": []}
        for _ in range(2):
            for way, call in (("grpc", grpc_call), ("rest", rest_callers)):
                halves[way].append(
                    await measure(target, way, concurrency, total // 2, call, warmup=warmup)
                )
        for way in ("rest", "grpc"):
            parts = halves[way]
            results.append(
                Figures(
                    target=target,
                    way=way,
                    concurrency=concurrency,
                    count=sum(p.count for p in parts),
                    p50_ms=statistics.mean(p.p50_ms for p in parts),
                    p99_ms=max(p.p99_ms for p in parts),
                    per_second=statistics.mean(p.per_second for p in parts),
                )
            )
        for connection in connections:
            connection.close()
    return results


async def bench(*, base_url: str, grpc_address: str, service_id: str, count: int) -> list[Figures]:
    channel = credentials().aio_channel(grpc_address)
    stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
    status_request = orchestrator_pb2.GetServiceStatusRequest(id=service_id)
    expected = (await stub.GetServiceStatus(status_request, timeout=10)).status.total_runs

    async def grpc_status() -> None:
        answer = await stub.GetServiceStatus(status_request, timeout=10)
        assert answer.status.total_runs == expected

    def check_status(body: bytes) -> None:
        assert json.loads(body)["total_runs"] == expected

    async def grpc_healthz() -> None:
        answer = await stub.Healthz(orchestrator_pb2.HealthzRequest(), timeout=10)
        assert answer.status == "ok"

    def check_healthz(body: bytes) -> None:
        assert json.loads(body) == {"status": "ok"}

    try:
        return [
            *await compare(
                "status",
                base_url=base_url,
                path=f"{PREFIX}/service/{service_id}/status",
                grpc_call=grpc_status,
                check=check_status,
                count=count,
            ),
            *await compare(
                "healthz",
                base_url=base_url,
                path=f"{PREFIX}/healthz",
                grpc_call=grpc_healthz,
                check=check_healthz,
                count=count,
            ),
        ]
    finally:
        await channel.close()


def report(results: list[Figures]) -> tuple[str, bool]:
    lines = [
        f"{'GET':8s} {'way':5s} {'conc':>4s} {'requests':>8s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'req/s':>7s}",
    ]
    for item in results:
        lines.append(
            f"{item.target:8s} {item.way:5s} {item.concurrency:4d} {item.count:8d} "
            f"{item.p50_ms:8.3f} {item.p99_ms:8.3f} {item.per_second:7.0f}"
        )
    met = True
    for target in dict.fromkeys(r.target for r in results):
        for concurrency in CONCURRENCIES:
            rest, direct = (
                next(
                    r
                    for r in results
                    if r.target == target and r.way == way and r.concurrency == concurrency
                )
                for way in ("rest", "grpc")
            )
            ratio = rest.p50_ms / direct.p50_ms
            lines.append(
                f"{target:8s} concurrency {concurrency:2d}: REST/gRPC p50 {ratio:.2f}x, p99 "
                f"{rest.p99_ms / direct.p99_ms:.2f}x, req/s "
                f"{rest.per_second / direct.per_second:.2f}x, added p50 "
                f"{rest.p50_ms - direct.p50_ms:+.3f} ms"
            )
            if target == "status" and concurrency == 1:
                met = ratio <= TARGET_RATIO
                lines.append(
                    f"target REST p50 <= {TARGET_RATIO}x gRPC p50 (status, concurrency 1): "
                    + ("met" if met else "MISSED")
                )
    lines.append(
        "healthz touches no database: its ratio is the gateway's own cost against a "
        "bare gRPC round trip (informational)."
    )
    return "\n".join(lines), met


def run(*, count: int, mongodb_uri: str | None, workdir: Path) -> tuple[str, bool]:
    with contextlib.ExitStack() as stack:
        if mongodb_uri is None:
            database = ferretdb.start_ferretdb(workdir=workdir / "ferretdb")
            stack.callback(database.stop)
            mongodb_uri = database.uri
        files = files_platform.start_files_server(
            mongodb_uri=mongodb_uri, workdir=workdir / "files"
        )
        stack.callback(files.stop)
        orchestrator = orchestrator_platform.start_orchestrator_server(
            mongodb_uri=mongodb_uri, workdir=workdir / "orchestrator", files_address=files.address
        )
        stack.callback(orchestrator.stop)
        gateway = gateway_platform.start_gateway(
            workdir=workdir / "gateway",
            files_address=files.address,
            orchestrator_address=orchestrator.address,
            token_hashes=[hashlib.sha256(TOKEN.encode()).hexdigest()],
        )
        stack.callback(gateway.stop)
        with credentials().channel(orchestrator.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            launched = stub.LaunchService(
                orchestrator_pb2.LaunchServiceRequest(
                    image="ghcr.io/example/bench",
                    version="1.0",
                    ana=orchestrator_pb2.AnalyticsOptions(job_type="ondemand", reps=2),
                    command=["python", "-c", "print('bench')"],
                ),
                timeout=30,
            )
        print(
            f"FerretDB {mongodb_uri}, orchestrator {orchestrator.address}, gateway "
            f"{gateway.base_url}; GET .../service/{launched.id}/status",
            flush=True,
        )
        results = asyncio.run(
            bench(
                base_url=gateway.base_url,
                grpc_address=orchestrator.address,
                service_id=launched.id,
                count=count,
            )
        )
        return report(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=1000, help="requests per way at concurrency 1 (x4 at 32)"
    )
    parser.add_argument(
        "--mongodb-uri", default=None, help="use this MongoDB-protocol server, not FerretDB"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        table, _met = run(count=args.requests, mongodb_uri=args.mongodb_uri, workdir=Path(tmp))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
