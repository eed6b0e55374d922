"""``logs/{idx}``: which attempt's log answers, where it is read from, which lines.

A replica's log is read live while the runtime still has it (a running
pod's log through the apiserver, a local attempt's ``log`` file: the
:class:`LiveLogs` port) and from the copy the operator stored in Files once
the replica ended (its status entry's ``logs``); the stored copy wins when
both exist, since it is complete. Both hold lines in the format of
:mod:`dtpoc_common.replica_logs` (each with the time it was printed), so
``since_seconds``, ``tail_lines`` and the time prefixes work the same on
either.

With ``follow``, what is there already (the lines printed before the
request, which ``tail_lines`` and ``since_seconds`` select from) is sent
first, at once, then each new batch of lines as the replica prints them,
until the live source ends (the replica ended). A stored log has nothing
more to follow: it is sent and the stream ends.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import errors, replica_logs

#: Most text in one answer message.
CHUNK_CHARS = 64 * 1024
#: How long a follow waits for more of what was printed before the request
#: before it sends what it has (the backlog may arrive in several reads).
BACKLOG_IDLE_SECONDS = 0.3

Ended = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class AttemptLog:
    """Which log :meth:`LiveLogs.stream` reads: one attempt (from 1) of one replica."""

    service_id: str
    replica: analytics_pb2.ReplicaStatus
    attempt: int


@dataclass(frozen=True)
class LogQuery:
    """What the caller asked for (see ``GetReplicaLogRequest``)."""

    attempt: int | None = None
    follow: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    timestamps: bool = False

    def validate(self) -> None:
        if self.attempt is not None and self.attempt < 1:
            raise errors.InvalidArgument(f"must be >= 1, got {self.attempt}", field="attempt")
        if self.tail_lines is not None and self.tail_lines < 0:
            raise errors.InvalidArgument(f"must be >= 0, got {self.tail_lines}", field="tail_lines")
        if self.since_seconds is not None and self.since_seconds <= 0:
            raise errors.InvalidArgument(
                f"must be > 0, got {self.since_seconds}", field="since_seconds"
            )


@dataclass(frozen=True)
class LogChunk:
    """One answer message: whole lines of one attempt."""

    text: str
    attempt: int
    truncated: bool


class LiveLogs(Protocol):
    """The logs the runtime still has (running replicas, and ended ones not yet cleaned)."""

    async def attempts(self, *, service_id: str, replica: analytics_pb2.ReplicaStatus) -> list[int]:
        """The attempts (from 1) whose log the runtime has, oldest first."""
        ...

    def stream(self, log: AttemptLog, *, until: Ended | None) -> AsyncIterator[bytes]:
        """The attempt's log from its start; to follow it, ``until``: then what it
        prints until ``until()`` answers True (the replica's attempt is over)."""
        ...


class NoLiveLogs:
    """No live source (a store the orchestrator cannot read logs through): only
    stored logs, once the replica ended."""

    async def attempts(self, *, service_id: str, replica: analytics_pb2.ReplicaStatus) -> list[int]:
        return []

    async def stream(self, log: AttemptLog, *, until: Ended | None) -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator


def pick_attempt(
    *, idx: int, replica: analytics_pb2.ReplicaStatus, live: list[int], wanted: int | None
) -> int:
    """The attempt to answer: the one asked for, else the latest known."""
    known = sorted({g.attempt for g in replica.logs} | set(live))
    if not known:
        state = replica.state or "pending"
        raise errors.NotFound(f"replica {idx} has no log yet (state {state})")
    if wanted is None:
        return known[-1]
    if wanted not in known:
        listed = ", ".join(str(a) for a in known)
        raise errors.NotFound(f"replica {idx} has no log of attempt {wanted} (attempts: {listed})")
    return wanted


class _Lines:
    """Bytes into text lines, an unfinished last line kept back until it ends."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> list[str]:
        parts = (self._carry + data).split(b"\n")
        self._carry = parts.pop()
        return [p.decode(errors="replace") for p in parts]

    def rest(self) -> list[str]:
        carry, self._carry = self._carry, b""
        return [carry.decode(errors="replace")] if carry else []


class _Selector:
    """Which lines are shown and how: ``since_seconds`` and the time prefixes."""

    def __init__(self, query: LogQuery, *, now: dt.datetime, truncated: bool) -> None:
        self._query = query
        self._cutoff = (
            replica_logs.seconds_key(
                replica_logs.timestamp(now - dt.timedelta(seconds=query.since_seconds))
            )
            if query.since_seconds
            else ""
        )
        self._keep = not self._cutoff
        self.truncated = truncated

    def select(self, lines: Iterable[str]) -> list[tuple[str, str]]:
        """(time prefix, rendered line) of each line shown."""
        shown = []
        for line in lines:
            stamp, text = replica_logs.split_line(line)
            if stamp and self._cutoff:
                self._keep = replica_logs.seconds_key(stamp) >= self._cutoff
            if text.startswith(replica_logs.MARKER_PREFIX):
                self.truncated = True
            if self._keep:
                shown.append((stamp, line if self._query.timestamps else text))
        return shown


def _chunks(lines: Iterable[str], *, attempt: int, selector: _Selector) -> list[LogChunk]:
    out: list[LogChunk] = []
    pending: list[str] = []
    size = 0
    for line in lines:
        pending.append(line + "\n")
        size += len(line) + 1
        if size >= CHUNK_CHARS:
            out.append(LogChunk("".join(pending), attempt, selector.truncated))
            pending, size = [], 0
    if pending:
        out.append(LogChunk("".join(pending), attempt, selector.truncated))
    return out


def _tail(lines: list[str], count: int | None) -> list[str]:
    if count is None:
        return lines
    return lines[len(lines) - count :] if count else []


async def whole(
    source: AsyncIterator[bytes], *, query: LogQuery, attempt: int, truncated: bool
) -> AsyncIterator[LogChunk]:
    """Everything the source holds, selected; at least one (maybe empty) message."""
    selector = _Selector(query, now=dt.datetime.now(dt.UTC), truncated=truncated)
    splitter = _Lines()
    kept: collections.deque[str] = collections.deque(maxlen=query.tail_lines)
    async for data in source:
        kept.extend(line for _stamp, line in selector.select(splitter.feed(data)))
    kept.extend(line for _stamp, line in selector.select(splitter.rest()))
    chunks = _chunks(kept, attempt=attempt, selector=selector)
    for chunk in chunks or [LogChunk("", attempt, selector.truncated)]:
        yield chunk


async def follow(
    source: AsyncIterator[bytes], *, query: LogQuery, attempt: int, truncated: bool
) -> AsyncIterator[LogChunk]:
    """The backlog (selected, sent at once), then each new batch of lines."""
    start = dt.datetime.now(dt.UTC)
    start_key = replica_logs.timestamp(start)
    selector = _Selector(query, now=start, truncated=truncated)
    splitter = _Lines()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for data in source:
                await queue.put(data)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        backlog: list[str] = []
        live: list[str] = []
        ended = False
        while not live and not ended:
            try:
                data = await asyncio.wait_for(queue.get(), BACKLOG_IDLE_SECONDS)
            except TimeoutError:
                break
            lines = splitter.rest() if data is None else splitter.feed(data)
            ended = data is None
            for stamp, line in selector.select(lines):
                (live if live or (stamp and stamp >= start_key) else backlog).append(line)
        first = _tail(backlog, query.tail_lines) + live
        for chunk in _chunks(first, attempt=attempt, selector=selector) or [
            LogChunk("", attempt, selector.truncated)
        ]:
            yield chunk
        while not ended:
            data = await queue.get()
            ended = data is None
            lines = splitter.rest() if data is None else splitter.feed(data)
            shown = [line for _stamp, line in selector.select(lines)]
            for chunk in _chunks(shown, attempt=attempt, selector=selector):
                yield chunk
        await task  # the source's own error, if it failed
    finally:
        task.cancel()
