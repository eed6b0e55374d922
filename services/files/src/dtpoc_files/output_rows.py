"""The rows of a listing by service or replica, numbered so that FerretDB finds them by ``_id``.

A listing by service or replica shows every recorded output (one row per
output reference, see :func:`dtpoc_files.domain.output_row`), but FerretDB
1.x pushes down no filter other than ``{_id: <value>}``: a ``{service_id}``
query on the references decodes every reference stored (its ``explain``
says so; ``tests/files/test_listing_by_output.py`` asks it). So each output
reference is also a row of three numbered sequences (:mod:`dtpoc_files.sequences`):
its service's, its service and replica's, and its replica's, one document
``{_id: "<scope>#<n>", scope, n, reference_id}`` each in ``<bucket>.output_rows``.
A listing reads its scope's rows from the latest down by point reads: newest
first in the order they were recorded; a page token carries the number of
its last row, so rows recorded meanwhile (higher numbers) never shift a page,
and a page costs its own rows, not all that are stored.

A row counts while its reference names it (the reference's ``rows``, set
once its rows are written, see :meth:`dtpoc_files.references.ReferenceBook`):
rows of a reference that was removed (its file deleted, its upload
discarded) or whose writer died before naming them are passed over. Rows
are never deleted, so a sequence has no holes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from pymongo import errors as mongo_errors
from pymongo.asynchronous.collection import AsyncCollection

from dtpoc_files import domain, sequences

#: Rows read per round of point reads while walking a listing.
READ_BATCH = 8
#: Scopes whose latest row number is remembered (a hint only).
SEEN_MAX = 10_000


def scopes(output: domain.OutputReference) -> list[str]:
    """The sequences an output is a row of: service, service and replica, replica."""
    return [
        _scope(output.service_id, None),
        _scope(output.service_id, output.replica_index),
        _scope(None, output.replica_index),
    ]


def scope_of(file_filter: domain.FileFilter) -> str:
    """The sequence a listing by output reads (``file_filter.by_output`` is true)."""
    return _scope(file_filter.service_id, file_filter.replica_index)


def _scope(service_id: str | None, replica_index: int | None) -> str:
    return json.dumps([service_id, replica_index], separators=(",", ":"))


def row_id(scope: str, n: int) -> str:
    return f"{scope}#{n:012d}"


class OutputRows:
    """The numbered rows of the listings by service or replica of one bucket."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self.rows = collection
        #: The latest row number seen of recently listed or written scopes.
        self._seen: dict[str, int] = {}

    async def add(self, reference_id: str, output: domain.OutputReference) -> list[str]:
        """Append the reference to each of its sequences; answer the rows' ids."""
        return [await self._append(scope, reference_id) for scope in scopes(output)]

    async def walk(self, scope: str, *, before: int | None) -> AsyncIterator[tuple[int, str]]:
        """(row number, reference id) from row ``before - 1`` (or the latest) down to 1."""
        top = await self.latest(scope) if before is None else before - 1
        for start in range(top, 0, -READ_BATCH):
            numbers = range(start, max(start - READ_BATCH, 0), -1)
            found = await asyncio.gather(*(self._at(scope, n) for n in numbers))
            for n, row in zip(numbers, found, strict=True):
                if row is not None:
                    yield n, str(row["reference_id"])

    async def latest(self, scope: str, *, known: int | None = None) -> int:
        """The latest row number of ``scope`` (0 when it has none), probing up from
        row ``known``, the one last seen, or row 1."""
        for n in dict.fromkeys(k for k in (known, self._seen.get(scope), 1) if k is not None):
            found = await self._at(scope, n)
            if found is not None:
                latest, _row = await sequences.climb(lambda k: self._at(scope, k), n, found)
                self._remember(scope, latest)
                return latest
        return 0

    async def _append(self, scope: str, reference_id: str) -> str:
        """Take the next row of ``scope`` by a unique insert (another writer's first: the next).

        The row after the latest this process saw is tried first, without reading: it is a
        lower bound of the latest, so the insert either takes the very next row (no hole)
        or meets an existing one, and only then is the latest looked up. One Files server
        appending alone costs one insert per row, not the two or more reads of a lookup.
        (Rows are never deleted, so what was seen stays a lower bound while the server runs.)
        """
        seen = self._seen.get(scope)
        n = seen + 1 if seen is not None else await self.latest(scope) + 1
        while True:
            document = {"_id": row_id(scope, n), "scope": scope, "n": n}
            try:
                await self.rows.insert_one({**document, "reference_id": reference_id})
            except mongo_errors.DuplicateKeyError:
                n = await self.latest(scope, known=n) + 1
                continue
            self._remember(scope, n)
            return row_id(scope, n)

    async def _at(self, scope: str, n: int) -> dict[str, Any] | None:
        return await self.rows.find_one({"_id": row_id(scope, n)})

    def _remember(self, scope: str, n: int) -> None:
        if len(self._seen) >= SEEN_MAX and scope not in self._seen:
            self._seen.clear()
        self._seen[scope] = max(n, self._seen.get(scope, 0))
