"""Replica logs: the one format the operator writes and the orchestrator reads.

A replica's log is its stdout and stderr, one line per line it printed,
each line starting with the time it arrived: ``<RFC 3339 UTC> <text>``.
That is the format of the kubelet's ``timestamps=true`` pod logs, so both
runtimes store the same thing, and ``since_seconds`` works on a stored log
as on a live one. The API strips the times unless asked for them.

A log is capped (:data:`DEFAULT_MAX_BYTES` per attempt, the operator's
``DTPOC_OPERATOR_LOG_MAX_BYTES``): once it reaches the cap, one marker line
(:func:`truncation_marker`) ends it and the rest is discarded. Stored logs
carry the Files metadata ``kind: log`` (:data:`KIND`), so nothing that
lists a replica's outputs ever takes them for one.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

#: ``kind`` in a stored log's Files metadata (outputs have none).
KIND = "log"
#: Metadata key naming what a stored file is.
KIND_KEY = "kind"
#: The cap of one attempt's log, in bytes, unless the operator is told otherwise.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: Name of the live log file in a local attempt's folder.
LOCAL_LOG_FILE = "log"
MARKER_PREFIX = "[dtpoc] log truncated"


def timestamp(moment: dt.datetime | None = None) -> str:
    """``2026-12-01T15:50:09.123456Z``: the line prefix (UTC, microseconds)."""
    when = (moment or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def truncation_marker(max_bytes: int) -> str:
    """The last line of a log that reached its cap (without its time prefix)."""
    return f"{MARKER_PREFIX}: it reached the cap of {max_bytes} bytes; the rest was discarded"


def split_line(line: str) -> tuple[str, str]:
    """(time prefix, text) of one stored line; ("", line) when it has no prefix."""
    head, sep, rest = line.partition(" ")
    if sep and len(head) >= 20 and head[4] == "-" and head[10] == "T" and head.endswith("Z"):
        return head, rest
    return "", line


def seconds_key(stamp: str) -> str:
    """A prefix comparable as text at second precision (``YYYY-MM-DDTHH:MM:SS``)."""
    return stamp[:19]


#: The Job controller's annotations on a pod of an Indexed Job.
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
#: The replica's attempt in its environment (1, then one more per retry).
ATTEMPT_ENV = "DTPOC_ATTEMPT"


def _main_env(pod: dict[str, Any], name: str) -> str | None:
    """A literal ``value`` of variable ``name`` in the pod's first container, else None."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for variable in containers[0].get("env") or []:
        if variable.get("name") == name and "value" in variable:
            return str(variable["value"])
    return None


def pod_replica_index(pod: dict[str, Any]) -> int | None:
    """The replica a pod runs: its ``REPLICA_INDEX`` value (a retry's Job runs one
    index as completion 0), else its completion index."""
    value = _main_env(pod, "REPLICA_INDEX")
    if value is None:
        value = ((pod.get("metadata") or {}).get("annotations") or {}).get(
            COMPLETION_INDEX_ANNOTATION
        )
    return int(value) if value is not None and str(value).isdigit() else None


def pod_attempts(
    pods: list[dict[str, Any]], *, index: int | None
) -> list[tuple[int, list[dict[str, Any]]]]:
    """(attempt, its pods oldest first) of one replica's pods (all when ``index`` is None).

    The attempt is the replica's ``DTPOC_ATTEMPT`` (1, one more per retry); the
    tries of one attempt under ``backoffLimitPerIndex`` are its several pods,
    and its log is theirs one after the other.
    """
    mine = [p for p in pods if index is None or pod_replica_index(p) == index]
    mine.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
    grouped: dict[int, list[dict[str, Any]]] = {}
    for pod in mine:
        value = _main_env(pod, ATTEMPT_ENV) or "1"
        grouped.setdefault(int(value) if value.isdigit() else 1, []).append(pod)
    return sorted(grouped.items())


def pod_containers(pod: dict[str, Any]) -> list[str]:
    """A pod's containers as they run: init containers (the input fetcher) first."""
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("initContainers") or []]
    return names + [c["name"] for c in spec.get("containers") or []]


def local_replica_dir(state_root: Path, *, service_id: str, run: str, index: int) -> Path:
    """The local runtime's folder of one replica; its attempts are ``0``, ``1``, ..."""
    return state_root / service_id / "runs" / run / str(index)


def local_attempts(
    state_root: Path, *, service_id: str, run: str, index: int
) -> dict[int, list[Path]]:
    """attempt -> the live logs of its tries (oldest first) of a local replica.

    Each try is a folder ``0``, ``1``, ... whose ``spawn.json`` names the
    replica attempt it belongs to (1 when it does not).
    """
    folder = local_replica_dir(state_root, service_id=service_id, run=run, index=index)
    try:
        numbers = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    except OSError:
        return {}
    found: dict[int, list[Path]] = {}
    for number in numbers:
        try_dir = folder / str(number)
        try:
            attempt = int(json.loads((try_dir / "spawn.json").read_text()).get("attempt") or 1)
        except (OSError, ValueError, AttributeError):
            attempt = 1
        found.setdefault(attempt, []).append(try_dir / LOCAL_LOG_FILE)
    return found
