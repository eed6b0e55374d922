"""The children of an Analytics resource, as API objects (pure functions).

Decisions written down here because they are visible from outside:

- Every child is named :func:`dtpoc_operator.layout.child_name` (``ana-<id>``),
  carries the labels ``app.kubernetes.io/managed-by: dtpoc-operator`` and
  ``dtpoc.eng.cam.ac.uk/service-id: <id>``, an owner reference to the
  Analytics (controller, blockOwnerDeletion), and the annotation
  ``dtpoc.eng.cam.ac.uk/spec-hash`` used to notice a changed spec.
- Replica ``i`` of an ondemand service is completion index ``i`` of an
  Indexed Job. ``backoffLimitPerIndex`` (default 0) decides when a replica
  has failed for good; ``backoffLimit`` is set to the most failures the
  per-index limits allow, so it never ends a Job early. Pod disruptions
  (eviction, preemption) do not count as failures (``podFailurePolicy``).
- A scheduled service's runs are the Jobs of a CronJob with
  ``concurrencyPolicy: Forbid`` (a run never overlaps the previous one) and
  ``startingDeadlineSeconds: 300``.
- A persistent service is a Deployment of one pod (strategy ``Recreate``: two
  copies never share the output folder), plus a ClusterIP Service when it has
  a port: reachable inside the cluster only. Only when its launch asked for
  it (``spec.expose``) *and* the operator's exposure policy is on
  (``DTPOC_OPERATOR_EXPOSE_SERVICES``) does it also get an Ingress on path
  ``/<service-id>``, behind the gateway's token check (:func:`ingress`).
- Replica environment: ``DTPOC_SERVICE_ID``, ``RUN_ID`` (pod name),
  ``REPLICA_INDEX`` and ``JOB_COMPLETION_INDEX`` (the completion index),
  ``DTPOC_ATTEMPT`` (ondemand and scheduled: 1, one more per retry),
  ``DTPOC_RUN`` (scheduled: the run's Job name), ``OUTPUT_FOLDER=/output``,
  ``INPUT_FOLDER=/input``, ``INPUT_<NAME>=/input/<name>`` per input file,
  then the spec's env (which cannot override the platform's names).
- ``/output`` is the shared output PVC with ``subPathExpr``
  ``$(DTPOC_SERVICE_ID)/$(JOB_COMPLETION_INDEX)/$(RUN_ID)`` (scheduled:
  ``$(DTPOC_SERVICE_ID)/$(DTPOC_RUN)/$(JOB_COMPLETION_INDEX)/$(RUN_ID)``; the
  pod name keeps a retry's files apart from the failed attempt's, see
  :mod:`dtpoc_operator.layout`; persistent: ``<id>/0``); ``/input`` an
  emptyDir filled by the init container ``fetch-inputs`` (the operator's
  image, ``dtpoc-fetch-inputs``), read-only for the analytics container.
  The init container alone carries a fetch token (``DTPOC_FETCH_TOKEN``)
  reading exactly the spec's input files; the analytics container has no
  credential for any dtpoc service.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from dtpoc_common import analytics
from dtpoc_common.vocabulary import JobType
from dtpoc_operator import fetch_inputs, layout
from dtpoc_operator.fetch_tokens import FetchTokens
from dtpoc_operator.model import AnalyticsResource

Obj = dict[str, Any]

SPEC_HASH_ANNOTATION = "dtpoc.eng.cam.ac.uk/spec-hash"
#: The full service id on every child and pod (a label value is limited to 63
#: characters; this annotation is how a pod event finds its service).
SERVICE_ID_ANNOTATION = "dtpoc.eng.cam.ac.uk/service-id"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
#: ingress-nginx's external authentication of an exposed service's Ingress.
AUTH_URL_ANNOTATION = "nginx.ingress.kubernetes.io/auth-url"
AUTH_METHOD_ANNOTATION = "nginx.ingress.kubernetes.io/auth-method"
AUTH_RESPONSE_HEADERS_ANNOTATION = "nginx.ingress.kubernetes.io/auth-response-headers"
_AUTH_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/auth-"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
MAIN_CONTAINER = "analytics"
INIT_CONTAINER = "fetch-inputs"
OUTPUT_VOLUME = "output"
INPUT_VOLUME = "input"
OUTPUT_MOUNT = "/output"
INPUT_MOUNT = "/input"
CRONJOB_STARTING_DEADLINE_SECONDS = 300
#: The attempt of the replica a pod runs (1, then one more per retry).
ATTEMPT_ENV = "DTPOC_ATTEMPT"
#: On a retry Job: the replica index and attempt it runs.
REPLICA_INDEX_ANNOTATION = "dtpoc.eng.cam.ac.uk/replica-index"
ATTEMPT_ANNOTATION = "dtpoc.eng.cam.ac.uk/attempt"


@dataclass(frozen=True)
class ChildSettings:
    """Operator settings that shape children."""

    init_image: str
    output_pvc: str
    files_address: str
    ingress_class: str = ""
    ingress_host: str = ""
    #: Whether persistent services with a port that ask for it (``spec.expose``)
    #: get an Ingress (exposure policy).
    expose: bool = False
    #: The gateway's token check every exposed request passes first.
    auth_url: str = ""
    #: TLS Secret of the Ingresses; empty: no TLS section.
    ingress_tls_secret: str = ""
    #: Mints the init container's fetch token; None: it fetches without one.
    fetch_tokens: FetchTokens | None = None


def labels(service_id: str) -> dict[str, str]:
    return {
        analytics.LABEL_MANAGED_BY: analytics.MANAGED_BY,
        analytics.LABEL_SERVICE_ID: layout.label_value(service_id),
    }


def selector(service_id: str) -> str:
    """Label selector of every child and pod of a service."""
    return ",".join(f"{k}={v}" for k, v in labels(service_id).items())


def owner_reference(resource: AnalyticsResource) -> Obj:
    return {
        "apiVersion": analytics.API_VERSION,
        "kind": analytics.KIND,
        "name": resource.key.name,
        "uid": resource.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def spec_hash(body: Obj) -> str:
    """Hash of a child's desired ``spec`` (the annotation compared on every reconcile).

    An Ingress's external-auth annotations are behaviour too: they count in its hash.
    """
    content: Any = body.get("spec", {})
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    auth = {k: v for k, v in annotations.items() if k.startswith(_AUTH_ANNOTATION_PREFIX)}
    if auth:
        content = {"spec": content, "annotations": auth}
    payload = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _metadata(resource: AnalyticsResource) -> Obj:
    return {
        "name": layout.child_name(resource.key.name),
        "namespace": resource.key.namespace,
        "labels": labels(resource.key.name),
        "annotations": {SERVICE_ID_ANNOTATION: resource.key.name},
        "ownerReferences": [owner_reference(resource)],
    }


def _finish(body: Obj) -> Obj:
    body["metadata"]["annotations"][SPEC_HASH_ANNOTATION] = spec_hash(body)
    return body


def _field_env(name: str, path: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def replica_env(
    resource: AnalyticsResource,
    *,
    kind: str,
    index: int | None = None,
    attempt: int = 1,
    run: str = "",
) -> list[Obj]:
    """The analytics container's environment (see module docs); ``index``: the
    replica a retry Job runs (its only completion index is 0, so the index is a value);
    ``run``: the scheduled run it retries (its Job's own name is not the run's)."""
    spec = resource.spec
    env: list[Obj] = [{"name": "DTPOC_SERVICE_ID", "value": resource.key.name}]
    env.append(_field_env("RUN_ID", "metadata.name"))
    if kind == JobType.PERSISTENT:
        env.append({"name": "REPLICA_INDEX", "value": "0"})
    elif index is not None:
        # The Job controller leaves a JOB_COMPLETION_INDEX the template sets alone.
        env.append({"name": "JOB_COMPLETION_INDEX", "value": str(index)})
        env.append({"name": "REPLICA_INDEX", "value": str(index)})
    else:
        index_path = f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
        env.append(_field_env("JOB_COMPLETION_INDEX", index_path))
        env.append(_field_env("REPLICA_INDEX", index_path))
    if kind != JobType.PERSISTENT:
        env.append({"name": ATTEMPT_ENV, "value": str(attempt)})
    if kind == JobType.SCHEDULED and run:
        env.append({"name": "DTPOC_RUN", "value": run})
    elif kind == JobType.SCHEDULED:
        env.append(_field_env("DTPOC_RUN", f"metadata.labels['{JOB_NAME_LABEL}']"))
    env.append({"name": "OUTPUT_FOLDER", "value": OUTPUT_MOUNT})
    env.append({"name": "INPUT_FOLDER", "value": INPUT_MOUNT})
    user = {k: v for k, v in spec.env.items() if k not in layout.RESERVED_ENV}
    for name, path in layout.input_env(dict(spec.input_files), input_folder=INPUT_MOUNT).items():
        if name not in user:
            env.append({"name": name, "value": path})
    env.extend({"name": k, "value": v} for k, v in sorted(user.items()))
    return env


def _output_mount(resource: AnalyticsResource, kind: str) -> Obj:
    mount: Obj = {"name": OUTPUT_VOLUME, "mountPath": OUTPUT_MOUNT}
    # Each attempt (pod) of an index writes below the index's folder, in a
    # folder named by the pod (RUN_ID): a retry never mixes with a failed try.
    if kind == JobType.ONDEMAND:
        mount["subPathExpr"] = "$(DTPOC_SERVICE_ID)/$(JOB_COMPLETION_INDEX)/$(RUN_ID)"
    elif kind == JobType.SCHEDULED:
        mount["subPathExpr"] = "$(DTPOC_SERVICE_ID)/$(DTPOC_RUN)/$(JOB_COMPLETION_INDEX)/$(RUN_ID)"
    else:
        mount["subPath"] = f"{resource.key.name}/0"
    return mount


def pod_template(resource: AnalyticsResource, settings: ChildSettings, *, kind: str) -> Obj:
    """The pod every replica of ``resource`` runs: the analytics container, and the
    inputs' fetch container first when the spec names input files."""
    pod_spec: Obj = {
        "restartPolicy": "Always" if kind == JobType.PERSISTENT else "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_main_container(resource, kind=kind)],
        "volumes": [
            {"name": OUTPUT_VOLUME, "persistentVolumeClaim": {"claimName": settings.output_pvc}},
            {"name": INPUT_VOLUME, "emptyDir": {}},
        ],
    }
    if resource.spec.input_files:
        pod_spec["initContainers"] = [_fetch_container(resource, settings)]
    return {
        "metadata": {
            "labels": labels(resource.key.name),
            "annotations": {SERVICE_ID_ANNOTATION: resource.key.name},
        },
        "spec": pod_spec,
    }


def _main_container(resource: AnalyticsResource, *, kind: str) -> Obj:
    """The analytics container: the spec's image, command, resources and port."""
    spec = resource.spec
    container: Obj = {
        "name": MAIN_CONTAINER,
        "image": spec.image_ref,
        "env": replica_env(resource, kind=kind),
        "volumeMounts": [
            _output_mount(resource, kind),
            {"name": INPUT_VOLUME, "mountPath": INPUT_MOUNT, "readOnly": True},
        ],
        # A failed container's last log lines become its termination message,
        # which the operator shows as the replica's message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # What every image tolerates; the user an image runs as is its own
        # (analytics images may need root), so runAsNonRoot is not forced.
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    resources: Obj = {}
    if spec.requests:
        resources["requests"] = dict(spec.requests)
    if spec.limits:
        resources["limits"] = dict(spec.limits)
    if resources:
        container["resources"] = resources
    if kind == JobType.PERSISTENT and spec.port is not None:
        container["ports"] = [{"name": "http", "containerPort": spec.port}]
    return container


def _fetch_container(resource: AnalyticsResource, settings: ChildSettings) -> Obj:
    """The init container that fetches the input files into the inputs volume."""
    return {
        "name": INIT_CONTAINER,
        "image": settings.init_image,
        "command": ["dtpoc-fetch-inputs"],
        "env": _fetch_env(resource, settings),
        "volumeMounts": [{"name": INPUT_VOLUME, "mountPath": INPUT_MOUNT}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        },
    }


def _fetch_env(resource: AnalyticsResource, settings: ChildSettings) -> list[Obj]:
    """The init container's environment; its fetch token reads only the spec's inputs."""
    inputs = dict(resource.spec.input_files)
    env: list[Obj] = [
        {"name": fetch_inputs.ENV_ADDRESS, "value": settings.files_address},
        {"name": fetch_inputs.ENV_INPUTS, "value": fetch_inputs.inputs_json(inputs)},
        {"name": fetch_inputs.ENV_INPUT_DIR, "value": INPUT_MOUNT},
    ]
    if settings.fetch_tokens is not None:
        token = settings.fetch_tokens.for_template(resource.service_id, inputs)
        env.append({"name": fetch_inputs.ENV_TOKEN, "value": token})
    return env


def job_spec(resource: AnalyticsResource, settings: ChildSettings, *, kind: str) -> Obj:
    spec = resource.spec
    body: Obj = {
        "completionMode": "Indexed",
        "completions": spec.reps,
        "parallelism": spec.parallelism,
        "backoffLimitPerIndex": spec.backoff_limit_per_index,
        "backoffLimit": spec.reps * (spec.backoff_limit_per_index + 1),
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                }
            ]
        },
        "template": pod_template(resource, settings, kind=kind),
    }
    if spec.active_deadline_seconds is not None:
        body["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.ttl_seconds_after_finished is not None:
        body["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return body


def retry_job(
    resource: AnalyticsResource,
    settings: ChildSettings,
    *,
    index: int,
    attempt: int,
    run: str = "",
) -> Obj:
    """The Job of one retried replica: attempt ``attempt`` of index ``index``, alone.

    An Indexed Job cannot be told to run only some of its indexes, so each
    retried replica gets a Job of its own (one completion, the spec's
    ``backoffLimitPerIndex`` within it) whose pods see the replica's index as
    ``REPLICA_INDEX``/``JOB_COMPLETION_INDEX`` and so write to that index's folder;
    ``run``: the scheduled run retried, whose folder (``DTPOC_RUN``) it writes to.
    """
    kind = JobType.SCHEDULED if run else JobType.ONDEMAND
    body = job_spec(resource, settings, kind=kind)
    limit = resource.spec.backoff_limit_per_index
    body.update(completions=1, parallelism=1, backoffLimit=limit + 1)
    container = body["template"]["spec"]["containers"][0]
    container["env"] = replica_env(resource, kind=kind, index=index, attempt=attempt, run=run)
    metadata = _metadata(resource)
    metadata["name"] = layout.retry_job_name(
        resource.key.name, index=index, attempt=attempt, run=run
    )
    metadata["annotations"].update(
        {REPLICA_INDEX_ANNOTATION: str(index), ATTEMPT_ANNOTATION: str(attempt)}
    )
    return _finish({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": body})


def job(resource: AnalyticsResource, settings: ChildSettings) -> Obj:
    """The Indexed Job of an ondemand service."""
    return _finish(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _metadata(resource),
            "spec": job_spec(resource, settings, kind=JobType.ONDEMAND),
        }
    )


def cronjob(resource: AnalyticsResource, settings: ChildSettings) -> Obj:
    """The CronJob of a scheduled service; each run is an Indexed Job."""
    spec = resource.spec
    return _finish(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _metadata(resource),
            "spec": {
                "schedule": spec.schedule,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": CRONJOB_STARTING_DEADLINE_SECONDS,
                "successfulJobsHistoryLimit": spec.successful_jobs_history_limit,
                "failedJobsHistoryLimit": spec.failed_jobs_history_limit,
                "suspend": spec.suspend,
                "jobTemplate": {
                    "metadata": {
                        "labels": labels(resource.key.name),
                        "annotations": {SERVICE_ID_ANNOTATION: resource.key.name},
                    },
                    "spec": job_spec(resource, settings, kind=JobType.SCHEDULED),
                },
            },
        }
    )


def deployment(resource: AnalyticsResource, settings: ChildSettings) -> Obj:
    """The one-pod Deployment of a persistent service."""
    return _finish(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(resource),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels(resource.key.name)},
                "template": pod_template(resource, settings, kind=JobType.PERSISTENT),
            },
        }
    )


def service(resource: AnalyticsResource) -> Obj:
    """ClusterIP Service in front of a persistent service with a port."""
    port = resource.spec.port
    return _finish(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(resource),
            "spec": {
                "type": "ClusterIP",
                "selector": labels(resource.key.name),
                "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
            },
        }
    )


def ingress(resource: AnalyticsResource, settings: ChildSettings) -> Obj:
    """Ingress routing ``/<service-id>`` to the Service, behind the gateway's token check.

    ingress-nginx first sends each request's headers to ``settings.auth_url`` (the
    gateway's ``GET /auth/check``) and forwards only on a 2xx, so an exposed
    service takes the same bearer tokens as the API. The forwarded request's
    ``Authorization`` is copied from the check's answer, which has none: nginx
    then drops the header, and a service never sees its callers' API token.
    """
    rule: Obj = {
        "http": {
            "paths": [
                {
                    "path": f"/{resource.key.name}",
                    "pathType": "Prefix",
                    "backend": {
                        "service": {
                            "name": layout.child_name(resource.key.name),
                            "port": {"number": resource.spec.port},
                        }
                    },
                }
            ]
        }
    }
    if settings.ingress_host:
        rule["host"] = settings.ingress_host
    spec: Obj = {"rules": [rule]}
    if settings.ingress_class:
        spec["ingressClassName"] = settings.ingress_class
    if settings.ingress_tls_secret:
        tls: Obj = {"secretName": settings.ingress_tls_secret}
        if settings.ingress_host:
            tls["hosts"] = [settings.ingress_host]
        spec["tls"] = [tls]
    metadata = _metadata(resource)
    metadata["annotations"].update(
        {
            AUTH_URL_ANNOTATION: settings.auth_url,
            AUTH_METHOD_ANNOTATION: "GET",
            AUTH_RESPONSE_HEADERS_ANNOTATION: "Authorization",
        }
    )
    return _finish(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": metadata,
            "spec": spec,
        }
    )


def children(resource: AnalyticsResource, settings: ChildSettings) -> list[Obj]:
    """Every child the spec asks for, workload first."""
    kind = resource.spec.job_type
    if kind == JobType.ONDEMAND:
        return [job(resource, settings)]
    if kind == JobType.SCHEDULED:
        return [cronjob(resource, settings)]
    result = [deployment(resource, settings)]
    if resource.spec.port is not None:
        result.append(service(resource))
        if resource.spec.expose and settings.expose and settings.auth_url:
            result.append(ingress(resource, settings))
    return result
