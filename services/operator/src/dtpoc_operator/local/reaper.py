"""Every process of one process replica: found, signalled, killed and waited for.

The supervisor (:mod:`.replica`) is a child subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``): a descendant whose parent exits (a
double fork, ``setsid cmd &``) is re-parented to the supervisor, not to init,
so while the supervisor lives every process the replica started is in its
process tree, whatever session or group it moved to.

Where the host lets the supervisor create a cgroup (:mod:`.cgroups`) the
replica is born in one, and the cgroup says which processes are the
replica's; otherwise (not root, no writable hierarchy, or
``DTPOC_OPERATOR_LOCAL_PROCESS_CGROUPS=off``) the supervisor's process tree
does (:class:`ProcessTree`), found through ``/proc``. Both answer the same
calls (:class:`Members`): terminate signals every member, the end of the
replica's command and a forced stop kill every member, and the attempt only
counts as finished once none runs.

Limit of the tree: it is the supervisor's. Processes left after the
supervisor itself was SIGKILLed by someone else are re-parented to init and
cannot be found again; a cgroup keeps them (the operator kills what a lost
supervisor's cgroup still holds).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from dtpoc_common import logging as dlog
from dtpoc_operator.local import cgroups

log = dlog.get_logger(__name__)

#: ``auto`` (a cgroup per process replica where the host allows) or ``off``
#: (always the subreaper's process tree). Read by the supervisor from the
#: environment it inherits from the operator.
PROCESS_CGROUPS_SETTING: Final = "DTPOC_OPERATOR_LOCAL_PROCESS_CGROUPS"
PR_SET_CHILD_SUBREAPER: Final = 36
_STOP_ROUNDS: Final = 200


class Members(Protocol):
    """The processes of one replica (a cgroup's or a process tree's)."""

    def live_pids(self) -> list[int]: ...
    def signal(self, signum: int) -> None: ...
    def end(self, *, reap: bool = False) -> bool: ...


def become_subreaper() -> bool:
    """Make the caller a child subreaper (module docs); False where the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("not a subreaper", errno=ctypes.get_errno())
        return False
    return True


def cgroups_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(PROCESS_CGROUPS_SETTING, "auto").strip().lower() != "off"


def members_for(name: str, *, supervisor_pid: int) -> Members:
    """A fresh cgroup named ``name`` where allowed, else the supervisor's tree."""
    if cgroups_enabled():
        cgroup = cgroups.create(name)
        if cgroup is not None:
            return cgroup
    return ProcessTree(supervisor_pid)


def record_of(members: Members) -> dict[str, Any]:
    """What ``pid.json`` says of the members (read back by :func:`members_from`)."""
    if isinstance(members, cgroups.ProcessCgroup):
        return {"cgroup": members.to_dict()}
    return {"tree": True}


def members_from(record: Mapping[str, Any]) -> Members | None:
    """The members a supervisor recorded in ``pid.json`` (:func:`record_of`)."""
    if isinstance(record.get("cgroup"), Mapping):
        return cgroups.ProcessCgroup.from_dict(record["cgroup"])
    if record.get("tree") and record.get("pid"):
        return ProcessTree(int(record["pid"]))
    return None


def end_members(record: Mapping[str, Any] | None) -> bool:
    """Kill every process of a replica whose supervisor still runs (a forced stop:
    before the supervisor is killed, while its tree still holds them) and wait for
    them; True when nothing is left (also when the record names none)."""
    members = members_from(record or {})
    return True if members is None else members.end()


def end_leftovers(record: Mapping[str, Any] | None) -> None:
    """Kill what the cgroup of a replica whose supervisor is gone still holds
    (a tree died with its supervisor: its pid may be another process's now)."""
    members = members_from(record or {})
    if not isinstance(members, cgroups.ProcessCgroup) or not members.path.is_dir():
        return
    if members.live_pids():
        log.info("killing what a lost supervisor left", cgroup=str(members.path))
        members.end()
    else:
        members.remove(wait_seconds=0)  # zombies may hold it a while yet


def wait_main(pid: int) -> int:
    """Wait for child ``pid``, reaping any other child (orphans re-parented to the
    subreaper) meanwhile; its return code as :class:`subprocess.Popen` gives it."""
    while True:
        found, status = os.waitpid(-1, 0)
        if found == pid:
            return os.waitstatus_to_exitcode(status)


class ProcessTree:
    """The descendants of a (subreaper) process, found through ``/proc``."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid

    def live_pids(self) -> list[int]:
        return [pid for pid in descendants(self.root_pid) if _state(pid) not in ("Z", "X", "")]

    def signal(self, signum: int) -> None:
        for pid in self.live_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def kill(self) -> set[int]:
        """Stop every member (until no running one is left, so a fork cannot slip
        through), then SIGKILL them all; the pids killed."""
        stopped: set[int] = set()
        for _round in range(_STOP_ROUNDS):
            running = [p for p in self.live_pids() if p not in stopped or _state(p) != "T"]
            if not running:
                break
            for pid in running:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGSTOP)
                stopped.add(pid)
            time.sleep(0.005)
        victims = set(self.live_pids()) | stopped
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return victims

    def end(self, *, reap: bool = False) -> bool:
        """Kill, then wait until none of them runs (``reap``: the caller is the root
        and reaps them); True when nothing is left."""
        victims = self.kill()
        deadline = time.monotonic() + cgroups.KILL_WAIT_SECONDS
        while True:
            if reap:
                cgroups.reap_children()
            left = [p for p in victims if _state(p) not in ("Z", "X", "")] + self.live_pids()
            if not left:
                return True
            if time.monotonic() > deadline:
                log.warning("replica processes left", pids=sorted(set(left)))
                return False
            time.sleep(0.02)


def descendants(root_pid: int) -> list[int]:
    """Every process whose parent chain leads to ``root_pid`` (not ``root_pid``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        parent = _ppid(int(entry.name))
        if parent is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = list(children.get(root_pid, []))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue += children.get(pid, [])
    return found


def _stat_fields(pid: int) -> list[str]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rfind(")") + 2 :].split()


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _state(pid: int) -> str:
    """``R``, ``S``, ``T``, ``Z``... ; empty once the process is gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else ""
