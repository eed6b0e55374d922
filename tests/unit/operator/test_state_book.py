"""The replicas and services gauges say what the statuses say, however services change."""

from __future__ import annotations

from prometheus_client import REGISTRY

from dtpoc_operator import metrics


def gauge(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} is not exported"
    return value


def test_gauges_follow_changes_and_forgetting() -> None:
    book = metrics.StateBook()
    book.record("a", phase="pending", replica_states={"pending": 3})
    book.record("b", phase="running", replica_states={"running": 1, "pending": 1})
    book.record("a", phase="running", replica_states={"running": 2, "succeeded": 1})
    assert gauge("dtpoc_operator_replicas", state="pending") == 1
    assert gauge("dtpoc_operator_replicas", state="running") == 3
    assert gauge("dtpoc_operator_replicas", state="succeeded") == 1
    assert gauge("dtpoc_operator_services", phase="running") == 2
    assert gauge("dtpoc_operator_services", phase="pending") == 0

    book.forget("b")
    book.forget("never-seen")
    assert gauge("dtpoc_operator_replicas", state="pending") == 0
    assert gauge("dtpoc_operator_replicas", state="running") == 2
    assert gauge("dtpoc_operator_services", phase="running") == 1
    book.forget("a")
    assert gauge("dtpoc_operator_replicas", state="running") == 0
    assert gauge("dtpoc_operator_services", phase="running") == 0
