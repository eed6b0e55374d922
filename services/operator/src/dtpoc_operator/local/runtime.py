"""The local runtime: each replica a supervised child process (see :mod:`.replica`),
which runs the launch's command, or, for a launch with an image and no command,
the image in a container through the machine's container engine (see
:mod:`.containers`, :mod:`.container_run`).

State lives on disk so that a restarted operator picks up where it left off:

    <state root>/<service id>/service.json        the workload exists (its "Job")
    <state root>/<service id>/terminating         set when the service is terminated
    <state root>/<service id>/deadline-exceeded   set when activeDeadlineSeconds passed
    <state root>/<service id>/schedule.json       last scheduled time (scheduled)
    <state root>/<service id>/runs/<run>/<index>/<attempt>/   one supervisor each

Supervisors are forked by a fork server (:mod:`.spawner`, one long-lived
child with the supervisor's code imported: a fork costs milliseconds where a
new interpreter cost ~0.15 s of CPU per replica), or started as processes
when it is unavailable. Replicas outlive an operator restart (their supervisors run in their own
sessions); the next operator adopts them by their lock files and collects
their outputs when they finish. A supervisor that vanished without
recording an exit (machine reboot, SIGKILL of its group) makes the attempt
fail with reason ``ProcessLost``, then the usual retry rules apply.

Mirrors of the Kubernetes behaviour: ``parallelism`` (and the global
``local_max_processes``) bound running replicas, ``backoffLimitPerIndex``
retries a failed replica, ``activeDeadlineSeconds`` kills what still runs
(``DeadlineExceeded``), a scheduled service starts the latest due run unless
one is still running (``Forbid``) and keeps its history limits, a persistent
service's process is restarted on exit (back-off 1 s doubling to 60 s).

Container replicas get the pod's environment instead (``/input``,
``/output``, ``RUN_ID``... see :func:`.containers.container_env`); their
container is named after the run id, so terminate and a restarted operator
find it: terminate stops it (the engine's stop with the grace period, then
``rm -f`` by name on force), and a lost supervisor's container is removed.

Process replica environment: the operator's own environment without ``DTPOC_*`` and
``KUBECONFIG`` (never leak the database URI), then ``REPLICA_INDEX``,
``RUN_ID``, ``DTPOC_SERVICE_ID``, ``DTPOC_RUN`` (scheduled),
``OUTPUT_FOLDER``, ``INPUT_FOLDER`` and ``INPUT_<NAME>`` pointing at the local
folders, then the spec's env, whose values ``/input...`` and ``/output...``
are rewritten to the local folders so one program runs unchanged in both
runtimes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dtpoc_common import logging as dlog
from dtpoc_common import replica_logs
from dtpoc_common.vocabulary import FINAL_REPLICA_STATES, JobType, ReplicaState
from dtpoc_operator import layout, logstore, model, refusals
from dtpoc_operator.fetch_tokens import FetchTokens
from dtpoc_operator.local import container_run, containers, forkserver, reaper, schedule
from dtpoc_operator.local import replica as sup
from dtpoc_operator.model import AnalyticsResource, Observation, Replica, Run, ServiceKey
from dtpoc_operator.ports import AttemptLog, SyncResult

log = dlog.get_logger(__name__)

STARTING_GRACE_SECONDS = 30.0
PERSISTENT_BACKOFF_MAX = 60.0
SCHEDULE_CHECK_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Attempt:
    """What the files of one attempt folder say."""

    path: Path
    number: int
    alive: bool
    starting: bool
    exit: dict[str, Any] | None
    pid: dict[str, Any] | None
    spawned_at: dt.datetime | None
    #: The replica's attempt this try belongs to (1, one more per retry; see
    #: ``ReplicaStatus.attempt``): tries under ``backoffLimitPerIndex`` share it.
    replica_attempt: int = 1

    @property
    def finished(self) -> bool:
        return not self.alive and not self.starting

    @property
    def succeeded(self) -> bool:
        return self.exit is not None and self.exit.get("exit_code") == 0


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _locked(path: Path) -> bool:
    """True while a supervisor holds the attempt's lock."""
    try:
        handle = path.open("a")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def _parse_iso(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def read_attempt(path: Path, *, now: dt.datetime) -> Attempt:
    exit_record = _read_json(path / sup.EXIT_FILE)
    pid = _read_json(path / sup.PID_FILE)
    spawn = _read_json(path / "spawn.json") or {}
    spawned_at = _parse_iso(spawn.get("spawned_at"))
    alive = exit_record is None and _locked(path / sup.LOCK_FILE)
    if exit_record is None and not alive:
        reaper.end_leftovers(pid)  # finished means none of its processes runs
    starting = (
        exit_record is None
        and not alive
        and pid is None
        and spawned_at is not None
        and (now - spawned_at).total_seconds() < STARTING_GRACE_SECONDS
    )
    return Attempt(
        path=path,
        number=int(path.name),
        alive=alive,
        starting=starting,
        exit=exit_record,
        pid=pid,
        spawned_at=spawned_at,
        replica_attempt=int(spawn.get("attempt") or 1),
    )


def attempts_of(folder: Path, *, now: dt.datetime) -> list[Attempt]:
    if not folder.is_dir():
        return []
    numbers = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    return [read_attempt(folder / str(n), now=now) for n in numbers]


def _ended_as(attempt: Attempt, *, terminating: bool) -> tuple[int | None, str, str]:
    """(exit code, reason, message) of a finished attempt."""
    if attempt.exit is None:
        if terminating:
            return None, "Terminated", "stopped when the service was terminated"
        return (
            None,
            "ProcessLost",
            "the replica's process ended without recording an exit (machine restart, "
            "or its process group was killed)",
        )
    record = attempt.exit
    code = record.get("exit_code")
    reason = str(record.get("reason") or ("" if code == 0 else "Error"))
    message = str(record.get("message") or "")
    if terminating and record.get("signal"):
        reason = "Terminated"
    return (int(code) if code is not None else None), reason, message


@dataclass(frozen=True)
class _Place:
    """One try of one replica: its run, index, try number and replica attempt, and the
    folders it reads its inputs from and writes its outputs to."""

    run: str
    index: int
    number: int
    attempt: int
    input_dir: Path
    output_dir: Path


class LocalRuntime:
    """:class:`dtpoc_operator.ports.Runtime` on child processes."""

    name = "local"

    def __init__(
        self,
        *,
        output_root: Path,
        state_root: Path,
        files_address: str,
        max_processes: int,
        on_change: Callable[[ServiceKey], None] = lambda _key: None,
        clock: Callable[[], dt.datetime] = model.utcnow,
        engine: containers.Engine | None = None,
        stop_grace_seconds: float = 30.0,
        collector_uid: int | None = None,
        fetch_tokens: FetchTokens | None = None,
        fork_server: forkserver.ForkServer | None = None,
        log_max_bytes: int = replica_logs.DEFAULT_MAX_BYTES,
    ) -> None:
        self._log_max_bytes = log_max_bytes
        self._output_root = output_root
        self._state_root = state_root
        self._files_address = files_address
        self._max_processes = max_processes
        self._on_change = on_change
        self._clock = clock
        #: Each service's running replicas (their run ids), from its last sync, less those
        #: whose supervisor ended since (see _replica_exited); guarded by _alive_lock, as
        #: syncs run in worker threads and exits are seen on the event loop.
        self._alive: dict[str, set[str]] = {}
        #: Replicas whose supervisor ended before the sync that started them recorded them.
        self._ended: dict[str, set[str]] = {}
        self._alive_lock = threading.Lock()
        #: Services with replicas to start and no capacity, oldest first (see _set_alive).
        self._waiting: dict[str, ServiceKey] = {}
        self._waiting_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._children: set[asyncio.Task[None]] = set()
        self._engine = engine
        self._stop_grace = stop_grace_seconds
        self._collector_uid = os.geteuid() if collector_uid is None else collector_uid
        self._fetch_tokens = fetch_tokens
        self._fork_server = fork_server

    @property
    def engine(self) -> containers.Engine | None:
        """The container engine replicas without a command run in; None: processes only."""
        return self._engine

    # --- paths -------------------------------------------------------------------------------

    def _service_dir(self, service_id: str) -> Path:
        return self._state_root / service_id

    def _replica_dir(self, service_id: str, run: str, index: int) -> Path:
        return replica_logs.local_replica_dir(
            self._state_root, service_id=service_id, run=run, index=index
        )

    def output_folder(self, resource: AnalyticsResource, *, run: str, index: int) -> Path:
        return self._output_root / layout.output_relpath(
            service_id=resource.service_id, job_type=resource.spec.job_type, run=run, index=index
        )

    # --- checks ------------------------------------------------------------------------------

    def problem(self, resource: AnalyticsResource) -> tuple[str, str] | None:
        if (shared := refusals.identity_problem(resource)) is not None:
            return shared
        spec = resource.spec
        if not spec.command and self._engine is None:
            return (
                "CommandRequired",
                "the local runtime has no container engine, so it runs replicas as processes "
                f"and needs a command: the image {spec.image_ref} is recorded but not run; "
                "give the service a command (and args), or enable containers with "
                f"{containers.ENGINE_SETTING}=auto (podman or docker)",
            )
        if not spec.command:
            try:
                containers.limits_of(spec.limits)
            except ValueError as error:
                return ("InvalidSpec", f"resources.limits: {error}")
        if spec.job_type == JobType.SCHEDULED and not schedule.is_valid(spec.schedule):
            return ("InvalidSchedule", f"{spec.schedule!r} is not a five-field cron expression")
        return refusals.input_names_problem(resource)

    # --- sync --------------------------------------------------------------------------------

    async def sync(self, resource: AnalyticsResource, *, allow_create: bool) -> SyncResult:
        self._loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self._sync_blocking, resource, allow_create)

    def _sync_blocking(self, resource: AnalyticsResource, allow_create: bool) -> SyncResult:
        sdir = self._service_dir(resource.service_id)
        marker = sdir / "service.json"
        kind = resource.spec.job_type
        if not marker.exists():
            if kind == JobType.ONDEMAND and not allow_create:
                return SyncResult(Observation())
            sdir.mkdir(parents=True, exist_ok=True)
            sup.write_json_atomic(
                marker, {"uid": resource.uid, "created_at": self._clock().isoformat()}
            )
            log.info("local workload created", service_id=resource.service_id, job_type=kind)
        if kind == JobType.ONDEMAND:
            return self._sync_ondemand(resource, act=True)
        if kind == JobType.SCHEDULED:
            return self._sync_scheduled(resource, act=True)
        return self._sync_persistent(resource, act=True)

    async def observe(self, resource: AnalyticsResource) -> Observation:
        return await asyncio.to_thread(self._observe_blocking, resource)

    def _observe_blocking(self, resource: AnalyticsResource) -> Observation:
        if not (self._service_dir(resource.service_id) / "service.json").exists():
            return Observation()
        kind = resource.spec.job_type
        if kind == JobType.ONDEMAND:
            return self._sync_ondemand(resource, act=False).observation
        if kind == JobType.SCHEDULED:
            return self._sync_scheduled(resource, act=False).observation
        return self._sync_persistent(resource, act=False).observation

    def _created_at(self, service_id: str) -> dt.datetime:
        data = _read_json(self._service_dir(service_id) / "service.json") or {}
        return _parse_iso(data.get("created_at")) or self._clock()

    def _terminating(self, service_id: str) -> bool:
        return (self._service_dir(service_id) / "terminating").exists()

    def _set_alive(self, key: ServiceKey, replicas: Iterable[Replica]) -> None:
        """Record a service's running replicas; when it runs fewer, wake the oldest waiters.

        A service that could not start a replica for want of capacity is not
        polled: it waits in ``_waiting`` until a slot frees (O(1) work per
        replica, where polling every waiting service would cost O(services)).
        """
        observed = {r.pod_name for r in replicas if r.state == ReplicaState.RUNNING}
        with self._alive_lock:
            before = self._alive.get(key.name, set())
            ended = self._ended.pop(key.name, set())
            running = observed - ended
            if ended & observed:  # seen ended, not yet by this sync's reading: keep them
                self._ended[key.name] = ended & observed
            self._alive[key.name] = running
        if len(running) < len(before):
            self._wake_waiting()

    def _replica_exited(self, key: ServiceKey, name: str) -> None:
        """A supervisor this process started ended: its slot is free now, not only after
        the service's next reconcile (which may wait behind hundreds of others in the
        work queue, the slot idle meanwhile), and the service is reconciled."""
        with self._alive_lock:
            running = self._alive.get(key.name, set())
            if name in running:
                running.discard(name)
            else:  # ended before the sync that started it recorded it (see _set_alive)
                self._ended.setdefault(key.name, set()).add(name)
        self._wake_waiting()
        self._on_change(key)

    def _note_waiting(self, key: ServiceKey, *, blocked: bool) -> None:
        with self._waiting_lock:
            if blocked:
                self._waiting.setdefault(key.name, key)
            else:
                self._waiting.pop(key.name, None)

    def _wake_waiting(self) -> None:
        with self._waiting_lock:
            first = list(self._waiting.values())[: self._max_processes]
        if not first or self._loop is None:
            return
        for key in first:
            self._loop.call_soon_threadsafe(self._on_change, key)

    def _capacity(self, service_id: str) -> int:
        with self._alive_lock:
            others = sum(len(n) for sid, n in self._alive.items() if sid != service_id)
        return max(self._max_processes - others, 0)

    def _run_replicas(
        self,
        resource: AnalyticsResource,
        *,
        run: str,
        act: bool,
        deadline_exceeded: bool,
        budget: list[int],
    ) -> list[Replica]:
        """Observe (and, with ``act``, advance) the replicas of one run of Jobs semantics."""
        now = self._clock()
        terminating = self._terminating(resource.service_id)
        result: list[Replica] = []
        #: (index, try number, replica attempt) of each replica to start now.
        startable: list[tuple[int, int, int]] = []
        for index in range(resource.spec.reps):
            entry, due = self._observe_replica(
                resource,
                run=run,
                index=index,
                now=now,
                act=act,
                terminating=terminating,
                deadline_exceeded=deadline_exceeded,
            )
            if due is not None:
                startable.append((index, *due))
            if deadline_exceeded and not entry.final:
                entry = _deadline(entry, resource.spec.active_deadline_seconds)
            result.append(entry)
        if act:
            self._start_due(
                resource, run=run, now=now, result=result, startable=startable, budget=budget
            )
        return result

    def _observe_replica(
        self,
        resource: AnalyticsResource,
        *,
        run: str,
        index: int,
        now: dt.datetime,
        act: bool,
        terminating: bool,
        deadline_exceeded: bool,
    ) -> tuple[Replica, tuple[int, int] | None]:
        """One replica's entry from its tries, and the (try number, replica attempt) to
        start now; None when none is due (it runs, succeeded, or used up its retries)."""
        spec = resource.spec
        attempts = attempts_of(self._replica_dir(resource.service_id, run, index), now=now)
        latest = attempts[-1] if attempts else None
        wanted = spec.attempt_in(run, index, service_id=resource.service_id)
        current = latest.replica_attempt if latest is not None else wanted
        failures = sum(
            1 for a in attempts if a.finished and not a.succeeded and a.replica_attempt == current
        )
        if act:
            for lost in (a for a in attempts if a.finished and a.exit is None):
                _remove_container(lost.path)
        if latest is None:
            entry = Replica(run=run, index=index, state=ReplicaState.PENDING, attempt=wanted)
            return entry, None if deadline_exceeded or terminating else (0, wanted)
        if latest.finished and not latest.succeeded and wanted > current:
            # A retry: the failed replica runs again as its next attempt.
            entry = Replica(run=run, index=index, state=ReplicaState.PENDING, attempt=wanted)
            return entry, None if terminating else (latest.number + 1, wanted)
        if not latest.finished:
            return self._entry(resource, run, index, latest, ReplicaState.RUNNING), None
        if latest.succeeded:
            return self._entry(resource, run, index, latest, ReplicaState.SUCCEEDED), None
        if failures <= spec.backoff_limit_per_index and not (deadline_exceeded or terminating):
            entry = self._entry(resource, run, index, latest, ReplicaState.PENDING)
            return _note_retry(entry), (latest.number + 1, current)
        return self._entry(resource, run, index, latest, ReplicaState.FAILED), None

    def _start_due(
        self,
        resource: AnalyticsResource,
        *,
        run: str,
        now: dt.datetime,
        result: list[Replica],
        startable: list[tuple[int, int, int]],
        budget: list[int],
    ) -> None:
        """Start due tries within the spec's parallelism and the shared process budget; a
        service that met the budget waits for a free slot (:meth:`_note_waiting`)."""
        running = sum(1 for r in result if r.state == ReplicaState.RUNNING)
        blocked = False
        for index, number, attempt in startable:
            if running >= resource.spec.parallelism:
                break
            if budget[0] <= 0:
                blocked = True
                break
            self._start(resource, run=run, index=index, number=number, attempt=attempt)
            budget[0] -= 1
            running += 1
            result[index] = Replica(
                run=run,
                index=index,
                state=ReplicaState.RUNNING,
                start_time=now,
                pod_name=_run_id(resource, run, index, number),
                attempt=attempt,
            )
        self._note_waiting(resource.key, blocked=blocked)

    def _entry(
        self, resource: AnalyticsResource, run: str, index: int, attempt: Attempt, state: str
    ) -> Replica:
        pid = attempt.pid or {}
        record = attempt.exit or {}
        start = _parse_iso(pid.get("started_at") or record.get("started_at")) or attempt.spawned_at
        if state in (ReplicaState.RUNNING,):
            return Replica(
                run=run,
                index=index,
                state=state,
                start_time=start,
                pod_name=_run_id(resource, run, index, attempt.number),
                attempt=attempt.replica_attempt,
            )
        code, reason, message = _ended_as(
            attempt, terminating=self._terminating(resource.service_id)
        )
        return Replica(
            run=run,
            index=index,
            state=state,
            start_time=start,
            finish_time=_parse_iso(record.get("finished_at"))
            or (self._clock() if state == ReplicaState.FAILED else None),
            exit_code=code,
            reason="" if state == ReplicaState.SUCCEEDED else reason,
            message="" if state == ReplicaState.SUCCEEDED else message,
            pod_name=_run_id(resource, run, index, attempt.number),
            attempt=attempt.replica_attempt,
        )

    def _sync_ondemand(self, resource: AnalyticsResource, *, act: bool) -> SyncResult:
        spec = resource.spec
        sid = resource.service_id
        sdir = self._service_dir(sid)
        deadline_marker = sdir / "deadline-exceeded"
        if act:
            self._note_retry_round(resource)
        deadline_exceeded = deadline_marker.exists()
        requeue: float | None = None
        if spec.active_deadline_seconds is not None and not deadline_exceeded:
            elapsed = (self._clock() - self._deadline_from(sid)).total_seconds()
            if elapsed >= spec.active_deadline_seconds:
                deadline_exceeded = True
                if act:
                    deadline_marker.touch()
                    self._signal_all(sid, signal.SIGKILL)
            else:
                requeue = spec.active_deadline_seconds - elapsed
        budget = [self._capacity(sid)]
        replicas = self._run_replicas(
            resource, run=sid, act=act, deadline_exceeded=deadline_exceeded, budget=budget
        )
        self._set_alive(resource.key, replicas)
        return SyncResult(
            Observation(
                replicas=tuple(replicas),
                live_runs=frozenset({sid}),
                ready=True,
            ),
            requeue_after=requeue,
        )

    def _note_retry_round(self, resource: AnalyticsResource) -> None:
        """A retry asked for new attempts: its replicas get the whole ``activeDeadlineSeconds``
        again, counted from now (a retry Job's own deadline, in Kubernetes terms)."""
        sdir = self._service_dir(resource.service_id)
        wanted = {str(i): a for i, a in sorted(resource.spec.replica_attempts.items())}
        seen = _read_json(sdir / "retries.json") or {}
        if seen.get("attempts", {}) == wanted:
            return
        (sdir / "deadline-exceeded").unlink(missing_ok=True)
        sup.write_json_atomic(
            sdir / "retries.json", {"attempts": wanted, "since": self._clock().isoformat()}
        )

    def _deadline_from(self, service_id: str) -> dt.datetime:
        since = _parse_iso(
            (_read_json(self._service_dir(service_id) / "retries.json") or {}).get("since")
        )
        return since or self._created_at(service_id)

    def _sync_scheduled(self, resource: AnalyticsResource, *, act: bool) -> SyncResult:
        spec = resource.spec
        sid = resource.service_id
        sdir = self._service_dir(sid)
        runs_dir = sdir / "runs"
        now = self._clock()
        state = _read_json(sdir / "schedule.json") or {}
        last = _parse_iso(state.get("last")) or self._created_at(sid)
        runs_meta = self._runs_meta(sid)
        budget = [self._capacity(sid)]
        replicas: list[Replica] = []
        runs: list[Run] = []
        for name, scheduled_at in runs_meta:
            members = self._run_replicas(
                resource, run=name, act=act, deadline_exceeded=False, budget=budget
            )
            replicas += members
            runs.append(Run(name=name, schedule_time=scheduled_at, state=_run_state(members)))
        # Suspended: no run starts. As a CronJob's, the latest time missed meanwhile
        # runs on resume (the CronJob: when within its startingDeadlineSeconds).
        if act and not self._terminating(sid) and not spec.suspend:
            when = schedule.due(spec.schedule, last=last, now=now)
            if when is not None:
                sup.write_json_atomic(sdir / "schedule.json", {"last": when.isoformat()})
                if any(r.state == ReplicaState.RUNNING for r in runs):
                    log.info("scheduled run skipped: the previous one still runs", service_id=sid)
                else:
                    name = schedule.run_name(sid, when)
                    folder = runs_dir / name
                    folder.mkdir(parents=True, exist_ok=True)
                    sup.write_json_atomic(folder / "run.json", {"scheduled_at": when.isoformat()})
                    members = self._run_replicas(
                        resource, run=name, act=True, deadline_exceeded=False, budget=budget
                    )
                    replicas += members
                    runs.append(Run(name=name, schedule_time=when, state=ReplicaState.RUNNING))
                    log.info("scheduled run started", service_id=sid, run=name)
            self._trim_history(resource, runs)
        self._set_alive(resource.key, replicas)
        wait = (schedule.next_time(spec.schedule, after=now) - now).total_seconds()
        return SyncResult(
            Observation(
                replicas=tuple(replicas),
                runs=tuple(runs),
                live_runs=frozenset(r.name for r in runs),
                ready=True,
                suspended=spec.suspend,
            ),
            requeue_after=min(max(wait, 0.0), SCHEDULE_CHECK_MAX_SECONDS),
        )

    def _runs_meta(self, service_id: str) -> list[tuple[str, dt.datetime | None]]:
        runs_dir = self._service_dir(service_id) / "runs"
        if not runs_dir.is_dir():
            return []
        found = []
        for folder in runs_dir.iterdir():
            meta = _read_json(folder / "run.json") or {}
            found.append((folder.name, _parse_iso(meta.get("scheduled_at"))))
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        return sorted(found, key=lambda item: (item[1] or epoch, item[0]))

    def _trim_history(self, resource: AnalyticsResource, runs: list[Run]) -> None:
        """Forget finished runs beyond the history limits, once the status recorded them
        as finished (their outputs are collected by then or tracked by the status)."""
        recorded = {r.name for r in resource.status.runs if r.state in FINAL_REPLICA_STATES}
        spec = resource.spec
        recorded.discard(spec.retry_run)  # the run a retry is for stays until another is
        for state, limit in (
            (ReplicaState.SUCCEEDED, spec.successful_jobs_history_limit),
            (ReplicaState.FAILED, spec.failed_jobs_history_limit),
        ):
            finished = [r for r in runs if r.state == state and r.name in recorded]
            for run in finished[: max(len(finished) - limit, 0)]:
                shutil.rmtree(
                    self._service_dir(resource.service_id) / "runs" / run.name, ignore_errors=True
                )

    def _sync_persistent(self, resource: AnalyticsResource, *, act: bool) -> SyncResult:
        sid = resource.service_id
        now = self._clock()
        folder = self._replica_dir(sid, sid, 0)
        attempts = attempts_of(folder, now=now)
        latest = attempts[-1] if attempts else None
        fingerprint = resource.spec.fingerprint()
        requeue: float | None = None
        terminating = self._terminating(sid)
        if latest is not None and not latest.finished:
            spec_of_latest = _read_json(latest.path / sup.SPEC_FILE) or {}
            if act and spec_of_latest.get("fingerprint") != fingerprint:
                log.info("spec changed: restarting the persistent process", service_id=sid)
                self._signal_attempt(latest, signal.SIGTERM)
            entry = self._entry(resource, sid, 0, latest, ReplicaState.RUNNING)
            ready = True
        else:
            ready = False
            entry = Replica(run=sid, index=0, state=ReplicaState.PENDING)
            number = 0 if latest is None else latest.number + 1
            wait = 0.0
            if latest is not None:
                code, reason, message = _ended_as(latest, terminating=terminating)
                finished = _parse_iso((latest.exit or {}).get("finished_at")) or now
                wait = (
                    min(2.0 ** max(len(attempts) - 1, 0), PERSISTENT_BACKOFF_MAX)
                    - (now - finished).total_seconds()
                )
                entry = Replica(
                    run=sid,
                    index=0,
                    state=ReplicaState.PENDING,
                    exit_code=code,
                    reason="Restarting",
                    message=f"exited ({reason or 'code ' + str(code)}); restarting. {message}"[
                        :1024
                    ],
                    pod_name=_run_id(resource, sid, 0, latest.number),
                )
            if act and not terminating:
                if wait <= 0 and self._capacity(sid) > 0:
                    self._start(resource, run=sid, index=0, number=number)
                    entry = Replica(
                        run=sid,
                        index=0,
                        state=ReplicaState.RUNNING,
                        start_time=now,
                        pod_name=_run_id(resource, sid, 0, number),
                    )
                    ready = True
                else:
                    requeue = max(wait, 0.5)
        self._set_alive(resource.key, (entry,))
        return SyncResult(
            Observation(replicas=(entry,), live_runs=frozenset({sid}), ready=ready),
            requeue_after=requeue,
        )

    # --- starting ----------------------------------------------------------------------------

    def _env(self, resource: AnalyticsResource, place: _Place) -> dict[str, str]:
        """A command's environment: the operator's own (without DTPOC_* and KUBECONFIG), the
        inputs' variables, the user's (paths localised), then the platform's."""
        input_dir, output_dir = place.input_dir, place.output_dir
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("DTPOC_") and k != "KUBECONFIG"
        }
        platform = {
            "DTPOC_SERVICE_ID": resource.service_id,
            "REPLICA_INDEX": str(place.index),
            "JOB_COMPLETION_INDEX": str(place.index),
            "RUN_ID": _run_id(resource, place.run, place.index, place.number),
            "OUTPUT_FOLDER": str(output_dir),
            "INPUT_FOLDER": str(input_dir),
        }
        if resource.spec.job_type != JobType.PERSISTENT:
            platform["DTPOC_ATTEMPT"] = str(place.attempt)
        if resource.spec.job_type == JobType.SCHEDULED:
            platform["DTPOC_RUN"] = place.run
        inputs = layout.input_env(dict(resource.spec.input_files), input_folder=str(input_dir))
        user = {
            k: _localise(v, input_dir=input_dir, output_dir=output_dir)
            for k, v in resource.spec.env.items()
            if k not in layout.RESERVED_ENV
        }
        env.update(inputs)
        env.update(user)
        env.update(platform)
        return env

    def _start(
        self, resource: AnalyticsResource, *, run: str, index: int, number: int, attempt: int = 1
    ) -> None:
        folder = self._replica_dir(resource.service_id, run, index) / str(number)
        folder.mkdir(parents=True, exist_ok=True)
        place = _Place(
            run=run,
            index=index,
            number=number,
            attempt=attempt,
            input_dir=folder / "input",
            output_dir=layout.attempt_folder(
                self.output_folder(resource, run=run, index=index),
                job_type=resource.spec.job_type,
                attempt=_run_id(resource, run, index, number),
            ),
        )
        sup.write_json_atomic(folder / sup.SPEC_FILE, self._payload(resource, place))
        sup.write_json_atomic(
            folder / "spawn.json", {"spawned_at": self._clock().isoformat(), "attempt": attempt}
        )
        # Runs in a worker thread: the event loop spawns (and later reaps) the supervisor.
        assert self._loop is not None, "sync() sets the loop before any start"
        name = _run_id(resource, run, index, number)
        started = asyncio.run_coroutine_threadsafe(
            self._spawn(folder, resource.key, name=name), self._loop
        )
        started.result(timeout=STARTING_GRACE_SECONDS)
        log.info(
            "replica started",
            service_id=resource.service_id,
            run=run,
            replica_index=index,
            attempt=attempt,
            try_number=number,
        )

    def _payload(self, resource: AnalyticsResource, place: _Place) -> dict[str, Any]:
        """The supervisor's spec of one try (:mod:`.replica`): where its inputs come from
        and go, and the command (with its environment) or the container to run."""
        spec = resource.spec
        payload: dict[str, Any] = {
            "input_dir": str(place.input_dir),
            "output_dir": str(place.output_dir),
            "inputs": [
                {"file_id": fid, "name": name} for fid, name in sorted(spec.input_files.items())
            ],
            "files_address": self._files_address,
            "fingerprint": spec.fingerprint(),
            "log_max_bytes": self._log_max_bytes,
        }
        if self._fetch_tokens is not None and spec.input_files:
            # The supervisor's fetch reads these inputs and nothing else.
            payload["fetch_token"] = self._fetch_tokens.for_start(
                resource.service_id, spec.input_files
            )
        if spec.command:
            payload["argv"] = [*spec.command, *spec.args]
            payload["env"] = self._env(resource, place)
        else:
            payload["container"] = self._container_payload(resource, place)
        return payload

    def _container_payload(self, resource: AnalyticsResource, place: _Place) -> dict[str, Any]:
        """What the supervisor needs to run the image (see :mod:`.container_run`)."""
        assert self._engine is not None, "problem() refuses a launch without command or engine"
        spec = resource.spec
        run_id = _run_id(resource, place.run, place.index, place.number)
        memory, cpus = containers.limits_of(spec.limits)
        job = containers.ContainerJob(
            name=containers.container_name(run_id),
            image=spec.image_ref,
            env=containers.container_env(
                resource, run=place.run, index=place.index, run_id=run_id, attempt=place.attempt
            ),
            input_dir=str(place.input_dir),
            output_dir=str(place.output_dir),
            labels=dict([containers.service_label(resource.service_id).split("=", 1)]),
            memory_bytes=memory,
            cpus=cpus,
            port=spec.port if spec.job_type == JobType.PERSISTENT else None,
        )
        return {
            "engine": self._engine.to_dict(),
            "job": job.to_dict(),
            "grace_seconds": self._stop_grace,
            "collector_uid": self._collector_uid,
        }

    async def _spawn(self, attempt: Path, key: ServiceKey, *, name: str) -> None:
        """Start the attempt's supervisor: forked by the fork server, else as a process."""
        if self._fork_server is not None:
            try:
                await self._fork_server.start(
                    attempt, on_exit=lambda: self._replica_exited(key, name)
                )
                return
            except forkserver.ForkServerUnavailable as error:
                log.warning("starting the supervisor as a process", error=str(error))
        with (attempt / "supervisor.log").open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dtpoc_operator.local.replica",
                str(attempt),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

        async def reap() -> None:
            await process.wait()
            self._replica_exited(key, name)

        task = asyncio.create_task(reap())
        self._children.add(task)
        task.add_done_callback(self._children.discard)

    # --- stopping ----------------------------------------------------------------------------

    def _live_attempts(self, service_id: str) -> list[Attempt]:
        runs_dir = self._service_dir(service_id) / "runs"
        if not runs_dir.is_dir():
            return []
        now = self._clock()
        found = []
        for run in runs_dir.iterdir():
            if not run.is_dir():
                continue
            for replica_dir in run.iterdir():
                if replica_dir.is_dir():
                    found += [a for a in attempts_of(replica_dir, now=now) if not a.finished]
        return found

    @staticmethod
    def _signal_attempt(attempt: Attempt, signum: int) -> None:
        pgid = (attempt.pid or {}).get("pgid")
        if not pgid:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pgid), signum)

    def _signal_all(self, service_id: str, signum: int) -> None:
        for attempt in self._live_attempts(service_id):
            self._signal_attempt(attempt, signum)

    async def stop(self, resource: AnalyticsResource, *, force: bool) -> bool:
        return await asyncio.to_thread(self._stop_blocking, resource, force)

    def _stop_blocking(self, resource: AnalyticsResource, force: bool) -> bool:
        sid = resource.service_id
        sdir = self._service_dir(sid)
        if not sdir.is_dir():
            return True
        marker = sdir / "terminating"
        first = not marker.exists()
        marker.touch()
        live = self._live_attempts(sid)
        if not live:
            return True
        if force:
            for attempt in live:
                reaper.end_members(attempt.pid)  # the ones outside its process group too
                self._signal_attempt(attempt, signal.SIGKILL)
                _remove_container(attempt.path)
            log.info("replicas killed after the grace period", service_id=sid, count=len(live))
            return True
        if first:
            for attempt in live:
                self._signal_attempt(attempt, signal.SIGTERM)
            log.info("replicas asked to stop", service_id=sid, count=len(live))
        return False

    # --- logs ------------------------------------------------------------------------------

    async def attempt_logs(self, resource: AnalyticsResource, replica: Replica) -> list[AttemptLog]:
        return await asyncio.to_thread(self._attempt_logs_blocking, resource, replica)

    def _attempt_logs_blocking(
        self, resource: AnalyticsResource, replica: Replica
    ) -> list[AttemptLog]:
        """Each replica attempt's tries' logs, one after the other (capped again)."""
        folder = self._replica_dir(resource.service_id, replica.run, replica.index)
        # The cap, its marker line, and a little more: the copier never writes beyond.
        most = self._log_max_bytes + 4096
        parts: dict[int, list[bytes]] = {}
        names: dict[int, str] = {}
        for attempt in attempts_of(folder, now=self._clock()):
            try:
                with (attempt.path / sup.LOG_FILE).open("rb") as handle:
                    content = handle.read(most)
            except FileNotFoundError:
                content = b""
            except OSError as error:
                log.warning("log unreadable", path=str(attempt.path), error=str(error))
                continue
            parts.setdefault(attempt.replica_attempt, []).append(content)
            names[attempt.replica_attempt] = _run_id(
                resource, replica.run, replica.index, attempt.number
            )
        return [
            AttemptLog(
                attempt=number,
                name=names[number],
                content=logstore.capped(b"".join(parts[number]), max_bytes=self._log_max_bytes),
            )
            for number in sorted(parts)
        ]

    async def forget(self, resource: AnalyticsResource) -> None:
        self._note_waiting(resource.key, blocked=False)
        with self._alive_lock:
            running = self._alive.pop(resource.service_id, None)
            self._ended.pop(resource.service_id, None)
        if running:
            self._wake_waiting()
        if self._engine is not None:
            await asyncio.to_thread(self._remove_containers_of, resource.service_id)
        await asyncio.to_thread(
            shutil.rmtree, self._service_dir(resource.service_id), ignore_errors=True
        )

    def _remove_containers_of(self, service_id: str) -> None:
        """Every container labelled with the service (nothing outlives the service)."""
        assert self._engine is not None
        for name in self._engine.names(label=containers.service_label(service_id)):
            self._engine.remove(name)
            container_run.remove_cgroups(name)
            log.info("container removed", service_id=service_id, container=name)


def _remove_container(attempt: Path) -> None:
    """Remove the container of an attempt whose supervisor is gone or killed (its
    container runs on under the engine's monitor otherwise). Idempotent."""
    marker = attempt / "container-removed"
    settings = (_read_json(attempt / sup.SPEC_FILE) or {}).get("container")
    if not settings or marker.exists():
        return
    engine = containers.Engine.from_dict(settings["engine"])
    name = str(settings["job"]["name"])
    if engine.remove(name):
        container_run.remove_cgroups(name)
        marker.touch()
        log.info("container removed", container=name)


def _run_id(resource: AnalyticsResource, run: str, index: int, number: int) -> str:
    base = f"{run}-{index}"
    return f"{base}-{number}" if number else base


def _localise(value: str, *, input_dir: Path, output_dir: Path) -> str:
    for prefix, folder in (("/input", input_dir), ("/output", output_dir)):
        if value == prefix or value.startswith(prefix + "/"):
            return str(folder) + value[len(prefix) :]
    return value


def _note_retry(entry: Replica) -> Replica:
    return replace(entry, message=f"attempt failed ({entry.reason}); retrying. {entry.message}")


def _deadline(entry: Replica, seconds: int | None) -> Replica:
    return replace(
        entry,
        state=ReplicaState.FAILED,
        reason="DeadlineExceeded",
        message=f"the service ran longer than activeDeadlineSeconds ({seconds})",
    )


def _run_state(members: list[Replica]) -> str:
    if members and all(r.final for r in members):
        return (
            ReplicaState.FAILED
            if any(r.state == ReplicaState.FAILED for r in members)
            else ReplicaState.SUCCEEDED
        )
    return ReplicaState.RUNNING
