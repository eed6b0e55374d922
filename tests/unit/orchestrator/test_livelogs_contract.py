"""The LiveLogs port's contract: the local runtime's log files and the in-memory fake.

What the ``logs/{idx}`` use case relies on from a live source: the attempts
it has, oldest first; an attempt's whole log with its earlier tries first;
nothing for an attempt it does not have; and, followed, what the replica
prints after the request, until the attempt is over, with nothing printed
before that moment lost. ``LocalLiveLogs`` runs on a real folder laid out
as the local operator's supervisor writes it (``spawn.json`` naming the
attempt, the ``log`` beside it); ``InMemoryLiveLogs`` is the named fake the
unit tier uses. The Kubernetes adapter (pod logs through the apiserver needs
a kubelet) is shown by tests/e2e and tests/cluster's replica-log tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import replica_logs
from dtpoc_orchestrator import logs
from dtpoc_orchestrator.adapters import memory
from dtpoc_orchestrator.adapters.locallogs import LocalLiveLogs

SERVICE = "6b00000000000000000000aa"
RUN = "6b00000000000000000000aa-1700000000"
#: A follow that never ends fails the test instead of hanging it.
DEADLINE_SECONDS = 20.0


class Printer(Protocol):
    """Makes a replica's attempt print, the way its runtime would."""

    async def print(self, *, index: int, attempt: int, data: bytes) -> None: ...

    def restart(self, *, index: int, attempt: int) -> None: ...


@dataclass
class FolderPrinter:
    """Writes as the local operator's supervisor does: a try folder per start."""

    root: Path

    def _replica(self, index: int) -> Path:
        return replica_logs.local_replica_dir(self.root, service_id=SERVICE, run=RUN, index=index)

    def _tries(self, index: int, attempt: int) -> list[Path]:
        return replica_logs.local_attempts(self.root, service_id=SERVICE, run=RUN, index=index).get(
            attempt, []
        )

    def restart(self, *, index: int, attempt: int) -> None:
        folder = self._replica(index)
        folder.mkdir(parents=True, exist_ok=True)
        number = len([p for p in folder.iterdir() if p.name.isdigit()])
        try_dir = folder / str(number)
        try_dir.mkdir()
        (try_dir / "spawn.json").write_text(json.dumps({"attempt": attempt}))

    async def print(self, *, index: int, attempt: int, data: bytes) -> None:
        if not self._tries(index, attempt):
            self.restart(index=index, attempt=attempt)
        with self._tries(index, attempt)[-1].open("ab") as log:
            log.write(data)


@dataclass
class FakePrinter:
    fake: memory.InMemoryLiveLogs

    def restart(self, *, index: int, attempt: int) -> None:
        self.fake.restart(service_id=SERVICE, run=RUN, index=index, attempt=attempt)

    async def print(self, *, index: int, attempt: int, data: bytes) -> None:
        await self.fake.print(service_id=SERVICE, run=RUN, index=index, attempt=attempt, data=data)


@dataclass
class Source:
    live: logs.LiveLogs
    printer: Printer


@pytest.fixture(params=["local", "memory"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    if request.param == "local":
        return Source(live=LocalLiveLogs(tmp_path), printer=FolderPrinter(tmp_path))
    fake = memory.InMemoryLiveLogs()
    return Source(live=fake, printer=FakePrinter(fake))


def replica(index: int) -> analytics_pb2.ReplicaStatus:
    return analytics_pb2.ReplicaStatus(index=index, run=RUN)


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([data async for data in stream])


async def read(
    source: Source,
    *,
    index: int,
    attempt: int,
    until: logs.Ended | None = None,
) -> bytes:
    log = logs.AttemptLog(service_id=SERVICE, replica=replica(index), attempt=attempt)
    stream = source.live.stream(log, until=until)
    return await asyncio.wait_for(collect(stream), timeout=DEADLINE_SECONDS)


async def test_a_replica_that_never_printed_has_no_attempt_and_no_log(source: Source) -> None:
    assert await source.live.attempts(service_id=SERVICE, replica=replica(0)) == []
    assert await read(source, index=0, attempt=1) == b""


async def test_attempts_are_listed_oldest_first_and_per_replica(source: Source) -> None:
    await source.printer.print(index=0, attempt=2, data=b"second\n")
    await source.printer.print(index=0, attempt=1, data=b"first\n")
    await source.printer.print(index=1, attempt=1, data=b"other replica\n")
    assert await source.live.attempts(service_id=SERVICE, replica=replica(0)) == [1, 2]
    assert await source.live.attempts(service_id=SERVICE, replica=replica(1)) == [1]
    assert await read(source, index=0, attempt=1) == b"first\n"
    assert await read(source, index=0, attempt=2) == b"second\n"
    assert await read(source, index=0, attempt=3) == b""


async def test_an_attempts_earlier_tries_come_first(source: Source) -> None:
    await source.printer.print(index=0, attempt=1, data=b"try 0\n")
    source.printer.restart(index=0, attempt=1)
    await source.printer.print(index=0, attempt=1, data=b"try 1\n")
    assert await read(source, index=0, attempt=1) == b"try 0\ntry 1\n"


class Follow:
    """A follow of replica 0's attempt 1, read by a task while the test prints."""

    def __init__(self, source: Source) -> None:
        self.over = False
        self.received = bytearray()
        self._asked = asyncio.Event()
        log = logs.AttemptLog(service_id=SERVICE, replica=replica(0), attempt=1)
        stream = source.live.stream(log, until=self._ended)
        self.task = asyncio.create_task(self._read(stream))

    async def _ended(self) -> bool:
        self._asked.set()
        return self.over

    async def _read(self, stream: AsyncIterator[bytes]) -> None:
        async for data in stream:
            self.received.extend(data)

    async def idle(self) -> None:
        """Wait until the follow has sent what there is and asks whether the attempt is over."""
        self._asked.clear()
        asked = asyncio.create_task(self._asked.wait())
        await asyncio.wait(
            {asked, self.task}, timeout=DEADLINE_SECONDS, return_when="FIRST_COMPLETED"
        )
        asked.cancel()
        assert not self.task.done(), f"the follow ended while running: {bytes(self.received)!r}"
        assert self._asked.is_set(), "the follow never went idle"


async def test_a_follow_delivers_what_is_printed_after_it_began_until_the_attempt_ends(
    source: Source,
) -> None:
    await source.printer.print(index=0, attempt=1, data=b"before\n")
    follow = Follow(source)
    await follow.idle()
    assert bytes(follow.received) == b"before\n"
    await source.printer.print(index=0, attempt=1, data=b"while running\n")
    await follow.idle()
    assert bytes(follow.received) == b"before\nwhile running\n"
    # Printed just before the attempt counts as over: still delivered, then the end.
    await source.printer.print(index=0, attempt=1, data=b"last words\n")
    follow.over = True
    await asyncio.wait_for(follow.task, timeout=DEADLINE_SECONDS)
    assert bytes(follow.received) == b"before\nwhile running\nlast words\n"


async def test_a_follow_of_an_attempt_already_over_ends_with_its_log(source: Source) -> None:
    await source.printer.print(index=0, attempt=1, data=b"done\n")

    async def ended() -> bool:
        return True

    assert await read(source, index=0, attempt=1, until=ended) == b"done\n"
