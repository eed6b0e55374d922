"""Names and paths derived from a service id, the same in both runtimes.

Everything here is a pure function of its arguments so that a restarted
operator derives exactly the names it used before: a child workload is found
again by name (never created twice), and a replica's output folder is found
again by path (never lost).

Output layout under the output root (decided here, documented in the README):

- ondemand: ``<service-id>/<replica index>``
- scheduled: ``<service-id>/<run>/<replica index>`` where the run is the Job
  name (Kubernetes) or ``<child name>-<minutes since epoch>`` (local), as the
  CronJob controller names its Jobs
- persistent: ``<service-id>/0``

A retried ondemand or scheduled replica runs again in a new pod (a new
supervised process locally) that must not mix its files with the failed
attempt's. So each attempt writes to a folder of its own below the
replica's, named by its pod name (the ``RUN_ID`` it sees; locally
``<run>-<index>[-<attempt>]``); the replica's status entry names the
attempt that counts (``podName``: the one that succeeded, or the last one of
a replica that failed for good), and only that folder is collected. A
persistent service's pod keeps ``<service-id>/0`` (one pod at a time,
restarted in place).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePath, PurePosixPath
from typing import TypeVar

from dtpoc_common.vocabulary import JobType

P = TypeVar("P", bound=PurePath)

CHILD_PREFIX = "ana-"
#: CronJob names are at most 52 characters (the controller appends 11); Jobs and
#: Deployments use the same limit so that every child of a service shares one name.
MAX_CHILD_NAME = 52

INPUT_ENV_PREFIX = "INPUT_"
#: Environment variables the platform sets in every replica; the spec's env
#: cannot override them (a program would otherwise write where nobody collects).
RESERVED_ENV = frozenset(
    {
        "REPLICA_INDEX",
        "RUN_ID",
        "OUTPUT_FOLDER",
        "INPUT_FOLDER",
        "DTPOC_SERVICE_ID",
        "DTPOC_RUN",
        "DTPOC_ATTEMPT",
        "JOB_COMPLETION_INDEX",
    }
)

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_ENV = re.compile(r"[^A-Z0-9]+")


def child_name(service_id: str) -> str:
    """The name of every child workload of a service (Job, CronJob, Deployment,
    Service, Ingress): ``ana-<service id>``, a DNS-1035 label of at most 52
    characters. Long or unusual ids are shortened with a hash suffix so that
    two services never share a name."""
    cleaned = _NOT_DNS.sub("-", service_id.lower()).strip("-")
    name = f"{CHILD_PREFIX}{cleaned}"
    if len(name) <= MAX_CHILD_NAME and cleaned == service_id:
        return name
    digest = hashlib.sha256(service_id.encode()).hexdigest()[:8]
    keep = MAX_CHILD_NAME - len(CHILD_PREFIX) - len(digest) - 1
    return f"{CHILD_PREFIX}{cleaned[:keep].strip('-')}-{digest}"


def retry_job_name(service_id: str, *, index: int, attempt: int, run: str = "") -> str:
    """The Job of attempt ``attempt`` of replica ``index`` (a retry):
    ``<child name>-<index>-a<attempt>``, or for a scheduled service's run (its Job
    name) ``<run>-<index>-a<attempt>``; at most 63 characters (a label value: the
    pods carry it as their Job's name)."""
    return f"{run or child_name(service_id)}-{index}-a{attempt}"


def output_relpath(*, service_id: str, job_type: str, run: str, index: int) -> PurePosixPath:
    """A replica's output folder relative to the output root (see module docs)."""
    if job_type == JobType.SCHEDULED:
        return PurePosixPath(service_id) / run / str(index)
    return PurePosixPath(service_id) / str(index)


def keeps_attempts_apart(job_type: str) -> bool:
    """True for job types whose replicas are retried in new pods (see module docs)."""
    return job_type in (JobType.ONDEMAND, JobType.SCHEDULED)


def attempt_folder(replica_folder: P, *, job_type: str, attempt: str) -> P:
    """Where attempt ``attempt`` (its pod name) of a replica writes (see module docs)."""
    if not keeps_attempts_apart(job_type):
        return replica_folder
    return replica_folder / attempt


def service_relpath(service_id: str) -> PurePosixPath:
    """The folder holding every output of a service."""
    return PurePosixPath(service_id)


def input_env_name(file_name: str) -> str:
    """``INPUT_<NAME>`` for an input file: the name upper-cased, every run of
    other characters replaced by ``_`` (``input.xlsx`` -> ``INPUT_INPUT_XLSX``)."""
    return INPUT_ENV_PREFIX + _NOT_ENV.sub("_", file_name.upper()).strip("_")


def input_env(input_files: dict[str, str], *, input_folder: str) -> dict[str, str]:
    """``INPUT_<NAME>`` -> path of each input file under ``input_folder``.

    Names that would collide with a reserved variable or with an earlier file
    (in file-name order) get no variable; the file is still in the folder.
    """
    result: dict[str, str] = {}
    for name in sorted(set(input_files.values())):
        variable = input_env_name(name)
        if variable == INPUT_ENV_PREFIX or variable in RESERVED_ENV or variable in result:
            continue
        result[variable] = f"{input_folder.rstrip('/')}/{name}"
    return result


def is_plain_file_name(name: str) -> bool:
    """True for a file name without folders that stays inside its folder."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def label_value(service_id: str) -> str:
    """The ``dtpoc.eng.cam.ac.uk/service-id`` label value: the id itself when it
    is a valid label value (ids are 24-hex ObjectIds), else the child name."""
    if len(service_id) <= 63 and _LABEL_VALUE.match(service_id):
        return service_id
    return child_name(service_id)


def is_safe_service_id(service_id: str) -> bool:
    """True when the id can be a folder name under the output root."""
    return bool(_SAFE_ID.match(service_id)) and ".." not in service_id
