"""The pure parts: status rules, Job/pod reading, names and paths, the work queue."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import analytics
from dtpoc_common.vocabulary import Phase, ReplicaState
from dtpoc_operator import layout, model, status
from dtpoc_operator.kube import observe
from dtpoc_operator.local import schedule
from dtpoc_operator.model import Observation, Replica, Status
from dtpoc_operator.workqueue import WorkQueue

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SID = "0123456789abcdef01234567"


def spec(**fields: object) -> model.ServiceSpec:
    base: dict[str, object] = {"image": "img", "jobType": "ondemand", "reps": 2}
    base.update(fields)
    return model.ServiceSpec.from_proto(analytics.spec_from_dict(base))


def compute(
    previous: Status,
    observation: Observation,
    *,
    the_spec: model.ServiceSpec | None = None,
    collected: dict[tuple[str, int], tuple[str, ...]] | None = None,
    terminating: bool = False,
) -> Status:
    return status.compute_status(
        spec=the_spec or spec(),
        generation=1,
        previous=previous,
        observation=observation,
        collected=collected or {},
        now=NOW,
        terminating=terminating,
    )


def live(*replicas: Replica) -> Observation:
    return Observation(replicas=replicas, live_runs=frozenset({SID}), ready=True)


def test_succeeded_only_once_every_output_is_collected() -> None:
    done = (Replica(SID, 0, ReplicaState.SUCCEEDED), Replica(SID, 1, ReplicaState.SUCCEEDED))
    first = compute(Status(), live(*done))
    assert first.phase == Phase.RUNNING
    assert status.to_collect(first) == list(first.replicas)
    second = compute(first, live(*done), collected={(SID, 0): ("f0",), (SID, 1): ()})
    assert second.phase == Phase.SUCCEEDED
    assert second.completion_time == NOW
    assert [r.output_file_ids for r in second.replicas] == [("f0",), ()]
    assert second.condition("OutputsCollected").status == "True"  # type: ignore[union-attr]


def test_a_final_entry_never_goes_back_and_keeps_its_outputs() -> None:
    previous = compute(
        Status(),
        live(Replica(SID, 0, ReplicaState.SUCCEEDED), Replica(SID, 1, ReplicaState.RUNNING)),
        collected={(SID, 0): ("f0",)},
    )
    # The pod is gone (TTL): the observation knows less than the status.
    again = compute(
        previous, live(Replica(SID, 0, ReplicaState.PENDING), Replica(SID, 1, ReplicaState.RUNNING))
    )
    first = again.replicas[0]
    assert (first.state, first.output_file_ids, first.outputs_collected) == (
        ReplicaState.SUCCEEDED,
        ("f0",),
        True,
    )


def test_a_vanished_workload_is_not_called_running() -> None:
    previous = compute(
        Status(), live(Replica(SID, 0, ReplicaState.RUNNING), Replica(SID, 1, "pending"))
    )
    gone = compute(previous, Observation())
    assert {r.reason for r in gone.replicas} == {status.REASON_WORKLOAD_DELETED}
    assert all(r.state == ReplicaState.FAILED for r in gone.replicas)
    terminated = compute(previous, Observation(), terminating=True)
    assert {r.reason for r in terminated.replicas} == {status.REASON_TERMINATED}


def test_failed_for_good_makes_the_service_fail_with_the_reason() -> None:
    observed = live(
        Replica(SID, 0, ReplicaState.SUCCEEDED),
        Replica(SID, 1, ReplicaState.FAILED, exit_code=137, reason="OOMKilled"),
    )
    result = compute(Status(), observed, collected={(SID, 0): (), (SID, 1): ()})
    assert result.phase == Phase.FAILED
    failed = result.condition("Failed")
    assert failed is not None and (failed.status, failed.reason) == ("True", "OOMKilled")
    assert "replica 1: OOMKilled, exit code 137" in result.message


def test_condition_transition_times_move_only_on_change() -> None:
    earlier = NOW - dt.timedelta(hours=1)
    previous = Status(conditions=(model.Condition("Ready", "False", last_transition_time=earlier),))
    same = compute(previous, live(Replica(SID, 0, "pending"), Replica(SID, 1, "pending")))
    assert same.condition("Ready").last_transition_time == earlier  # type: ignore[union-attr]
    changed = compute(previous, live(Replica(SID, 0, "running"), Replica(SID, 1, "pending")))
    assert changed.condition("Ready").last_transition_time == NOW  # type: ignore[union-attr]


def test_problem_fails_the_service_with_its_message() -> None:
    result = compute(Status(), Observation(problem=("CommandRequired", "needs a command")))
    assert (result.phase, result.message) == (Phase.FAILED, "needs a command")


def test_status_round_trips_through_the_crd_json() -> None:
    result = compute(
        Status(),
        live(
            Replica(SID, 0, ReplicaState.SUCCEEDED, exit_code=0, start_time=NOW),
            Replica(SID, 1, "x"),
        ),
        collected={(SID, 0): ("f",)},
    )
    as_json = analytics.status_to_dict(model.status_to_proto(result))
    assert as_json["replicas"][0]["index"] == 0  # the CRD requires it, even when zero
    assert model.status_from_proto(analytics.status_from_dict(as_json)) == result


def test_scheduled_runs_newest_first_and_capped() -> None:
    the_spec = spec(jobType="scheduled", schedule="* * * * *", reps=1)
    runs = tuple(
        model.Run(f"r{i}", NOW + dt.timedelta(minutes=i), ReplicaState.SUCCEEDED) for i in range(5)
    )
    observation = Observation(
        replicas=tuple(Replica(f"r{i}", 0, ReplicaState.SUCCEEDED) for i in range(5)),
        runs=runs,
        live_runs=frozenset(r.name for r in runs),
        ready=True,
    )
    done = status.compute_status(
        spec=the_spec,
        generation=1,
        previous=Status(),
        observation=observation,
        collected={(f"r{i}", 0): () for i in range(5)},
        now=NOW,
        max_runs=3,
    )
    assert [r.name for r in done.runs] == ["r4", "r3", "r2"]
    assert [r.run for r in done.replicas] == ["r2", "r3", "r4"]
    assert (done.phase, done.total) == (Phase.RUNNING, 3)


def test_job_status_index_sets_and_reasons() -> None:
    assert observe.parse_indexes("0,2-4,7") == {0, 2, 3, 4, 7}
    job = {
        "spec": {"completions": 3},
        "status": {"completedIndexes": "0", "failedIndexes": "2"},
    }

    def pod(index: int, phase: str, terminated: dict[str, object]) -> dict[str, object]:
        return {
            "metadata": {
                "name": f"p{index}",
                "creationTimestamp": "2026-03-01T12:00:00Z",
                "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
            },
            "status": {
                "phase": phase,
                "containerStatuses": [{"name": "analytics", "state": {"terminated": terminated}}],
            },
        }

    replicas = observe.job_replicas(
        job,
        [
            pod(0, "Succeeded", {"exitCode": 0, "reason": "Completed"}),
            pod(1, "Failed", {"exitCode": 1, "reason": "Error"}),  # retrying: not in failedIndexes
            pod(2, "Failed", {"exitCode": 137, "reason": "OOMKilled"}),
        ],
        run=SID,
    )
    assert [(r.state, r.reason) for r in replicas] == [
        (ReplicaState.SUCCEEDED, ""),
        (ReplicaState.PENDING, "Error"),
        (ReplicaState.FAILED, "OOMKilled"),
    ]


def test_a_new_jobs_first_status_waits_only_while_pods_are_still_coming() -> None:
    """The first status write waits for a Job's pods while nothing a user would see
    has happened; any started, ended or waiting replica is news at once."""

    def pod(index: int, phase: str = "Pending", **status: object) -> dict[str, object]:
        return {
            "metadata": {
                "name": f"p{index}",
                "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
            },
            "status": {"phase": phase, **status},
        }

    job = {"spec": {"completions": 3, "parallelism": 3}, "status": {}}

    def coming(*pods: dict[str, object], spec: dict[str, object] | None = None) -> bool:
        the_job = {**job, "spec": spec or job["spec"]}
        return observe.pods_still_coming(the_job, observe.job_replicas(the_job, pods, run=SID))

    assert coming()
    assert coming(pod(0))
    assert not coming(pod(0), pod(1), pod(2)), "all pods exist: write"
    assert not coming(pod(0), spec={"completions": 3, "parallelism": 1}), "one runs at once"
    assert not coming(pod(0, "Running")), "a running replica is news"
    assert not coming(pod(0, "Failed")), "a failed attempt (retrying) is news"
    waiting = [{"name": "analytics", "state": {"waiting": {"reason": "ErrImagePull"}}}]
    assert not coming(pod(0, containerStatuses=waiting)), "a waiting reason is news"


def test_init_container_failure_is_an_input_fetch_failure() -> None:
    pod = {
        "metadata": {"name": "p", "annotations": {}},
        "status": {
            "phase": "Failed",
            "initContainerStatuses": [
                {
                    "name": "fetch-inputs",
                    "state": {"terminated": {"exitCode": 2, "message": "input file x missing"}},
                }
            ],
        },
    }
    replica = observe.pod_details(pod, run=SID, index=0)
    assert (replica.reason, replica.exit_code, replica.message) == (
        "InputFetchFailed",
        2,
        "input file x missing",
    )


def test_names_and_paths_are_deterministic() -> None:
    assert layout.child_name(SID) == f"ana-{SID}"
    long_id = "x" * 200
    assert len(layout.child_name(long_id)) <= layout.MAX_CHILD_NAME
    assert layout.child_name(long_id) == layout.child_name(long_id)
    assert layout.child_name("a.b") != layout.child_name("a-b")
    assert str(layout.output_relpath(service_id=SID, job_type="ondemand", run=SID, index=2)) == (
        f"{SID}/2"
    )
    assert str(layout.output_relpath(service_id=SID, job_type="scheduled", run="r", index=1)) == (
        f"{SID}/r/1"
    )
    assert layout.input_env(
        {"a": "input.xlsx", "b": "folder", "c": "my data.csv"}, input_folder="/input"
    ) == {
        "INPUT_INPUT_XLSX": "/input/input.xlsx",
        "INPUT_MY_DATA_CSV": "/input/my data.csv",
    }  # "folder" would be INPUT_FOLDER, which the platform owns


def test_local_schedule_runs_only_the_latest_missed_time() -> None:
    last = NOW - dt.timedelta(hours=3)
    assert schedule.due("0 * * * *", last=last, now=NOW) == NOW
    assert schedule.due("0 * * * *", last=NOW, now=NOW + dt.timedelta(minutes=5)) is None
    assert schedule.run_name(SID, NOW) == f"ana-{SID}-{int(NOW.timestamp() // 60)}"


def test_spec_defaults() -> None:
    the_spec = model.ServiceSpec.from_proto(
        analytics_pb2.AnalyticsSpec(image="img", job_type="ondemand", reps=4)
    )
    assert (the_spec.parallelism, the_spec.backoff_limit_per_index) == (4, 0)
    assert the_spec.image_ref == "img:latest"
    persistent = model.ServiceSpec.from_proto(
        analytics_pb2.AnalyticsSpec(image="img@sha256:abc", job_type="persistent")
    )
    assert (persistent.reps, persistent.image_ref) == (1, "img@sha256:abc")


def test_work_queue_never_runs_a_key_twice_at_once_and_reruns_it_if_dirty() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        log: list[str] = []
        running: set[str] = set()
        release = asyncio.Event()

        async def handler(key: str) -> float | None:
            assert key not in running
            running.add(key)
            log.append(f"start {key}")
            if len(log) == 1:
                queue.add(key)  # an event arrives while it is being reconciled
                queue.add(key)
                await release.wait()
            running.discard(key)
            return None

        task = asyncio.create_task(queue.run(workers=4, handler=handler))
        queue.add("a")
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.sleep(0.05)
        task.cancel()
        return log

    assert asyncio.run(scenario()) == ["start a", "start a"]


def test_each_attempt_of_a_retried_replica_has_its_own_folder() -> None:
    replica = layout.output_relpath(service_id=SID, job_type="ondemand", run=SID, index=2)
    assert str(layout.attempt_folder(replica, job_type="ondemand", attempt="pod-b")) == (
        f"{SID}/2/pod-b"
    )
    scheduled = layout.output_relpath(service_id=SID, job_type="scheduled", run="r", index=0)
    assert str(layout.attempt_folder(scheduled, job_type="scheduled", attempt="r-0-1")) == (
        f"{SID}/r/0/r-0-1"
    )
    persistent = layout.output_relpath(service_id=SID, job_type="persistent", run=SID, index=0)
    assert layout.attempt_folder(persistent, job_type="persistent", attempt="p") == persistent


def test_the_attempt_that_counts_is_the_pod_that_succeeded() -> None:
    """Pods created in the same second: the succeeded one names the replica whatever
    the listing order (its folder is the one collected)."""

    def pod(name: str, phase: str) -> dict[str, object]:
        return {
            "metadata": {
                "name": name,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
            },
            "status": {"phase": phase},
        }

    for pods in (
        [pod("a", "Failed"), pod("b", "Succeeded")],
        [pod("b", "Succeeded"), pod("a", "Failed")],
    ):
        assert observe.newest_by_index(pods)[0]["metadata"]["name"] == "b"


def test_a_later_attempt_replaces_a_failed_entry_and_its_outputs() -> None:
    """A retry's entry (attempt 2) replaces the failed one (attempt 1); the first
    Job's view of that index, still attempt 1, no longer counts."""
    failed = Replica(SID, 1, ReplicaState.FAILED, reason="Error", exit_code=1)
    previous = compute(
        Status(),
        live(Replica(SID, 0, ReplicaState.SUCCEEDED), failed),
        collected={(SID, 0): ("f0",), (SID, 1): ("partial",)},
    )
    assert previous.phase == Phase.FAILED
    assert [r.attempt for r in previous.replicas] == [1, 1]
    retried = Replica(SID, 1, ReplicaState.RUNNING, attempt=2)
    running = compute(previous, live(Replica(SID, 0, ReplicaState.SUCCEEDED), failed, retried))
    assert running.phase == Phase.RUNNING
    assert running.completion_time is None
    entry = running.replicas[1]
    assert (entry.state, entry.attempt, entry.output_file_ids) == (ReplicaState.RUNNING, 2, ())
    done = compute(
        running,
        live(failed, replace(retried, state=ReplicaState.SUCCEEDED)),
        collected={(SID, 1): ("f1",)},
    )
    assert done.phase == Phase.SUCCEEDED
    assert done.succeeded == 2
    assert [(r.attempt, r.output_file_ids) for r in done.replicas] == [(1, ("f0",)), (2, ("f1",))]
    assert model.status_from_proto(model.status_to_proto(done)) == done


def test_a_retried_run_runs_again_then_is_what_its_replicas_say() -> None:
    """A finished run whose failed replica a retry runs again (attempt 2) is running,
    then succeeded, though its first Job (the CronJob's) still says failed."""
    the_spec = spec(jobType="scheduled", schedule="* * * * *", reps=2)
    failed_run = model.Run("r0", NOW, ReplicaState.FAILED)
    first = (
        Replica("r0", 0, ReplicaState.SUCCEEDED, outputs_collected=True),
        Replica("r0", 1, ReplicaState.FAILED, outputs_collected=True),
    )
    previous = Status(phase=Phase.RUNNING, replicas=first, runs=(failed_run,))

    def after(retried: Replica) -> Status:
        return status.compute_status(
            spec=the_spec,
            generation=2,
            previous=previous,
            observation=Observation(
                replicas=(*first, retried),
                runs=(failed_run,),
                live_runs=frozenset({"r0"}),
                ready=True,
            ),
            collected={("r0", 1): ()} if retried.final else {},
            now=NOW,
        )

    running = after(Replica("r0", 1, ReplicaState.RUNNING, attempt=2))
    assert [(r.name, r.state) for r in running.runs] == [("r0", ReplicaState.RUNNING)]
    assert [r.attempt for r in running.replicas] == [1, 2]
    done = after(Replica("r0", 1, ReplicaState.SUCCEEDED, attempt=2))
    assert [(r.name, r.state) for r in done.runs] == [("r0", ReplicaState.SUCCEEDED)]
    assert done.succeeded == 2
