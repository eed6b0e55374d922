"""Point reads served from memory on the local backend, kept exact by the change journals.

A console polls every service's status every couple of seconds, and each
status read used to be two database reads (the record and the Analytics
document) plus their decoding: at a few hundred services that was as much
work as running them. On the local backend this process is the only writer
of the records and of every Analytics document's spec, and the operator,
the only writer of ``status`` (and the one that removes a document),
appends the service id to the status journal
(:func:`dtpoc_common.changes.status_journal_name`) after each such write.
So a value read once stays right until one of those writes, and:

- :class:`PointCache` keeps decoded values by id; this process's own writes
  drop the entry (after the write, and a read that began before it does not
  fill the cache with what it read);
- :class:`JournalFreshness` makes a read exact: before answering from
  memory, a read waits for one journal read that *began after it arrived*
  (single-flight: every read that arrives while one journal read is in
  flight shares the next one), and that journal read drops the entries of
  the services the operator changed. When nothing changed it is one point
  read that misses, shared by every status read of that moment (it waits
  ``GATHER_SECONDS`` for them), instead of two reads and two decodings per
  status read.

A journal the reader fell too far behind on (``ChangesLost``) empties the
cache. Entries also expire after ``ttl_seconds``: the safety net for a
journal entry the operator could not write (it died between the status
write and the append), as the operator's own full resync is for its journal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pymongo.asynchronous.collection import AsyncCollection

from dtpoc_common import changes, errors
from dtpoc_common import logging as dlog
from dtpoc_orchestrator.adapters import mongo

log = dlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Seconds a cached value is trusted without a journal entry (see module docs).
DEFAULT_TTL_SECONDS = 30.0
#: Values kept at most; the oldest go first.
DEFAULT_MAX_ENTRIES = 20_000
#: Seconds a journal read waits for more readers to share it (status reads arrive in
#: bursts: a console polling hundreds of services).
GATHER_SECONDS = 0.005
#: Seconds between the journal reader's checks for trimmed entries (changes.ChangeReader).
TRIM_CHECK_SECONDS = 1.0


@dataclass
class _Load(Generic[V]):
    """One read in flight for a key; readers of the same key share it."""

    future: asyncio.Future[V]


class PointCache(Generic[K, V]):
    """Values by key, loaded once, dropped by :meth:`invalidate`, :meth:`clear` or age."""

    def __init__(
        self,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._values: dict[K, tuple[V, float]] = {}
        self._loads: dict[K, _Load[V]] = {}
        self.hits = 0
        self.misses = 0

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of ``key``, else ``load()``'s (kept unless invalidated meanwhile)."""
        cached = self._values.get(key)
        if cached is not None and cached[1] > self._clock():
            self.hits += 1
            return cached[0]
        pending = self._loads.get(key)
        if pending is not None:
            return await asyncio.shield(pending.future)
        self.misses += 1
        current: _Load[V] = _Load(asyncio.get_running_loop().create_future())
        self._loads[key] = current
        try:
            value = await load()
        except BaseException as exc:
            self._finish(key, current)
            if not current.future.done():
                current.future.set_exception(exc)
                current.future.exception()  # retrieved: no "never retrieved" warning
            raise
        if self._loads.get(key) is current:  # not invalidated while it was read
            self._store(key, value)
        self._finish(key, current)
        if not current.future.done():
            current.future.set_result(value)
        return value

    def _finish(self, key: K, load: _Load[V]) -> None:
        if self._loads.get(key) is load:
            del self._loads[key]

    def _store(self, key: K, value: V) -> None:
        self._values.pop(key, None)
        self._values[key] = (value, self._clock() + self._ttl)
        while len(self._values) > self._max:
            del self._values[next(iter(self._values))]

    def invalidate(self, key: K) -> None:
        """Forget ``key``; a read of it in flight does not fill the cache."""
        self._values.pop(key, None)
        self._loads.pop(key, None)

    def clear(self) -> None:
        self._values.clear()
        self._loads.clear()


class JournalFreshness:
    """Drops the cache entries of services changed in a journal, one shared read at a time."""

    def __init__(
        self,
        journal: AsyncCollection[Any],
        cache: PointCache[str, Any],
        *,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self._reader = changes.ChangeReader(journal, trim_check_seconds=TRIM_CHECK_SECONDS)
        self._cache = cache
        self._gather = gather_seconds
        self._waiting: list[asyncio.Future[None]] = []
        self._runner: asyncio.Task[None] | None = None

    async def fresh(self) -> None:
        """Return once a journal read that began after this call has been applied."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="status-journal")
        await waiter

    async def _run(self) -> None:
        try:
            await asyncio.sleep(self._gather)  # the reads arriving together share one
            while self._waiting:
                waiters, self._waiting = self._waiting, []
                failure: errors.DomainError | None = None
                try:
                    await self._catch_up()
                except errors.DomainError as exc:  # the database's answer, for every waiter
                    failure = exc
                for waiter in waiters:
                    if waiter.done():
                        continue
                    if failure is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(failure)
                        waiter.exception()
        finally:
            self._runner = None

    async def _catch_up(self) -> None:
        with mongo.unavailable_on_failure("read the status journal"):
            while True:
                try:
                    changed = await self._reader.changed()
                except changes.ChangesLost:
                    log.info("status journal fell behind; read cache emptied")
                    self._cache.clear()
                    return
                for service_id in changed:
                    self._cache.invalidate(service_id)
                if len(changed) < changes.MAX_READ:
                    return
