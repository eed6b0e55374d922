"""Back-pressure on launches: a bounded number write at once, the rest queue in order.

A launch is five writes (record, resource, journal entry, launch decision,
record state). Two hundred launched at once on a slow database used to run
all at once, each slowed by all the others, until most passed the gateway's
deadline together (504, with the client not learning the id of a service
that may still have been launched). Now at most ``limit`` launches write
at a time and the others wait their turn in arrival order, so the first
finish early and the queue drains at the database's pace.

A launch that cannot begin while its caller's deadline still leaves room for
its writes (``RESERVE_FACTOR`` times the recent average, at least
``MIN_RESERVE_SECONDS``) is refused before it wrote anything: UNAVAILABLE
"too many launches at once", which the gateway answers 503 with
``Retry-After``. When the queue ahead already says its turn would come too
late, it is refused at once rather than after holding its connection until
then, and the refusal carries a ``google.rpc.RetryInfo`` of about half the
queue's expected wait (the gateway's ``Retry-After``), so that a thousand
refused clients come back spread over the drain, not all a second later.
Nothing is left half done by a refusal, and a launch that began is never
cut short by the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from google.protobuf import duration_pb2
from google.rpc import error_details_pb2  # type: ignore[import-untyped]

from dtpoc_common import errors

#: Launches writing at once (the database serialises writes anyway).
DEFAULT_LIMIT = 8
#: The least time a launch is admitted with before its caller's deadline.
MIN_RESERVE_SECONDS = 3.0
#: A launch is admitted with this many times the recent average left before its deadline.
RESERVE_FACTOR = 3.0
#: Bounds of the retry delay a refusal suggests (whole seconds).
MIN_RETRY_SECONDS = 1
MAX_RETRY_SECONDS = 30
#: Weight of the latest launch in the running average of launch durations.
SMOOTHING = 0.2


class LaunchGate:
    """At most ``limit`` launches at once, first come first served (module docs)."""

    def __init__(self, *, limit: int = DEFAULT_LIMIT, clock: Callable[[], float] = time.monotonic):
        self._slots = asyncio.Semaphore(limit)
        self._limit = limit
        self._clock = clock
        self._average = 0.0
        self._queued = 0

    def reserve(self) -> float:
        """Seconds a launch needs left once admitted: a few times the recent average (a
        launch that began is never cut short by the queue, so its deadline must hold)."""
        return max(RESERVE_FACTOR * self._average, MIN_RESERVE_SECONDS)

    def expected_wait(self) -> float:
        """Seconds until a launch arriving now would begin: the queue ahead, ``limit``
        at a time, at the recent average."""
        return self._queued * self._average / self._limit

    @contextlib.asynccontextmanager
    async def slot(self, *, time_remaining: float | None) -> AsyncIterator[None]:
        """Wait for a turn; refuse when it would come too late for ``time_remaining``."""
        wait = None if time_remaining is None else time_remaining - self.reserve()
        if wait is not None and (wait <= 0 or self.expected_wait() > wait):
            raise self._refusal()  # at once: its turn would come too late anyway
        self._queued += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), wait)
        except TimeoutError:
            raise self._refusal() from None
        finally:
            self._queued -= 1
        began = self._clock()
        try:
            yield
        finally:
            took = self._clock() - began
            self._average = (
                took if not self._average else (SMOOTHING * took + (1 - SMOOTHING) * self._average)
            )
            self._slots.release()

    def _refusal(self) -> errors.Unavailable:
        """UNAVAILABLE with a google.rpc.RetryInfo of about when the queue has room again
        (the gateway's ``Retry-After``), so refused clients come back spread out, not
        all together a second later."""
        delay = min(max(self.expected_wait() / 2, MIN_RETRY_SECONDS), MAX_RETRY_SECONDS)
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(delay)))
        return errors.Unavailable(
            "too many launches at once: this one was not started (nothing was written); "
            f"retry after {int(delay)} s",
            details=[info],
        )
