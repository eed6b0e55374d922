"""LiveLogs of the local runtime: the ``log`` file of each attempt folder.

The local operator's supervisor appends a replica's output to
``<state root>/<service id>/runs/<run>/<index>/<try>/log``, each try naming
its replica attempt in ``spawn.json`` (:mod:`dtpoc_common.replica_logs`);
the orchestrator runs on the same machine and reads it, given the operator's state root
(``DTPOC_ORCHESTRATOR_LOCAL_STATE_ROOT``). Following is reading on at the
end of the file, polled, until the replica's attempt is over and the file
holds nothing more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import replica_logs
from dtpoc_orchestrator.logs import AttemptLog, Ended

READ_BYTES = 256 * 1024
POLL_SECONDS = 0.2
#: How often a follow asks whether the attempt is over while the file is idle.
ENDED_CHECK_SECONDS = 1.0


class LocalLiveLogs:
    """:class:`dtpoc_orchestrator.logs.LiveLogs` over the local operator's state folder."""

    def __init__(self, state_root: Path) -> None:
        self._root = state_root

    async def _tries(
        self, service_id: str, replica: analytics_pb2.ReplicaStatus
    ) -> dict[int, list[Path]]:
        return await asyncio.to_thread(
            replica_logs.local_attempts,
            self._root,
            service_id=service_id,
            run=replica.run or service_id,
            index=replica.index,
        )

    async def attempts(self, *, service_id: str, replica: analytics_pb2.ReplicaStatus) -> list[int]:
        return sorted(await self._tries(service_id, replica))

    async def stream(self, log: AttemptLog, *, until: Ended | None) -> AsyncIterator[bytes]:
        tries = (await self._tries(log.service_id, log.replica)).get(log.attempt, [])
        for earlier in tries[:-1]:  # tries under backoffLimitPerIndex that ended
            async for data in self._file(earlier, until=None):
                yield data
        if tries:
            async for data in self._file(tries[-1], until=until):
                yield data

    async def _file(self, path: Path, *, until: Ended | None) -> AsyncIterator[bytes]:
        handle = None
        checked = 0.0
        try:
            while True:
                if handle is None:
                    try:
                        handle = await asyncio.to_thread(path.open, "rb")
                    except FileNotFoundError:
                        if until is None or await until():
                            return  # never started printing, or its folder is gone
                        await asyncio.sleep(POLL_SECONDS)
                        continue
                data = await asyncio.to_thread(handle.read, READ_BYTES)
                if data:
                    yield data
                    continue
                if until is None:
                    return
                now = time.monotonic()
                if now - checked >= ENDED_CHECK_SECONDS:
                    checked = now
                    if await until():
                        # Everything was written before the attempt counted as over.
                        while data := await asyncio.to_thread(handle.read, READ_BYTES):
                            yield data
                        return
                await asyncio.sleep(POLL_SECONDS)
        finally:
            if handle is not None:
                handle.close()
