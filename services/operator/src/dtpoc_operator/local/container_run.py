"""One replica's container, as the supervisor (:mod:`.replica`) runs it: the kubelet's part.

Order: the image must be in the engine's store (else ``ErrImageNeverPull``,
the kubelet's reason for a missing image under ``imagePullPolicy: Never``);
the output folder is made writable for the image's user and removable by the
operator; a stale container of the same name is removed; ``<engine> run`` runs
attached, so its output is the replica's log; then the container's state is
read and the container removed. How it ended is recorded with the Kubernetes
words: ``Error`` or ``OOMKilled`` with the exit code, ``StartError`` (exit code
128, as containerd reports it) when the entry point could not be started.

Output folder modes: the folder is ``0777`` (the image's user is unknown and
usually not the operator's), and carries a default POSIX ACL granting the
operator's uid ``rwx``, inherited by everything the container creates below
it, so an operator running as another uid than the container can still read,
upload and remove every file and folder the container wrote. Where the file
system has no ACLs only root can remove what a container left in sub-folders.

OOM on cgroup v1: podman 4.3 on a hybrid cgroup host reports ``OOMKilled
false`` for a container killed at its memory limit (conmon looks for the v2
``memory.events``). So on cgroup v1 with the cgroupfs manager the runner puts
the container under a memory cgroup of its own, ``/dtpoc/<container name>``,
that carries the memory limit (no ``--memory`` then), and registers an eventfd
on its ``memory.oom_control`` (the v1 OOM notification, as docker and conmon
do on v1). The cgroup outlives the container until the runner removes it, so
the notification is read without racing the engine's cleanup. Elsewhere
(cgroup v2, docker) the engine's own ``OOMKilled`` is used.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from dtpoc_common import logging as dlog
from dtpoc_operator.local.cgroups import CGROUP_PARENT as CGROUP_PARENT
from dtpoc_operator.local.cgroups import CGROUP_ROOT as CGROUP_ROOT
from dtpoc_operator.local.cgroups import remove_cgroups as remove_cgroups
from dtpoc_operator.local.containers import ContainerJob, Engine

log = dlog.get_logger(__name__)

START_ERROR_EXIT: Final = 128

# POSIX ACL extended-attribute format (linux/posix_acl_xattr.h).
_ACL_VERSION: Final = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_ACL_UNDEFINED_ID: Final = 0xFFFFFFFF


def never_pull_message(image: str) -> str:
    """The kubelet's message for ``ErrImageNeverPull``, plus why there is no pull here."""
    return (
        f'Container image "{image}" is not present with pull policy of Never '
        "(the local runtime never pulls: build or load the image into the engine first)"
    )


def _default_acl(uid: int) -> bytes:
    entries = [
        (_ACL_USER_OBJ, 7, _ACL_UNDEFINED_ID),
        (_ACL_USER, 7, uid),
        (_ACL_GROUP_OBJ, 5, _ACL_UNDEFINED_ID),
        (_ACL_MASK, 7, _ACL_UNDEFINED_ID),
        (_ACL_OTHER, 5, _ACL_UNDEFINED_ID),
    ]
    return struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)


def prepare_output(folder: Path, *, collector_uid: int) -> None:
    """Make ``folder`` writable for any container user and removable by ``collector_uid``
    (see module docs)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o777)  # noqa: S103 - the image's user is not known (module docs)
    if collector_uid == 0:
        return  # root removes anything
    try:
        os.setxattr(folder, "system.posix_acl_default", _default_acl(collector_uid))
    except OSError as error:
        log.warning(
            "no default ACL on the output folder: the operator may not remove what the "
            "container writes in sub-folders",
            folder=str(folder),
            error=error.strerror,
        )


def prepare_input(folder: Path) -> None:
    """Inputs readable by any container user (read-only mount)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)  # noqa: S103 - inputs are read by the image's user
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o644)


class OomWatch:
    """A memory cgroup of the runner's own with the limit and an OOM eventfd (v1)."""

    def __init__(self, name: str, *, limit_bytes: int) -> None:
        self.parent = f"/{CGROUP_PARENT}/{name}"
        self._memory = CGROUP_ROOT / "memory" / CGROUP_PARENT / name
        self._memory.mkdir(parents=True, exist_ok=True)
        (self._memory / "memory.limit_in_bytes").write_text(str(limit_bytes))
        memsw = self._memory / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            with contextlib.suppress(OSError):
                memsw.write_text(str(limit_bytes))  # no swap beyond the limit, as in a pod
        self._event = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._control = os.open(self._memory / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        (self._memory / "cgroup.event_control").write_text(f"{self._event} {self._control}")

    def oom_happened(self) -> bool:
        try:
            return os.eventfd_read(self._event) > 0
        except BlockingIOError:
            return False

    def remove(self) -> None:
        os.close(self._control)
        os.close(self._event)
        remove_cgroups(self._memory.name)


class ContainerReplica:
    """Runs one :class:`ContainerJob` attached and reports how it ended."""

    def __init__(self, engine: Engine, job: ContainerJob, *, grace_seconds: float) -> None:
        self.engine = engine
        self.job = job
        self.grace_seconds = grace_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self._stop_requested = threading.Event()

    def request_stop(self) -> None:
        """Terminate (safe in a signal handler): the stopper thread calls the engine's stop."""
        self._stop_requested.set()

    def _stopper(self) -> None:
        """Once a stop is requested, the engine's stop (stop signal, SIGKILL after the
        grace period), repeated while the container does not exist yet."""
        self._stop_requested.wait()
        while self.process is not None and self.process.poll() is None:
            self.engine.stop(self.job.name, grace_seconds=self.grace_seconds)
            time.sleep(0.2)

    def run(
        self, *, log_file: Any, on_started: Callable[[int], None], workdir: Path
    ) -> dict[str, Any]:
        """Start, wait, inspect, remove; the exit record's fields.

        The engine's client runs in ``workdir`` (the attempt's folder): podman's
        conmon writes an empty ``oom`` file into its working directory when the
        container's cgroup reports an OOM kill, which would otherwise land in
        whatever folder the operator was started from.
        """
        job, engine = self.job, self.engine
        if not engine.image_present(job.image):
            return {
                "exit_code": None,
                "reason": "ErrImageNeverPull",
                "message": never_pull_message(job.image),
            }
        engine.remove(job.name)  # a container left by a lost supervisor of this attempt
        watch = (
            OomWatch(job.name, limit_bytes=job.memory_bytes)
            if engine.memory_cgroup_v1 and job.memory_bytes is not None
            else None
        )
        try:
            self.process = subprocess.Popen(
                engine.run_argv(job, cgroup_parent=watch.parent if watch else ""),
                env=engine.cli_env(job.env),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Its own group: the supervisor's SIGTERM must not end the client
                # (the stopper stops the container with the grace period instead).
                process_group=0,
            )
            on_started(self.process.pid)
            threading.Thread(target=self._stopper, daemon=True).start()
            returncode = _wait(self.process)
            state = engine.inspect_state(job.name) or {}
            if state.get("Running"):  # the client ended first: wait for the container
                engine.wait(job.name)
                state = engine.inspect_state(job.name) or {}
            oom = bool(state.get("OOMKilled")) or (watch is not None and watch.oom_happened())
            engine.remove(job.name)
        finally:
            if watch is not None:
                watch.remove()
        return self._outcome(state, returncode=returncode, oom=oom)

    def _outcome(self, state: dict[str, Any], *, returncode: int, oom: bool) -> dict[str, Any]:
        started = str(state.get("StartedAt") or "")
        never_started = not state or started.startswith("0001-01-01")
        stopped = self._stop_requested.is_set()
        if never_started and not stopped:
            message = str(state.get("Error") or "") or (
                f"{self.engine.name} run exited {returncode} before the container started"
            )
            return {"exit_code": START_ERROR_EXIT, "reason": "StartError", "message": message}
        code = int(state.get("ExitCode", returncode)) if state else returncode
        record: dict[str, Any] = {"exit_code": code}
        if code == 0:
            return record
        if oom:
            record.update(reason="OOMKilled", message=_oom_message(self.job.memory_bytes))
        else:
            record["reason"] = "Error"
        if stopped:
            record.update(signal=15, message="stopped when the service was terminated")
        return record


def _wait(process: subprocess.Popen[bytes]) -> int:
    while True:
        try:
            return process.wait()
        except InterruptedError:
            continue


def _oom_message(limit: int | None) -> str:
    return (
        f"the container was killed for exceeding its memory limit ({limit} bytes)"
        if limit
        else "the container was killed: out of memory"
    )
