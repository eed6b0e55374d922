"""Back-pressure on launches: a bounded number write at once, the rest queue in order.

A launch is five writes (record, resource, journal entry, launch decision,
record state). Two hundred launched at once on a slow database used to run
all at once, each slowed by all the others, until most passed the gateway's
deadline together (504, with the client not learning the id of a service
that may still have been launched). Now at most ``limit`` launches write
at a time and the others wait their turn in arrival order, so the first
finish early and the queue drains at the database's pace.

A launch that cannot begin while its caller's deadline still leaves room for
its writes (twice the recent average, at least ``MIN_RESERVE_SECONDS``) is
refused before it wrote anything: UNAVAILABLE "too many launches at once",
which the gateway answers 503 with ``Retry-After``. Nothing is left half
done by a refusal, and a launch that began is never cut short by the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from dtpoc_common import errors

#: Launches writing at once (the database serialises writes anyway).
DEFAULT_LIMIT = 8
#: The least time a launch is admitted with before its caller's deadline.
MIN_RESERVE_SECONDS = 2.0
#: Weight of the latest launch in the running average of launch durations.
SMOOTHING = 0.2


class LaunchGate:
    """At most ``limit`` launches at once, first come first served (module docs)."""

    def __init__(self, *, limit: int = DEFAULT_LIMIT, clock: Callable[[], float] = time.monotonic):
        self._slots = asyncio.Semaphore(limit)
        self._clock = clock
        self._average = 0.0

    def reserve(self) -> float:
        """Seconds a launch needs left once admitted: twice the recent average."""
        return max(2.0 * self._average, MIN_RESERVE_SECONDS)

    @contextlib.asynccontextmanager
    async def slot(self, *, time_remaining: float | None) -> AsyncIterator[None]:
        """Wait for a turn; refuse when it would come too late for ``time_remaining``."""
        wait = None if time_remaining is None else time_remaining - self.reserve()
        try:
            if wait is not None and wait <= 0:
                raise TimeoutError
            await asyncio.wait_for(self._slots.acquire(), wait)
        except TimeoutError:
            raise errors.Unavailable(
                "too many launches at once: this one was not started (nothing was written); "
                "retry after a second"
            ) from None
        began = self._clock()
        try:
            yield
        finally:
            took = self._clock() - began
            self._average = (
                took if not self._average else (SMOOTHING * took + (1 - SMOOTHING) * self._average)
            )
            self._slots.release()
