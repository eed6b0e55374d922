"""The operator's watch cache (dtpoc_operator.kube.cache): what a reconcile may read without
asking the apiserver, and which watch events need no reconcile.

Pure: objects are the API's JSON; the clock is the test's. The Kubernetes tests
(test_kube_*) run the operator with the cache against a real apiserver.
"""

from __future__ import annotations

from typing import Any

from dtpoc_operator.kube.cache import WatchCache

JOB_LABEL = "batch.kubernetes.io/job-name"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def obj(name: str, version: int, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "resourceVersion": str(version),
            "labels": labels,
        }
    }


def cache(clock: Clock, max_age: float = 60.0) -> WatchCache:
    return WatchCache(job_label=JOB_LABEL, max_age=max_age, clock=clock)


def test_the_echo_of_an_own_write_needs_no_reconcile_but_a_change_by_someone_else_does() -> None:
    watch = cache(Clock())
    assert watch.observe("analytics", "ADDED", obj("a", 10))
    watch.written("analytics", obj("a", 11))  # the finalizer patch
    watch.written("analytics", obj("a", 12))  # the status write
    assert not watch.observe("analytics", "MODIFIED", obj("a", 11))
    assert not watch.observe("analytics", "MODIFIED", obj("a", 12))
    assert watch.observe("analytics", "MODIFIED", obj("a", 13))  # e.g. a deletion timestamp
    assert watch.get("analytics", "ns", "a") == obj("a", 13)


def test_an_older_event_never_hides_a_newer_answer() -> None:
    watch = cache(Clock())
    watch.written("analytics", obj("a", 20))
    assert watch.observe("analytics", "MODIFIED", obj("a", 19))  # still queued: not ours
    assert watch.get("analytics", "ns", "a") == obj("a", 20)


def test_what_the_watch_has_not_shown_or_deleted_is_asked_again() -> None:
    watch = cache(Clock())
    assert watch.get("jobs", "ns", "ana-x") is None
    watch.observe("jobs", "ADDED", obj("ana-x", 5))
    assert watch.get("jobs", "ns", "ana-x") == obj("ana-x", 5)
    watch.observe("jobs", "DELETED", obj("ana-x", 6))
    assert watch.get("jobs", "ns", "ana-x") is None


def test_an_entry_not_confirmed_for_max_age_is_asked_again() -> None:
    clock = Clock()
    watch = cache(clock, max_age=60.0)
    watch.observe("jobs", None, obj("ana-x", 5))
    clock.now += 61
    assert watch.get("jobs", "ns", "ana-x") is None  # a re-list may have missed its deletion
    watch.confirmed("jobs", "ns", "ana-x", obj("ana-x", 7))
    assert watch.get("jobs", "ns", "ana-x") == obj("ana-x", 7)
    watch.confirmed("jobs", "ns", "ana-x", None)
    assert watch.get("jobs", "ns", "ana-x") is None


def test_a_created_jobs_pods_come_from_the_watch_an_unknown_jobs_from_a_list() -> None:
    clock = Clock()
    watch = cache(clock, max_age=60.0)
    assert watch.pods_of_job("ns", "ana-old") is None  # never listed: ask
    watch.created_job("ns", obj("ana-x", 30))
    assert watch.pods_of_job("ns", "ana-x") == []
    assert not watch.observe("jobs", "ADDED", obj("ana-x", 30))  # the echo of the create
    for index in range(3):
        watch.observe("pods", "ADDED", obj(f"ana-x-{index}", 31 + index, **{JOB_LABEL: "ana-x"}))
    watch.observe("pods", "ADDED", obj("other", 40, **{JOB_LABEL: "ana-y"}))
    assert [p["metadata"]["name"] for p in watch.pods_of_job("ns", "ana-x") or []] == [
        "ana-x-0",
        "ana-x-1",
        "ana-x-2",
    ]
    watch.observe("pods", "DELETED", obj("ana-x-1", 50, **{JOB_LABEL: "ana-x"}))
    assert len(watch.pods_of_job("ns", "ana-x") or []) == 2
    clock.now += 61
    assert watch.pods_of_job("ns", "ana-x") is None
    watch.confirmed_pods("ns", "ana-x", [obj("ana-x-0", 60, **{JOB_LABEL: "ana-x"})])
    assert [p["metadata"]["name"] for p in watch.pods_of_job("ns", "ana-x") or []] == ["ana-x-0"]
