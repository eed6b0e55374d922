"""Prometheus metrics of the operator, and the HTTP endpoint that serves them.

Names follow the Prometheus conventions (``_total`` counters, base units).
The replicas gauge is recomputed from every status the operator writes, so
it counts what the statuses say, across all services it reconciles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram

from dtpoc_common.vocabulary import Phase, ReplicaState

RECONCILES = PromCounter(
    "dtpoc_operator_reconciles_total", "Reconciles finished, by outcome.", ["result"]
)
RECONCILE_ERRORS = PromCounter(
    "dtpoc_operator_reconcile_errors_total", "Reconciles that failed, by error kind.", ["kind"]
)
RECONCILE_SECONDS = Histogram(
    "dtpoc_operator_reconcile_duration_seconds",
    "Time one reconcile takes.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_DEPTH = Gauge("dtpoc_operator_queue_depth", "Services waiting to be reconciled.")
REPLICAS = Gauge("dtpoc_operator_replicas", "Replicas by state, as the statuses say.", ["state"])
SERVICES = Gauge("dtpoc_operator_services", "Services by phase.", ["phase"])
UPLOADS = PromCounter(
    "dtpoc_operator_uploads_total", "Output files sent to Files, by outcome.", ["result"]
)
UPLOAD_BYTES = PromCounter(
    "dtpoc_operator_upload_bytes_total", "Bytes of output files stored in Files."
)

_STATES = tuple(ReplicaState)
#: The phases the operator writes (terminated is the orchestrator's word).
_PHASES = (Phase.PENDING, Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED)


class StateBook:
    """Per-service replica counts, kept summed into the gauges on every change.

    The totals are updated by the difference a service's new counts make, not
    summed again over every service: a reconcile costs the same with 10 services
    as with 10,000."""

    def __init__(self) -> None:
        self._replicas: dict[str, Counter[str]] = {}
        self._phases: dict[str, str] = {}
        self._replica_totals: Counter[str] = Counter()
        self._phase_totals: Counter[str] = Counter()

    def record(self, service: str, *, phase: str, replica_states: Mapping[str, int]) -> None:
        new = Counter(replica_states)
        if self._replicas.get(service) == new and self._phases.get(service) == phase:
            return
        self._drop(service)
        self._replicas[service] = new
        self._phases[service] = phase
        self._replica_totals.update(new)
        self._phase_totals[phase] += 1
        self._publish()

    def forget(self, service: str) -> None:
        self._drop(service)
        self._publish()

    def _drop(self, service: str) -> None:
        old = self._replicas.pop(service, None)
        if old is not None:
            self._replica_totals.subtract(old)
        phase = self._phases.pop(service, None)
        if phase is not None:
            self._phase_totals[phase] -= 1

    def _publish(self) -> None:
        for state in _STATES:
            REPLICAS.labels(state=state).set(self._replica_totals.get(state, 0))
        for phase in _PHASES:
            SERVICES.labels(phase=phase).set(self._phase_totals.get(phase, 0))
