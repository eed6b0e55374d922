"""What adds keys to the work queue in the local runtime: the change journal, a slow resync.

Every ``poll_seconds`` the operator reads the orchestrator's change journal
(:mod:`dtpoc_common.changes`; one point read when nothing changed) and queues
the services named there; every ``resync_seconds`` it lists the whole
collection and queues every service, as the Kubernetes runtime's resync does,
so that a change whose journal entry was lost is a delay, never a loss (and
at once when the journal was trimmed past entries it had not read);
after the first listing it skips settled services (ended ondemand ones, see
:func:`.store.settled`), whose reconcile could only read and do nothing.
Replica exits queue their service themselves (the runtime's ``on_change``).
Listing every document every second, as before, cost each poll a decode of
the whole collection in FerretDB and a reconcile of every service.
"""

from __future__ import annotations

import asyncio
import time

from dtpoc_common import changes
from dtpoc_common import logging as dlog
from dtpoc_operator import ports
from dtpoc_operator.local.store import MongoAnalyticsStore
from dtpoc_operator.model import ServiceKey
from dtpoc_operator.workqueue import WorkQueue

log = dlog.get_logger(__name__)

RETRY_SECONDS = 5.0


def resync_keys(states: list[tuple[ServiceKey, bool]], *, first: bool) -> list[ServiceKey]:
    """What a full listing queues: everything the first time after a start, then only
    services that are not settled, so a resync costs O(services still running)
    reconciles, not O(every service ever launched)."""
    return [key for key, settled in states if first or not settled]


async def feed(
    store: MongoAnalyticsStore,
    queue: WorkQueue[ServiceKey],
    *,
    poll_seconds: float,
    resync_seconds: float,
    ready: asyncio.Event,
) -> None:
    """Queue changed services every ``poll_seconds``, all every ``resync_seconds``."""
    next_resync = 0.0
    started = False
    while True:
        try:
            if not started:
                # The journal first: a change after this point is read from it, one
                # before is in the first listing.
                await store.start_changes()
                started = True
            if time.monotonic() >= next_resync:
                keys = resync_keys(await store.list_states(), first=not ready.is_set())
                next_resync = time.monotonic() + resync_seconds
                ready.set()
            else:
                keys = await store.changed_keys()
        except changes.ChangesLost as lost:
            log.warning(
                "change journal trimmed past this reader: listing every service", error=str(lost)
            )
            next_resync = 0.0
            continue
        except ports.AdapterError as error:
            log.warning("reading the local store failed; retrying", error=str(error))
            await asyncio.sleep(min(resync_seconds, RETRY_SECONDS))
            continue
        for key in keys:
            queue.add(key)
        await asyncio.sleep(poll_seconds)
