"""The words every room uses for the same things, defined once.

Job types, replica states and service phases travel as plain strings in the
protos, the Analytics resource and MongoDB; these enums are ``StrEnum`` so a
member *is* that string (``JobType.ONDEMAND == "ondemand"``, JSON and BSON
write it unchanged) while code names it instead of retyping the literal.
"""

from __future__ import annotations

import enum

#: Where the REST API lives on the gateway; the protos' ``google.api.http``
#: rules spell it too (tests/contract checks that they agree).
API_PREFIX = "/api/orchestrator/v1alpha1"


class JobType(enum.StrEnum):
    """How a service's replicas run (the launch's ``ana.job_type``)."""

    #: ``reps`` replicas, each run to completion once.
    ONDEMAND = "ondemand"
    #: One replica per run of a cron ``schedule``.
    SCHEDULED = "scheduled"
    #: One replica kept running (and restarted) until terminated.
    PERSISTENT = "persistent"

    @property
    def runs_to_completion(self) -> bool:
        """Whether replicas finish (and so have outputs to collect)."""
        return self is not JobType.PERSISTENT


#: Every job type's name, for messages and membership checks.
JOB_TYPES: tuple[str, ...] = tuple(JobType)


class ReplicaState(enum.StrEnum):
    """Where one replica is; the last two are final."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINAL_REPLICA_STATES = frozenset({ReplicaState.SUCCEEDED, ReplicaState.FAILED})


class Phase(enum.StrEnum):
    """Where a whole service is; the last three are final."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TERMINATED = "terminated"


FINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.TERMINATED})
