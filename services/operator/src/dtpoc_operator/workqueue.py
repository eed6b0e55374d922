"""A work queue of service keys, processed by a fixed number of workers.

The controller-runtime model: events only *add keys*; a worker reconciles a
key by reading the current state (level-triggered), so a burst of events for
one service costs one reconcile. Guarantees callers rely on:

- a key is never reconciled by two workers at once;
- a key added while it is being reconciled is reconciled again afterwards;
- a failed reconcile is retried with exponential backoff (0.5 s .. 60 s),
  a successful one may ask to be requeued after a delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from dtpoc_common import logging as dlog
from dtpoc_operator import metrics, ports

log = dlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)

BACKOFF_BASE = 0.5
BACKOFF_MAX = 60.0


class WorkQueue(Generic[K]):
    """Deduplicating queue with per-key exclusion, delays and retry backoff."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._failures: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: K) -> None:
        """Reconcile ``key`` soon (no-op if already queued)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.put_nowait(key)
        metrics.QUEUE_DEPTH.set(len(self._queued))

    def add_after(self, key: K, delay: float) -> None:
        """Reconcile ``key`` after ``delay`` seconds, unless something adds it sooner."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing is not None:
            if existing.when() <= loop.time() + delay:
                return
            existing.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        """Drop pending timers and backoff state of a key that is gone."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    async def _next(self) -> K:
        key = await self._queue.get()
        self._queued.discard(key)
        self._processing.add(key)
        metrics.QUEUE_DEPTH.set(len(self._queued))
        return key

    def _done(self, key: K, *, failed: bool, requeue_after: float | None) -> None:
        self._processing.discard(key)
        if failed:
            count = self._failures.get(key, 0) + 1
            self._failures[key] = count
            delay = min(BACKOFF_BASE * 2 ** (count - 1), BACKOFF_MAX)
        else:
            self._failures.pop(key, None)
            delay = requeue_after if requeue_after is not None else -1.0
        if key in self._dirty:
            self._dirty.discard(key)
            if not failed:
                self.add(key)
                if delay > 0:
                    self.add_after(key, delay)
                return
        if delay >= 0:
            self.add_after(key, delay)

    async def run(self, *, workers: int, handler: Callable[[K], Awaitable[float | None]]) -> None:
        """Run ``workers`` workers until cancelled."""
        async with asyncio.TaskGroup() as group:
            for number in range(workers):
                group.create_task(self._worker(handler), name=f"reconcile-worker-{number}")

    async def _worker(self, handler: Callable[[K], Awaitable[float | None]]) -> None:
        while True:
            key = await self._next()
            failed = False
            requeue_after: float | None = None
            try:
                requeue_after = await handler(key)
            except asyncio.CancelledError:
                self._processing.discard(key)
                raise
            except ports.AdapterError as error:
                failed = True
                metrics.RECONCILE_ERRORS.labels(kind=type(error).__name__).inc()
                log.warning("reconcile will be retried", key=str(key), error=str(error))
            # A worker must outlive any one reconcile's failure: the error is logged
            # with its traceback and counted, and the key retried with backoff.
            except Exception as error:
                failed = True
                metrics.RECONCILE_ERRORS.labels(kind=type(error).__name__).inc()
                log.exception("reconcile failed", key=str(key), error=str(error))
            self._done(key, failed=failed, requeue_after=requeue_after)
