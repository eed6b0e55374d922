"""The Kubernetes runtime: children created, adopted or patched, then observed.

Create-or-adopt, never duplicate: a child is looked up by its deterministic
name; a create answered ``409 AlreadyExists`` means another pass (or a
previous life of the operator) got there first, so the existing object is
read and compared instead. A child without a controller owner is adopted;
one controlled by another Analytics (a resource of the same name deleted and
created again before garbage collection finished) is left alone and the
reconcile retried until it is gone.

Spec changes: an ondemand Job is never patched (the CRD makes an ondemand
spec immutable); a CronJob, Deployment, Service or Ingress whose
``spec-hash`` annotation differs from the desired one is patched.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from dtpoc_common import logging as dlog
from dtpoc_common import replica_logs
from dtpoc_common.vocabulary import JobType, ReplicaState
from dtpoc_operator import layout, logstore, refusals
from dtpoc_operator.kube import api as kapi
from dtpoc_operator.kube import manifests, observe, podlogs
from dtpoc_operator.kube.cache import WatchCache
from dtpoc_operator.model import AnalyticsResource, Observation, Replica
from dtpoc_operator.ports import AttemptLog, SyncResult

log = dlog.get_logger(__name__)

Obj = dict[str, Any]

#: After creating a Job, how long the first status write may wait for all its pods: a
#: burst of 200 services' 600 pods takes the Job controller (20 QPS) ~40 s. Nothing a
#: user sees waits: an empty status reads as pending, with the spec's replica count.
STATUS_WAIT_SECONDS = 60.0

_PATHS = {
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "Deployment": ("apps", "v1", "deployments"),
    "Service": ("", "v1", "services"),
    "Ingress": ("networking.k8s.io", "v1", "ingresses"),
    "Pod": ("", "v1", "pods"),
}
#: Optional fields a patch must clear explicitly when the desired object lacks them
#: (a merge patch keeps what it does not mention).
_OPTIONAL: dict[str, list[tuple[str, ...]]] = {
    "CronJob": [
        ("jobTemplate", "spec", "activeDeadlineSeconds"),
        ("jobTemplate", "spec", "ttlSecondsAfterFinished"),
        ("jobTemplate", "spec", "template", "spec", "initContainers"),
    ],
    "Deployment": [("template", "spec", "initContainers")],
    "Ingress": [("ingressClassName",), ("tls",)],
}


def path_of(kind: str, namespace: str, name: str = "") -> str:
    group, version, plural = _PATHS[kind]
    return kapi.ns_path(group, version, namespace, plural, name)


def controller_of(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def _with_removals(kind: str, spec: Obj) -> Obj:
    patched = dict(spec)
    for path in _OPTIONAL.get(kind, []):
        node = patched
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                break
            node[part] = child = dict(child)
            node = child
        else:
            node.setdefault(path[-1], None)
    return patched


class KubeRuntime:
    """:class:`dtpoc_operator.ports.Runtime` on Jobs, CronJobs and Deployments."""

    name = "kubernetes"

    def __init__(
        self,
        api: kapi.KubeApi,
        *,
        children: manifests.ChildSettings,
        output_root: Path,
        cache: WatchCache | None = None,
        log_max_bytes: int = replica_logs.DEFAULT_MAX_BYTES,
    ) -> None:
        self._log_max_bytes = log_max_bytes
        self._api = api
        self._children = children
        self._output_root = output_root
        self._cache = cache
        #: Jobs this process created whose first status is not written yet, by
        #: (namespace, name): when (monotonic), for :meth:`_first_status_wait`.
        self._created: dict[tuple[str, str], float] = {}

    # --- checks ------------------------------------------------------------------------------

    def problem(self, resource: AnalyticsResource) -> tuple[str, str] | None:
        if (shared := refusals.identity_problem(resource)) is not None:
            return shared
        spec = resource.spec
        if spec.input_files and not self._children.init_image:
            return (
                "OperatorMisconfigured",
                "this service has input files but the operator has no image for the "
                "init container that fetches them: set DTPOC_OPERATOR_IMAGE",
            )
        return refusals.input_names_problem(resource)

    def output_folder(self, resource: AnalyticsResource, *, run: str, index: int) -> Path:
        relative = layout.output_relpath(
            service_id=resource.service_id, job_type=resource.spec.job_type, run=run, index=index
        )
        return self._output_root / relative

    # --- sync --------------------------------------------------------------------------------

    async def sync(self, resource: AnalyticsResource, *, allow_create: bool) -> SyncResult:
        try:
            return await self._sync(resource, allow_create=allow_create)
        except kapi.KubeError as error:
            if error.status != 422:
                raise
            # The apiserver refused a child (e.g. a schedule it cannot parse): retrying
            # cannot help, so the service fails and says why.
            return SyncResult(
                Observation(problem=("InvalidSpec", f"Kubernetes refused a child: {error.message}"))
            )

    async def _sync(self, resource: AnalyticsResource, *, allow_create: bool) -> SyncResult:
        desired = manifests.children(resource, self._children)
        kind = resource.spec.job_type
        if kind == JobType.ONDEMAND:
            cached = self._cached_job(resource.key.namespace, _name(desired[0]))
            if allow_create and cached is None:
                # First pass: create straight away (409 means it exists: then compare).
                job, created = await self._ensure(resource, desired[0], None, patch=False)
                if created:
                    if self._cache is not None:
                        self._cache.created_job(resource.key.namespace, job)
                    self._created[(resource.key.namespace, _name(job))] = time.monotonic()
                    log.info("job created", service_id=resource.service_id, job=_name(job))
                    # Nothing to observe yet: no pod exists a moment after the Job. Its
                    # pods' events reconcile again (and write the status) within a second
                    # or so; if none come, the requeue writes the pending status.
                    replicas = observe.job_replicas(job, [], run=resource.service_id)
                    return SyncResult(
                        Observation(
                            replicas=tuple(replicas),
                            live_runs=frozenset({resource.service_id}),
                            ready=True,
                        ),
                        requeue_after=STATUS_WAIT_SECONDS,
                        status_can_wait=True,
                    )
                await self._ensure_retries(resource)
                return SyncResult(await self._observe_ondemand(resource, job))
            found = cached or await self._job(resource.key.namespace, _name(desired[0]))
            if found is not None:
                found, _ = await self._ensure(resource, desired[0], found, patch=False)
            await self._ensure_retries(resource)
            observation = await self._observe_ondemand(resource, found)
            wait = self._first_status_wait(resource, found, observation)
            return SyncResult(observation, requeue_after=wait, status_can_wait=wait is not None)
        if kind == JobType.SCHEDULED:
            existing = await self._api.get(
                path_of("CronJob", resource.key.namespace, _name(desired[0]))
            )
            cronjob, _ = await self._ensure(resource, desired[0], existing, patch=True)
            await self._ensure_retries(resource)
            return SyncResult(await self._observe_scheduled(resource, cronjob))
        deployment: Obj | None = None
        for body in desired:
            existing = await self._api.get(
                path_of(body["kind"], resource.key.namespace, _name(body))
            )
            ensured, _ = await self._ensure(resource, body, existing, patch=True)
            if body["kind"] == "Deployment":
                deployment = ensured
        # A child no longer asked for goes: the Service and Ingress with the port,
        # the Ingress also with the exposure policy (an older operator's open one).
        wanted = {body["kind"] for body in desired}
        for kind_ in ("Ingress", "Service"):
            if kind_ not in wanted:
                await self._delete_owned(resource, kind_)
        return SyncResult(await self._observe_persistent(resource, deployment))

    def _first_status_wait(
        self, resource: AnalyticsResource, job: Obj | None, observation: Observation
    ) -> float | None:
        """Seconds the first status of a Job created by this process may still wait
        for the rest of its pods; None: write it now.

        The Job controller creates a Job's pods in slow-start batches (1, then 2...),
        and under a burst a Job's pods come up to ~40 s after its create: writing on
        each batch cost ~2 status writes per service, all saying "pending". So the
        first write waits while every replica is still plainly pending and fewer
        pods exist than the Job will run at once, for at most ``STATUS_WAIT_SECONDS``
        after the create. Any state a user would see (a pod running or finished, a
        waiting reason) is written at once.
        """
        key = (resource.key.namespace, layout.child_name(resource.service_id))
        created = self._created.get(key)
        if created is None:
            return None
        left = created + STATUS_WAIT_SECONDS - time.monotonic()
        if (
            left <= 0
            or resource.status.replicas
            or job is None
            or not observe.pods_still_coming(job, observation.replicas)
        ):
            del self._created[key]
            return None
        return left

    def _retries(self, resource: AnalyticsResource) -> list[tuple[int, int]]:
        """(index, attempt) of every replica a retry asked to run again (of the run
        ``retryRun`` of a scheduled service)."""
        spec = resource.spec
        if not spec.retried_run(resource.service_id):
            return []
        return sorted(
            (i, spec.attempt_of(i)) for i in spec.replica_attempts if spec.attempt_of(i) > 1
        )

    def _retry_name(self, resource: AnalyticsResource, *, index: int, attempt: int) -> str:
        """The retry Job's name: ``ana-<id>-<i>-a<n>``, or ``<run>-<i>-a<n>`` (scheduled)."""
        return layout.retry_job_name(
            resource.service_id, index=index, attempt=attempt, run=_scheduled_run(resource)
        )

    async def _ensure_retries(self, resource: AnalyticsResource) -> None:
        """A Job for each retried replica whose attempt the status does not show yet.

        Once the status holds that attempt, a missing Job (TTL) is not made again:
        the attempt ran, as for the service's first Job.
        """
        run = resource.spec.retried_run(resource.service_id)
        shown = {r.index: r.attempt for r in resource.status.replicas if r.run == run}
        for index, attempt in self._retries(resource):
            if shown.get(index, 1) >= attempt:
                continue
            body = manifests.retry_job(
                resource,
                self._children,
                index=index,
                attempt=attempt,
                run=_scheduled_run(resource),
            )
            job, created = await self._ensure(resource, body, None, patch=False)
            if created:
                if self._cache is not None:
                    self._cache.created_job(resource.key.namespace, job)
                log.info(
                    "retry job created",
                    service_id=resource.service_id,
                    job=_name(job),
                    replica_index=index,
                    attempt=attempt,
                )

    async def _ensure(
        self, resource: AnalyticsResource, desired: Obj, existing: Obj | None, *, patch: bool
    ) -> tuple[Obj, bool]:
        """The child, created, adopted or patched as needed; True when created now."""
        kind = desired["kind"]
        namespace = resource.key.namespace
        name = _name(desired)
        if existing is None:
            try:
                created = await self._api.create(path_of(kind, namespace), desired)
            except kapi.KubeError as error:
                if not error.conflict:
                    raise
                existing = await self._api.get(path_of(kind, namespace, name))
                if existing is None:
                    raise
            else:
                return created, True
        owner = controller_of(existing)
        if owner is None:
            refs = [*((existing.get("metadata") or {}).get("ownerReferences") or [])]
            refs.append(manifests.owner_reference(resource))
            existing = await self._api.patch(
                path_of(kind, namespace, name),
                {"metadata": {"ownerReferences": refs, "labels": desired["metadata"]["labels"]}},
            )
            log.info("child adopted", service_id=resource.service_id, kind=kind, name=name)
        elif owner.get("uid") != resource.uid:
            raise kapi.KubeError(
                409,
                "OwnedByAnother",
                f"{kind} {name} belongs to another Analytics (uid {owner.get('uid')}); "
                "waiting for garbage collection to remove it",
            )
        have = ((existing.get("metadata") or {}).get("annotations") or {}).get(
            manifests.SPEC_HASH_ANNOTATION
        )
        want = desired["metadata"]["annotations"][manifests.SPEC_HASH_ANNOTATION]
        if patch and have != want:
            existing = await self._api.patch(
                path_of(kind, namespace, name),
                {
                    "metadata": {
                        "labels": desired["metadata"]["labels"],
                        # The spec hash and what it covers (an Ingress's auth annotations).
                        "annotations": desired["metadata"]["annotations"],
                    },
                    "spec": _with_removals(kind, desired["spec"]),
                },
            )
            log.info("child updated", service_id=resource.service_id, kind=kind, name=name)
        return existing, False

    async def _delete_owned(self, resource: AnalyticsResource, kind: str) -> None:
        name = layout.child_name(resource.service_id)
        existing = await self._api.get(path_of(kind, resource.key.namespace, name))
        if existing is None:
            return
        owner = controller_of(existing)
        if owner is not None and owner.get("uid") == resource.uid:
            await self._api.delete(path_of(kind, resource.key.namespace, name))

    # --- observe -----------------------------------------------------------------------------

    async def observe(self, resource: AnalyticsResource) -> Observation:
        namespace = resource.key.namespace
        name = layout.child_name(resource.service_id)
        kind = resource.spec.job_type
        if kind == JobType.ONDEMAND:
            return await self._observe_ondemand(
                resource, await self._api.get(path_of("Job", namespace, name)), fresh=True
            )
        if kind == JobType.SCHEDULED:
            return await self._observe_scheduled(
                resource, await self._api.get(path_of("CronJob", namespace, name))
            )
        return await self._observe_persistent(
            resource, await self._api.get(path_of("Deployment", namespace, name))
        )

    async def _pods(self, resource: AnalyticsResource, extra: str = "") -> list[Obj]:
        selector = manifests.selector(resource.service_id)
        if extra:
            selector += "," + extra
        return await self._api.list(path_of("Pod", resource.key.namespace), label_selector=selector)

    def _cached_job(self, namespace: str, name: str) -> Obj | None:
        """The Job as the watch cache holds it (the pass that created it put it there,
        so the next pass, before any status is written, does not create it again)."""
        return self._cache.get("jobs", namespace, name) if self._cache is not None else None

    async def _job(self, namespace: str, name: str) -> Obj | None:
        """An ondemand service's Job: from the watch cache when it holds it."""
        cached = self._cached_job(namespace, name)
        if cached is not None:
            return cached
        found = await self._api.get(path_of("Job", namespace, name))
        if self._cache is not None:
            self._cache.confirmed("jobs", namespace, name, found)
        return found

    async def _job_pods(
        self, resource: AnalyticsResource, job_name: str, *, fresh: bool
    ) -> list[Obj]:
        namespace = resource.key.namespace
        if self._cache is not None and not fresh:
            cached = self._cache.pods_of_job(namespace, job_name)
            if cached is not None:
                return cached
        pods = await self._pods(resource, f"{manifests.JOB_NAME_LABEL}={job_name}")
        if self._cache is not None:
            self._cache.confirmed_pods(namespace, job_name, pods)
        return pods

    async def _observe_ondemand(
        self, resource: AnalyticsResource, job: Obj | None, *, fresh: bool = False
    ) -> Observation:
        """Replicas from the Job and its pods; ``fresh``: pods from the apiserver, not the cache
        (a terminate records exactly what finished)."""
        run = resource.service_id
        name = layout.child_name(resource.service_id)
        pods = await self._job_pods(resource, name, fresh=fresh)
        if job is not None and _owned_by(job, resource):
            replicas = observe.job_replicas(job, pods, run=run)
            live = frozenset({run})
        else:
            replicas = observe.pods_only_replicas(pods, run=run)
            live = frozenset()
        for index, attempt in self._retries(resource):
            seen = await self._observe_retry(resource, index=index, attempt=attempt, fresh=fresh)
            if seen is not None:
                replicas.append(seen)
                live = frozenset({run})
        return Observation(
            replicas=tuple(replicas),
            live_runs=live,
            ready=bool(live),
            waiting=observe.waiting_of(replicas),
        )

    async def _observe_retry(
        self, resource: AnalyticsResource, *, index: int, attempt: int, fresh: bool
    ) -> Replica | None:
        """The retried replica as its own Job says (None when that Job does not exist)."""
        namespace = resource.key.namespace
        name = self._retry_name(resource, index=index, attempt=attempt)
        job = (
            await self._job(namespace, name) if not fresh else await self._fresh_job(resource, name)
        )
        if job is None or not _owned_by(job, resource):
            return None
        pods = await self._job_pods(resource, name, fresh=fresh)
        run = resource.spec.retried_run(resource.service_id)
        (seen,) = observe.job_replicas(job, pods, run=run)
        return replace(seen, index=index, attempt=attempt)

    async def _fresh_job(self, resource: AnalyticsResource, name: str) -> Obj | None:
        return await self._api.get(path_of("Job", resource.key.namespace, name))

    async def _observe_scheduled(
        self, resource: AnalyticsResource, cronjob: Obj | None
    ) -> Observation:
        jobs = await self._api.list(
            path_of("Job", resource.key.namespace),
            label_selector=manifests.selector(resource.service_id),
        )
        if cronjob is not None:
            uid = cronjob["metadata"]["uid"]
            jobs = [j for j in jobs if (controller_of(j) or {}).get("uid") == uid]
        else:  # no CronJob to tell its runs by: leave out the retry Jobs (below)
            jobs = [j for j in jobs if (controller_of(j) or {}).get("uid") != resource.uid]
        pods = await self._pods(resource)
        by_job: dict[str, list[Obj]] = {}
        for pod in pods:
            job_name = ((pod.get("metadata") or {}).get("labels") or {}).get(
                manifests.JOB_NAME_LABEL
            )
            if job_name:
                by_job.setdefault(job_name, []).append(pod)
        replicas: list[Replica] = []
        runs = []
        for job in jobs:
            job_name = job["metadata"]["name"]
            replicas += observe.job_replicas(job, by_job.get(job_name, []), run=job_name)
            runs.append(observe.run_of(job))
        live = {r.name for r in runs}
        # A retry of a run: its Jobs are the Analytics's own, not the CronJob's, and
        # outlive the run's Job (the CronJob's history limits remove that one).
        for index, attempt in self._retries(resource):
            seen = await self._observe_retry(resource, index=index, attempt=attempt, fresh=False)
            if seen is not None:
                replicas.append(seen)
                live.add(seen.run)
        suspended = bool(((cronjob or {}).get("spec") or {}).get("suspend"))
        return Observation(
            replicas=tuple(replicas),
            runs=tuple(runs),
            live_runs=frozenset(live),
            ready=cronjob is not None,
            waiting=observe.waiting_of(replicas),
            suspended=suspended,
        )

    async def _observe_persistent(
        self, resource: AnalyticsResource, deployment: Obj | None
    ) -> Observation:
        run = resource.service_id
        pods = [
            p
            for p in await self._pods(resource)
            if not (p.get("metadata") or {}).get("deletionTimestamp")
        ]
        pods.sort(key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))
        replicas: tuple[Replica, ...] = ()
        if pods:
            seen = observe.pod_details(pods[-1], run=run, index=0)
            if seen.final:
                # A Deployment restarts its pod; the replica is not finished.
                seen = Replica(
                    run=run,
                    index=0,
                    state=ReplicaState.PENDING,
                    reason=seen.reason,
                    message=seen.message,
                    exit_code=seen.exit_code,
                    pod_name=seen.pod_name,
                )
            replicas = (seen,)
        elif deployment is not None:
            replicas = (Replica(run=run, index=0, state=ReplicaState.PENDING),)
        available = int(((deployment or {}).get("status") or {}).get("availableReplicas") or 0)
        return Observation(
            replicas=replicas,
            live_runs=frozenset({run}) if deployment is not None else frozenset(),
            ready=available >= 1,
            waiting=observe.waiting_of(replicas),
        )

    # --- stop --------------------------------------------------------------------------------

    async def stop(self, resource: AnalyticsResource, *, force: bool) -> bool:
        namespace = resource.key.namespace
        for kind in ("CronJob", "Job", "Deployment", "Ingress", "Service"):
            await self._delete_owned(resource, kind)
        if resource.spec.job_type == JobType.SCHEDULED or self._retries(resource):
            # A scheduled service's runs; an ondemand service's retry Jobs.
            jobs = await self._api.list(
                path_of("Job", namespace), label_selector=manifests.selector(resource.service_id)
            )
            for job in jobs:
                await self._api.delete(path_of("Job", namespace, job["metadata"]["name"]))
        if force:
            return True
        pods = await self._pods(resource)
        running = [
            p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        return not running

    async def attempt_logs(self, resource: AnalyticsResource, replica: Replica) -> list[AttemptLog]:
        """Each pod of the replica's index (:mod:`.podlogs`), while the pods exist."""
        kind = resource.spec.job_type
        index: int | None = replica.index
        if kind == JobType.SCHEDULED:
            # The run's own pods and its retry Jobs' (named <run>-<index>-a<attempt>).
            pods = [
                p
                for p in await self._pods(resource)
                if _job_name_of(p) == replica.run or _job_name_of(p).startswith(replica.run + "-")
            ]
        elif kind == JobType.ONDEMAND:
            pods = await self._pods(resource)  # a retry's Job has a name of its own
        else:
            pods, index = await self._pods(resource), None
        found = []
        for attempt, tries in replica_logs.pod_attempts(pods, index=index):
            parts = [
                await podlogs.pod_log(
                    self._api,
                    namespace=resource.key.namespace,
                    pod=pod,
                    max_bytes=self._log_max_bytes,
                )
                for pod in tries
            ]
            content = logstore.capped(b"".join(parts), max_bytes=self._log_max_bytes)
            name = tries[-1]["metadata"]["name"]
            found.append(AttemptLog(attempt=attempt, name=name, content=content))
        return found

    async def forget(self, resource: AnalyticsResource) -> None:
        self._created.pop((resource.key.namespace, layout.child_name(resource.service_id)), None)


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _job_name_of(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(manifests.JOB_NAME_LABEL, ""))


def _scheduled_run(resource: AnalyticsResource) -> str:
    """The run a scheduled service's retry is for; "" for an ondemand service."""
    return resource.spec.retry_run if resource.spec.job_type == JobType.SCHEDULED else ""


def _owned_by(obj: Obj, resource: AnalyticsResource) -> bool:
    owner = controller_of(obj)
    return owner is not None and owner.get("uid") == resource.uid
