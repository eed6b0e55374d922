"""Which filters a store sends, and whether FerretDB answers each without a scan.

FerretDB 1.x on SQLite pushes down only simple equality on top-level fields
(``{_id: <value>}`` from its index); any other filter decodes every document
of the collection in Go, so a hot-path query that stops being pushed down
makes the cost of one operation grow with all that is stored (issue 18).
A test opens the store under test on a client with :class:`SentFilters` as
its command listener, records what one operation sends, and asks
:func:`not_pushed_down` which of those filters ``explain`` does not mark
``filterPushdown``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, monitoring

from dtpoc_files.gridfs_store import GridFSStore

#: The commands whose filters are recorded.
FILTERED = ("find", "delete")


@dataclass
class SentFilters(monitoring.CommandListener):
    """(collection, filter) of every find and delete sent while ``recording``."""

    recording: bool = False
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.recording or event.command_name not in FILTERED:
            return
        command = event.command
        collection = str(command[event.command_name])
        if event.command_name == "find":
            self.sent.append((collection, dict(command.get("filter", {}))))
        else:
            self.sent += [(collection, dict(d["q"])) for d in command["deletes"]]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None

    @contextlib.contextmanager
    def recorded(self) -> Iterator[None]:
        """Record what the block sends (and only that)."""
        self.recording = True
        try:
            yield
        finally:
            self.recording = False

    def to(self, collection: str) -> list[dict[str, Any]]:
        """The filters sent to ``collection``."""
        return [query for name, query in self.sent if name == collection]


def not_pushed_down(
    mongodb_uri: str, database: str, sent: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any]]]:
    """The (collection, filter) pairs ``explain`` does not mark ``filterPushdown``."""
    found = []
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(mongodb_uri) as client:
        for collection, query in sent:
            answer = client[database].command(
                {"explain": {"find": collection, "filter": query}, "verbosity": "queryPlanner"}
            )
            if not answer.get("filterPushdown"):
                found.append((collection, query))
    return found


@contextlib.asynccontextmanager
async def recorded_gridfs_store(
    mongodb_uri: str, database: str, *, chunk_bytes: int
) -> AsyncIterator[tuple[GridFSStore, SentFilters]]:
    """The Files store on ``database``, on a client of its own whose filters are recorded
    (made in the test's event loop: an async client is bound to its loop)."""
    filters = SentFilters()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, event_listeners=[filters], tz_aware=True
    )
    store = GridFSStore(
        client[database], bucket="fs", chunk_bytes=chunk_bytes, pending_stale_seconds=60
    )
    try:
        yield store, filters
    finally:
        await client.close()
