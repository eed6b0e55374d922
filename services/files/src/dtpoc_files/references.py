"""Who holds a stored file, kept with nothing but FerretDB's single-operation atomicity.

A stored file may be several uploads (deduplication answers the existing id)
and several replicas' recorded outputs. It is deleted only with its last
reference, and never while a recorded output holds it; a launch that mounts
it must never find it gone. FerretDB 1.24 (the MongoDB of the tests and the
local run) has no transactions, and its ``update_one`` and
``find_one_and_update`` are not atomic read-modify-writes: concurrent ``$inc``
updates of one document lose increments
(``tests/files/test_ferretdb_support.py`` shows it). What it does make atomic
is inserting a unique ``_id`` (one winner, the others get a duplicate-key
error) and deleting by ``_id`` (exactly one deleter is told it deleted). So
every decision here is one of those two.

Collections
-----------
``<bucket>.references``
    One document per reference: ``{_id, file_id, kind: "upload"|"output",
    service_id, replica_index, path, run, filename, metadata, at}`` (an
    output's ``filename`` and ``metadata`` are what its upload asked to be
    stored as, and a listing by service or replica shows them: each output
    reference is one row; ``at`` of a first upload is the file's
    ``uploadDate``; ``rows`` names its rows in ``<bucket>.output_rows``, see
    :mod:`dtpoc_files.output_rows`). The first upload's is
    ``<file id>:first``; a deduplicated upload's a fresh ObjectId; an
    output's a digest of (file, service, replica, run, path), so collecting
    the same output again adds nothing. Removing an upload reference is a
    delete by ``_id``: two deletes never remove the same one.
``<bucket>.generations``
    The file's sequence of changes: ``{_id: "<file id>:<n>", file_id, n,
    kind: "add"|"mount"|"delete", at}``. Whoever inserts ``n + 1`` first owns
    that step. A new reference or an announced mount takes the next step
    *after* writing what it announces; a delete reads the latest step ``g``,
    then the references and the services that mount the file, and commits
    by taking step ``g + 1`` with kind ``delete``. If anything was added or
    mounted after it read, that step is taken and the delete decides again;
    if the delete took it first, the adder sees a deleted file and treats it
    as gone. Steps are kept until the file is deleted (a few small documents
    per upload and launch).

Files stored before references existed (no ``references`` field on the
files document) get theirs when first needed, from their metadata: a
replica's output, or one upload.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bson import ObjectId
from pymongo import errors as mongo_errors
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from dtpoc_common import errors
from dtpoc_files import domain, output_rows, sequences

#: Field of the files document saying its references are kept here.
MARK_FIELD = "references"
MARK_VERSION = 1
UPLOAD = "upload"
OUTPUT = "output"
STEP_ADD = "add"
STEP_MOUNT = "mount"
STEP_DELETE = "delete"
#: Files whose latest step is remembered (about 100 bytes each).
SEEN_MAX = 10_000
#: Field of an output reference naming its rows (:mod:`dtpoc_files.output_rows`).
ROWS = "rows"


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


def first_reference_id(file_id: str) -> str:
    return f"{file_id}:first"


def _step_id(file_id: str, n: int) -> str:
    return f"{file_id}:{n:012d}"


def output_of(document: Mapping[str, Any]) -> domain.OutputReference | None:
    """The output a reference document records, with its upload's name and labels."""
    output = domain.output_reference(document, keep_labels=False)
    if output is None:
        return None
    labels = document.get("metadata")
    return dataclasses.replace(
        output,
        filename=str(document.get("filename") or ""),
        labels=dict(labels) if isinstance(labels, Mapping) else {},
    )


class ReferenceBook:
    """The references and change steps of the files of one bucket."""

    def __init__(self, database: AsyncDatabase[dict[str, Any]], *, bucket: str) -> None:
        self.files: AsyncCollection[dict[str, Any]] = database[f"{bucket}.files"]
        self.references: AsyncCollection[dict[str, Any]] = database[f"{bucket}.references"]
        self.steps: AsyncCollection[dict[str, Any]] = database[f"{bucket}.generations"]
        self.rows = output_rows.OutputRows(database[f"{bucket}.output_rows"])
        #: The latest step seen of recently changed files (see _latest).
        self._seen: dict[str, int] = {}

    async def ensure_indexes(self) -> None:
        await self.references.create_index([("file_id", 1)])
        await self.steps.create_index([("file_id", 1), ("n", -1)])
        await self.steps.create_index([("kind", 1)])

    # --- writing references -------------------------------------------------------------------

    async def record_first(
        self,
        file_id: str,
        metadata: Mapping[str, Any],
        *,
        filename: str,
        at: datetime.datetime | None = None,
    ) -> None:
        """The reference of a file's first upload; written before the file is visible,
        ``at`` its upload date (so that its row of a listing by output is the file's)."""
        output = domain.output_reference(metadata, filename=filename)
        await self._insert_reference(
            file_id, output, reference_id=first_reference_id(file_id), at=at
        )

    async def record_first_of(self, document: Mapping[str, Any]) -> None:
        """The first reference of a file stored without one (before references existed,
        or by another GridFS writer), from its files document."""
        metadata = document.get("metadata")
        uploaded = document.get("uploadDate")
        await self.record_first(
            str(document["_id"]),
            metadata if isinstance(metadata, Mapping) else {},
            filename=str(document.get("filename") or ""),
            at=uploaded if isinstance(uploaded, datetime.datetime) else None,
        )

    async def add(self, file_id: str, output: domain.OutputReference | None) -> bool:
        """One more upload (or recorded output) holds the file; False when it is gone
        or being deleted (then nothing was added)."""
        if not await self._prepared(file_id):
            return False
        reference_id = output.reference_id(file_id) if output else str(ObjectId())
        if output is None or not await self._first_records(file_id, output):
            await self._insert_reference(file_id, output, reference_id=reference_id)
        if await self._step(file_id, STEP_ADD) and await self._still_there(file_id):
            return True
        await self.references.delete_one({"_id": reference_id})  # the file is gone
        return False

    async def announce_mount(self, file_id: str) -> bool:
        """A launch, recorded already, will mount the file; False when it is gone."""
        return (
            await self._prepared(file_id)
            and await self._step(file_id, STEP_MOUNT)
            and await self._still_there(file_id)
        )

    async def drop(self, reference_id: str) -> bool:
        """Remove one upload reference; True for exactly one of racing callers."""
        result = await self.references.delete_one({"_id": reference_id, "kind": UPLOAD})
        return result.deleted_count == 1

    async def commit_delete(self, file_id: str, *, generation: int) -> bool:
        """Take step ``generation + 1`` as the delete; False when something came first."""
        return await self._take(file_id, generation + 1, STEP_DELETE)

    async def forget(self, file_id: str) -> None:
        """After the file is gone: its references, then its steps (the delete mark last)."""
        self._seen.pop(file_id, None)
        await self.references.delete_many({"file_id": file_id})
        await self.steps.delete_many({"file_id": file_id, "kind": {"$ne": STEP_DELETE}})
        await self.steps.delete_many({"file_id": file_id})

    # --- reading ------------------------------------------------------------------------------

    async def read(self, file_id: str) -> domain.References:
        """The step first, then the references (the order a delete relies on).

        NOT_FOUND when the file does not exist or its deletion was committed.
        """
        if not await self._prepared(file_id):
            raise errors.NotFound(f"file {file_id} does not exist", field="file_id")
        latest = await self._latest(file_id)
        if latest is not None and latest.get("kind") == STEP_DELETE:
            raise errors.NotFound(f"file {file_id} does not exist", field="file_id")
        documents = await self.references.find({"file_id": file_id}).to_list()
        uploads = tuple(str(d["_id"]) for d in documents if d.get("kind") == UPLOAD)
        outputs = tuple(
            ref for ref in (output_of(d) for d in documents if d.get("kind") == OUTPUT) if ref
        )
        generation = int(latest["n"]) if latest is not None else 0
        return domain.References(uploads=uploads, outputs=outputs, generation=generation)

    async def listed(
        self, file_filter: domain.FileFilter, *, before: int | None
    ) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """(row number, reference document) of a listing by service or replica, newest
        first from row ``before - 1`` (:mod:`dtpoc_files.output_rows`): point reads only."""
        scope = output_rows.scope_of(file_filter)
        async for n, reference_id in self.rows.walk(scope, before=before):
            document = await self.references.find_one({"_id": reference_id})
            if document is not None and output_rows.row_id(scope, n) in document.get(ROWS, ()):
                yield n, document

    async def index_unlisted(self) -> int:
        """Give output references recorded before listings had rows theirs (at start)."""
        documents = await self.references.find({"kind": OUTPUT, ROWS: {"$exists": False}}).to_list()
        for document in documents:
            output = output_of(document)
            if output is not None:
                await self._index(str(document["_id"]), output)
        return len(documents)

    async def interrupted_deletions(self) -> list[str]:
        """Files whose delete was committed but not finished (the server died)."""
        documents = await self.steps.find({"kind": STEP_DELETE}).to_list()
        return sorted({str(d["file_id"]) for d in documents})

    # --- internals ----------------------------------------------------------------------------

    async def _prepared(self, file_id: str) -> bool:
        """True when the file exists; gives a file stored without references its first."""
        document = await self.files.find_one(
            {"_id": ObjectId(file_id)},
            projection={MARK_FIELD: 1, "metadata": 1, "filename": 1, "uploadDate": 1},
        )
        if document is None:
            return False
        if MARK_FIELD not in document:
            await self.record_first_of(document)
            await self.files.update_one(
                {"_id": ObjectId(file_id)}, {"$set": {MARK_FIELD: MARK_VERSION}}
            )
        return True

    async def _first_records(self, file_id: str, output: domain.OutputReference) -> bool:
        """Whether the file's first upload recorded ``output`` already (the same output
        collected again: one reference, one listing row)."""
        first = await self.references.find_one({"_id": first_reference_id(file_id)})
        return first is not None and first.get("kind") == OUTPUT and output_of(first) == output

    async def _still_there(self, file_id: str) -> bool:
        """After taking a step: the file was not deleted before it.

        A finished delete removes its steps (the delete mark last), so a step
        taken after that finds no mark; but the files document went before
        the steps did, so its absence tells.
        """
        if await self.files.find_one({"_id": ObjectId(file_id)}, projection={"_id": 1}):
            return True
        await self.forget(file_id)
        return False

    async def _insert_reference(
        self,
        file_id: str,
        output: domain.OutputReference | None,
        *,
        reference_id: str,
        at: datetime.datetime | None = None,
    ) -> None:
        document: dict[str, Any] = {
            "_id": reference_id,
            "file_id": file_id,
            "kind": UPLOAD if output is None else OUTPUT,
            "at": at or _now(),
        }
        if output is not None:
            document.update(
                service_id=output.service_id,
                replica_index=output.replica_index,
                path=output.path,
                run=output.run,
                filename=output.filename,
                metadata=dict(output.labels),
            )
        try:
            await self.references.insert_one(document)
        except mongo_errors.DuplicateKeyError:
            # Recorded already (the same output collected again); its rows too,
            # unless the writer died before naming them.
            if output is None:
                return
            existing = await self.references.find_one({"_id": reference_id})
            if existing is None or ROWS in existing:
                return
        if output is not None:
            await self._index(reference_id, output)

    async def _index(self, reference_id: str, output: domain.OutputReference) -> None:
        """The output's rows of the listings by service or replica, then its reference
        names them (rows it does not name are passed over)."""
        ids = await self.rows.add(reference_id, output)
        await self.references.update_one({"_id": reference_id}, {"$set": {ROWS: ids}})

    async def _latest(self, file_id: str, *, exact: bool = True) -> dict[str, Any] | None:
        """The file's latest step, found by point reads of ``<file id>:<n>``.

        A ``{file_id}`` query sorted by ``n`` decodes every step of every file on
        FerretDB 1.x (only ``{_id}`` is answered from its index), so each reference
        added cost O(all files' steps) (issue 18). Steps are numbered 1, 2, 3... without
        holes (a step is taken as the latest + 1, by a unique insert) and only a finished
        delete removes them, all at once before its mark; so any step that exists is a
        lower bound of the latest, which is found by probing up from it in doubling
        strides, then halving: from the latest step this process saw of the file, two
        point reads when nothing changed since. Without that step or step 1 (no step
        yet, or a delete removing them) the query answers, as before, unless ``exact``
        is False: taking a step calls :meth:`_still_there` after it, which tells a
        deleted file (its files document goes before its steps), so None is enough there.
        """
        for n in dict.fromkeys((self._seen.get(file_id, 1), 1)):
            found = await self._step_at(file_id, n)
            if found is not None:
                latest = await self._climb(file_id, n, found)
                self._remember(file_id, int(latest["n"]))
                return latest
        self._seen.pop(file_id, None)
        if not exact:
            return None
        return await self.steps.find_one({"file_id": file_id}, sort=[("n", -1)])

    async def _climb(self, file_id: str, low: int, latest: dict[str, Any]) -> dict[str, Any]:
        """The latest step, given that step ``low`` (``latest``) exists."""
        _n, found = await sequences.climb(lambda n: self._step_at(file_id, n), low, latest)
        return found

    def _remember(self, file_id: str, n: int) -> None:
        if len(self._seen) >= SEEN_MAX and file_id not in self._seen:
            self._seen.clear()  # a hint only: forgetting costs a search from step 1
        self._seen[file_id] = n

    async def _step_at(self, file_id: str, n: int) -> dict[str, Any] | None:
        return await self.steps.find_one({"_id": _step_id(file_id, n)})

    async def _step(self, file_id: str, kind: str) -> bool:
        """Take the next step after what was just written; False if the file was deleted."""
        while True:
            latest = await self._latest(file_id, exact=False)
            if latest is not None and latest.get("kind") == STEP_DELETE:
                return False
            n = int(latest["n"]) + 1 if latest is not None else 1
            if await self._take(file_id, n, kind):
                self._remember(file_id, n)
                return True
            taken = await self.steps.find_one({"_id": _step_id(file_id, n)})
            if taken is not None:
                # Someone else took it, after what we wrote: it serves as ours.
                return taken.get("kind") != STEP_DELETE

    async def _take(self, file_id: str, n: int, kind: str) -> bool:
        try:
            await self.steps.insert_one(
                {
                    "_id": _step_id(file_id, n),
                    "file_id": file_id,
                    "n": n,
                    "kind": kind,
                    "at": _now(),
                }
            )
        except mongo_errors.DuplicateKeyError:
            return False
        return True
