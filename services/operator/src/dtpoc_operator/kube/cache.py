"""What the watch streams last said about each object, so a reconcile reads without a round trip.

The controller-runtime model (an informer cache): kopf's watch events and the
answers to the operator's own writes fill it; the reconciler reads an
Analytics, an ondemand service's Job and that Job's pods from it. Without it
every reconcile cost three requests (GET Analytics, GET Job, LIST pods), and
a burst of services costs one reconcile per event of each of their children.

Why it stays correct:

- a read that finds nothing falls back to the apiserver (the object may be
  newer than the watch), and so does an entry older than ``max_age``: the
  watch could have missed a deletion across a re-list (kopf sends no
  ``DELETED`` for objects that vanished while it was disconnected), and an
  API answer confirms or removes it;
- an update never replaces a newer object with an older one (resource
  versions are etcd revisions, compared as numbers when both are);
- an event that only echoes one of the operator's own writes (its resource
  version is one the apiserver answered a write with) changes nothing: it
  needs no reconcile, the one that wrote it already saw that state.

Everything here runs on the event loop: no locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str]
"""(plural, namespace, name)"""

#: Resource versions of the operator's own writes remembered per object.
OWN_WRITES_KEPT = 8
#: An entry is trusted this long after the apiserver last confirmed it (seconds).
DEFAULT_MAX_AGE = 300.0


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _newer_or_same(candidate: str, current: str) -> bool:
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True  # not comparable: the latest answer wins


@dataclass
class _Entry:
    obj: Obj
    confirmed: float
    own_writes: list[str] = field(default_factory=list)


class WatchCache:
    """Objects by (plural, namespace, name), plus pods by (namespace, Job name)."""

    def __init__(
        self,
        *,
        job_label: str,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._job_label = job_label
        self._max_age = max_age
        self._clock = clock
        self._entries: dict[Key, _Entry] = {}
        self._pods_by_job: dict[tuple[str, str], set[str]] = {}
        #: When a LIST last confirmed a Job's pod set (a watch cannot confirm absence).
        self._pods_confirmed: dict[tuple[str, str], float] = {}

    # --- filled by the watch and by write answers ----------------------------------------------

    def observe(self, plural: str, event_type: str | None, obj: Obj) -> bool:
        """Record a watch event; False when it is the echo of the operator's own write."""
        key = _key_of(plural, obj)
        if key is None:
            return True
        if event_type == "DELETED":
            self._drop(key)
            return True
        entry = self._entries.get(key)
        version = _version(obj)
        if entry is not None and version and version in entry.own_writes:
            return False
        self._store(key, obj, confirmed=None)
        return True

    def written(self, plural: str, obj: Obj) -> None:
        """The apiserver's answer to a create or patch by the operator: current, and its own."""
        key = _key_of(plural, obj)
        if key is None:
            return
        entry = self._store(key, obj, confirmed=self._clock())
        version = _version(obj)
        if entry is not None and version:
            entry.own_writes = [*entry.own_writes[-(OWN_WRITES_KEPT - 1) :], version]

    def confirmed(self, plural: str, namespace: str, name: str, obj: Obj | None) -> None:
        """What a GET answered (None: not found)."""
        if obj is None:
            self._drop((plural, namespace, name))
        else:
            self._store((plural, namespace, name), obj, confirmed=self._clock())

    def confirmed_pods(self, namespace: str, job: str, pods: list[Obj]) -> None:
        """What a LIST of a Job's pods answered: exactly these exist."""
        for name in self._pods_by_job.get((namespace, job), set()).copy():
            self._drop(("pods", namespace, name))
        for pod in pods:
            self._store(("pods", namespace, _name(pod)), pod, confirmed=self._clock())
        self._pods_by_job.setdefault((namespace, job), set())
        self._pods_confirmed[(namespace, job)] = self._clock()

    def created_job(self, namespace: str, job: Obj) -> None:
        """A Job the operator just created: it has no pods yet, and the watch will show
        every one it gets (so its pod set needs no LIST)."""
        self.written("jobs", job)
        self._pods_by_job.setdefault((namespace, _name(job)), set())
        self._pods_confirmed[(namespace, _name(job))] = self._clock()

    # --- read by the reconcile ---------------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        """The object, or None when the apiserver must be asked."""
        entry = self._entries.get((plural, namespace, name))
        if entry is None or self._clock() - entry.confirmed > self._max_age:
            return None
        return entry.obj

    def pods_of_job(self, namespace: str, job: str) -> list[Obj] | None:
        """The Job's pods, or None when a LIST must say (never listed, or too long ago)."""
        confirmed = self._pods_confirmed.get((namespace, job))
        if confirmed is None or self._clock() - confirmed > self._max_age:
            return None
        names = sorted(self._pods_by_job.get((namespace, job), set()))
        entries = (self._entries.get(("pods", namespace, n)) for n in names)
        return [entry.obj for entry in entries if entry is not None]

    # --- bookkeeping -------------------------------------------------------------------------

    def _store(self, key: Key, obj: Obj, *, confirmed: float | None) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and not _newer_or_same(_version(obj), _version(entry.obj)):
            return entry
        if entry is None:
            # A first sighting by the watch counts as confirmed now: the stream is live.
            entry = _Entry(obj=obj, confirmed=confirmed if confirmed is not None else self._clock())
            self._entries[key] = entry
        else:
            entry.obj = obj
            if confirmed is not None:
                entry.confirmed = confirmed
        if key[0] == "pods":
            job = _labels(obj).get(self._job_label)
            if job:
                self._pods_by_job.setdefault((key[1], job), set()).add(key[2])
        return entry

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and key[0] == "pods":
            job = _labels(entry.obj).get(self._job_label)
            if job:
                self._pods_by_job.get((key[1], job), set()).discard(key[2])
        if key[0] == "jobs":
            self._pods_by_job.pop((key[1], key[2]), None)
            self._pods_confirmed.pop((key[1], key[2]), None)
            # The pods' own entries go with their DELETED events.


def _key_of(plural: str, obj: Obj) -> Key | None:
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    if not namespace or not name:
        return None
    return (plural, str(namespace), str(name))


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})
