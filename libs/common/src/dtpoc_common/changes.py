"""A change journal for the local Analytics store: who changed, in order, read by ``_id``.

The local operator used to learn about new and deleted services by listing
the whole ``orchestrator.analytics`` collection every second, and FerretDB
1.x on SQLite answers only a filter that is exactly ``{_id: <string or
ObjectId>}`` from its index (anything else, ``$in`` or a second field
included, decodes every document in Go). So what changed is kept where a
point read finds it: the orchestrator appends one entry per desired-state
change (create, delete) to ``<collection>_changes``; the operator reads the
entries after the last one it saw, one ``{_id}`` read each, and one read
that misses when nothing changed. A full listing every resync period stays
as the safety net, so an entry that was never written (the orchestrator
died between the two writes) delays a reconcile, never loses it.

Entries are ``{_id: "e:<seq, 20 digits>", service_id, at}`` with ``seq``
1, 2, 3...; the unique ``_id`` is the compare-and-set: a writer takes the
next number by inserting it, and on a duplicate key takes the one after.
A number is only tried after the one before it exists, so the sequence has
no holes and a reader can stop at the first miss. ``{_id: "head", seq}`` is
a hint of the latest number (it may lag, never run ahead of the entries),
written every ``HEAD_EVERY`` entries (a write per launch saved), so a writer
or reader that starts probes at most that many entries, not from 1.

The journal keeps the latest ``KEEP`` entries: each time the head hint
moves, the writer deletes the block of ``HEAD_EVERY`` entries that fell
``KEEP`` behind (one ``delete`` command of point deletes). A reader is never
silently skipped past what was trimmed: entries up to the head hint always
existed, so a read that misses at or below the head means the reader fell
more than ``KEEP`` changes behind, and :meth:`ChangeReader.changed` raises
:class:`ChangesLost` (after moving to the head); the operator then lists
every service, its full resync.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pymongo.errors
from pymongo.asynchronous.collection import AsyncCollection

HEAD_ID = "head"
SUFFIX = "_changes"
#: The operator's journal: status writes and removals, read by the orchestrator's cache.
STATUS_SUFFIX = "_status_changes"
#: MongoDB's duplicate key error code (a number another writer took first).
DUPLICATE_KEY = 11000
#: Entries one read of the journal takes at most (the rest on the next read).
MAX_READ = 1000
#: Point reads one round of a reader's catch-up sends at once, at most.
READ_WIDTH = 64
#: The head hint is written when an entry's number is a multiple of this.
HEAD_EVERY = 32
#: Entries kept (a multiple of HEAD_EVERY; about 80 bytes each): a reader more than this
#: many changes behind resynchronises from a full listing.
KEEP = 10_240


async def _read_from(collection: AsyncCollection[Any], first: int, count: int) -> list[Any]:
    """Entries ``first``, ``first + 1``... up to the first that does not exist (of
    ``count`` point reads sent at once: no hole below the latest, see above)."""
    answers = await asyncio.gather(
        *(collection.find_one({"_id": entry_id(first + n)}) for n in range(count)),
        return_exceptions=True,
    )
    entries: list[Any] = []
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
        if answer is None:
            break
        entries.append(answer)
    return entries


class ChangesLost(Exception):
    """The reader fell behind the trimmed part of the journal: list everything instead."""


def journal_name(collection: str) -> str:
    """The journal's collection name, beside the Analytics collection it describes."""
    return collection + SUFFIX


def status_journal_name(collection: str) -> str:
    """The journal of the operator's writes (``status``, removals) to ``collection``:
    the orchestrator's status reads answer from memory until an entry names the service
    (``dtpoc_orchestrator.adapters.readcache``)."""
    return collection + STATUS_SUFFIX


def entry_id(seq: int) -> str:
    """A string ``_id``: FerretDB pushes down string and ObjectId ids, not numbers."""
    return f"e:{seq:020d}"


async def _head(collection: AsyncCollection[Any]) -> int:
    head = await collection.find_one({"_id": HEAD_ID})
    return int(head["seq"]) if head is not None else 0


class ChangeWriter:
    """Appends service ids; one writer per process (an asyncio lock keeps it in order).

    Appends that arrive while one is being written wait for the lock and are
    then written together, one ordered ``insert`` of consecutive numbers (eight
    launches at once cost one journal write, not eight).
    """

    def __init__(self, collection: AsyncCollection[Any], *, keep: int = KEEP) -> None:
        if keep < HEAD_EVERY or keep % HEAD_EVERY:
            raise ValueError(f"keep must be a positive multiple of {HEAD_EVERY}, not {keep}")
        self._collection = collection
        self._keep = keep
        self._next: int | None = None
        self._lock = asyncio.Lock()
        self._pending: list[tuple[str, asyncio.Future[int]]] = []

    async def append(self, service_id: str) -> int:
        """Record that ``service_id`` changed; answer its sequence number.

        Raises pymongo errors; the caller decides (the change itself is
        already written, so a lost entry costs only the resync delay).
        """
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((service_id, waiter))
        async with self._lock:
            if not waiter.done():  # not written with another appender's batch meanwhile
                batch, self._pending = self._pending, []
                await self._write_batch(batch)
        seq = await waiter
        if seq % HEAD_EVERY == 0:
            await self._advance_head(seq)
            await self._trim(seq - self._keep)
        return seq

    async def _write_batch(self, batch: list[tuple[str, asyncio.Future[int]]]) -> None:
        """Write the entries of every append waiting for the lock in one ``insert``, and
        answer each its number (or the error)."""
        try:
            numbers = await self._insert([service_id for service_id, _ in batch])
        except BaseException as exc:
            failure = (
                exc
                if isinstance(exc, pymongo.errors.PyMongoError)
                else pymongo.errors.PyMongoError("journal write interrupted")
            )
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(failure)
                    waiter.exception()  # retrieved: an append cancelled meanwhile is no warning
            raise
        for (_, waiter), seq in zip(batch, numbers, strict=True):
            if not waiter.done():
                waiter.set_result(seq)

    async def _insert(self, service_ids: list[str]) -> list[int]:
        """Take the next numbers for ``service_ids``, in order; skip numbers taken by
        another writer (the ordered insert stops at the first duplicate)."""
        if self._next is None:
            self._next = await _head(self._collection) + 1
        numbers: list[int] = []
        while service_ids:
            first = self._next
            now = time.time()
            entries = [
                {"_id": entry_id(first + n), "service_id": service_id, "at": now}
                for n, service_id in enumerate(service_ids)
            ]
            try:
                await self._collection.insert_many(entries, ordered=True)
            except pymongo.errors.BulkWriteError as exc:
                written = int(exc.details.get("nInserted", 0))
                failed = (exc.details.get("writeErrors") or [{}])[0]
                self._next = first + written
                if failed.get("code") != DUPLICATE_KEY:
                    raise
                numbers += range(first, first + written)
                service_ids = service_ids[written:]
                self._next += 1  # another writer took that number: the next one
                continue
            numbers += range(first, first + len(entries))
            self._next = first + len(entries)
            service_ids = []
        return numbers

    async def _trim(self, last: int) -> None:
        """Delete the block of entries ending at ``last``, each by its ``_id``."""
        if last < 1:
            return
        first = max(last - HEAD_EVERY + 1, 1)
        await self._collection.bulk_write(
            [pymongo.DeleteOne({"_id": entry_id(n)}) for n in range(first, last + 1)],
            ordered=False,
        )

    async def _advance_head(self, seq: int) -> None:
        for _ in range(2):
            try:
                await self._collection.update_one(
                    {"_id": HEAD_ID}, {"$max": {"seq": seq}}, upsert=True
                )
                return
            except pymongo.errors.DuplicateKeyError:
                continue  # two first writers upserted at once: the second updates


class ChangeReader:
    """The service ids changed since the last read, each read a point ``{_id}`` lookup.

    Nothing new costs one read that misses. A reader behind by many entries (a
    thousand launches at once each make one) reads them in rounds of point reads
    sent at once, doubling from the third round up to ``READ_WIDTH`` a round, and
    keeps the entries up to the first miss: read one after another, a thousand
    round trips to a busy database took longer than a status read may wait for
    its catch-up (issue 18).
    """

    def __init__(
        self,
        collection: AsyncCollection[Any],
        *,
        trim_check_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._collection = collection
        self._cursor: int | None = None
        # A read that finds nothing also reads the head to notice trimmed entries; a
        # reader called many times a second (the orchestrator's, before each status
        # answer) does so at most every ``trim_check_seconds``: to fall more than
        # KEEP entries behind in that time, it would have to stop reading.
        self._trim_check = trim_check_seconds
        self._clock = clock
        self._checked = -float("inf")

    async def start(self) -> None:
        """Begin at the head: what came before is the caller's full listing's to find."""
        # Re-read the head entry itself: the hint may lag, a repeat is harmless.
        self._cursor = max(await _head(self._collection), 1)

    async def changed(self) -> list[str]:
        """Service ids of the entries after the last one read, oldest first.

        Raises :class:`ChangesLost` when entries this reader had not read were
        trimmed; it then reads on from the head.
        """
        if self._cursor is None:
            await self.start()
        assert self._cursor is not None
        found: list[str] = []
        width, rounds = 1, 0
        while len(found) < MAX_READ:
            want = min(width, MAX_READ - len(found))
            entries = await _read_from(self._collection, self._cursor, want)
            found += [str(entry["service_id"]) for entry in entries]
            self._cursor += len(entries)
            if len(entries) < want:
                break
            rounds += 1
            # 1, 1, 2, 4... a round: one new entry costs two reads, as one at a time did.
            width = 1 if rounds == 1 else min(width * 2, READ_WIDTH)
        if not found and self._clock() - self._checked >= self._trim_check:
            self._checked = self._clock()
            head = await _head(self._collection)
            if head >= self._cursor:  # entries up to the head existed: these were trimmed
                self._cursor = head
                raise ChangesLost(f"journal entries before {head} were trimmed unread")
        return found
