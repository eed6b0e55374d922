"""The local runtime's cgroups: one per process replica, and the containers' memory groups.

Why a cgroup: a process group or a session is no fence (``setsid``, a double
fork leave both), but no process leaves a cgroup it was born in unless root
moves it. So each process replica is started inside a cgroup of its own,
``/dtpoc/<name>``, and "every process of the replica" is what the cgroup
holds: terminate signals them all, the end of the replica (its command
exiting) and a forced stop kill them all, and the attempt is finished only
once none is left.

Which hierarchy (:func:`create`): on a cgroup v2 host ``/sys/fs/cgroup/dtpoc/<name>``,
killed with ``cgroup.kill``; on a v1 or hybrid host the ``freezer`` hierarchy
(frozen, killed, thawed: no fork escapes the kill), else ``pids``
(``pids.max`` 0 stops forks, then every member is killed). None of them
writable (not root, a read-only ``/sys/fs/cgroup``): None, and the supervisor
falls back to a subreaper (:mod:`.reaper`).

The memory groups of containers (:mod:`.container_run`) live under the same
``/dtpoc`` parent; :func:`remove_cgroups` removes those.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from dtpoc_common import logging as dlog

log = dlog.get_logger(__name__)

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
CGROUP_PARENT: Final = "dtpoc"
CGROUP_REMOVE_SECONDS: Final = 10.0
#: Seconds a kill waits for the members to be gone (SIGKILL is not refused: a
#: member still there is a zombie whose parent has not reaped it yet).
KILL_WAIT_SECONDS: Final = 10.0
_FREEZE_WAIT_SECONDS: Final = 5.0

Kind = Literal["v2", "freezer", "pids"]


@dataclass(frozen=True)
class ProcessCgroup:
    """The cgroup holding every process of one replica."""

    kind: Kind
    path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessCgroup | None:
        kind, path = data.get("kind"), data.get("path")
        if kind not in ("v2", "freezer", "pids") or not path:
            return None
        return cls(kind=kind, path=Path(str(path)))

    # --- membership ----------------------------------------------------------------------

    def pids(self) -> list[int]:
        """Every member, zombies included; [] once the cgroup is gone."""
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(line) for line in text.split()]

    def live_pids(self) -> list[int]:
        """Members that still run (a zombie holds no file and runs no code)."""
        return [pid for pid in self.pids() if not _is_zombie(pid)]

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling process inside the cgroup for the block (children started in it
        are born members), then back where it was: the supervisor itself stays out, so
        a kill of the cgroup never kills the one that records the outcome."""
        home = _own_cgroup(self.path.parent.parent, unified=self.kind == "v2")
        (self.path / "cgroup.procs").write_text(str(os.getpid()))
        try:
            yield
        finally:
            (home / "cgroup.procs").write_text(str(os.getpid()))

    # --- ending --------------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def kill(self) -> None:
        """SIGKILL every member, without a window for a fork to escape."""
        if self.kind == "v2" and (self.path / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (self.path / "cgroup.kill").write_text("1")
            return
        if self.kind == "freezer":
            self._kill_frozen()
            return
        if self.kind == "pids":
            with contextlib.suppress(OSError):
                (self.path / "pids.max").write_text("0")
        for _round in range(100):
            members = self.live_pids()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _kill_frozen(self) -> None:
        state = self.path / "freezer.state"
        try:
            state.write_text("FROZEN")
            deadline = time.monotonic() + _FREEZE_WAIT_SECONDS
            while state.read_text().strip() != "FROZEN" and time.monotonic() < deadline:
                time.sleep(0.01)
            self.signal(signal.SIGKILL)
        except OSError:
            self.signal(signal.SIGKILL)
        finally:
            with contextlib.suppress(OSError):
                state.write_text("THAWED")

    def wait_empty(self, *, timeout: float, reap: bool = False) -> bool:
        """Until no member runs (``reap``: reaping the caller's own dead children
        meanwhile, as the subreaper supervisor must); False at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            if reap:
                reap_children()
            if not self.live_pids():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def remove(self, *, wait_seconds: float = 2.0) -> bool:
        """rmdir once empty (members reaped); True when gone."""
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)

    def end(self, *, reap: bool = False) -> bool:
        """Kill, wait until nothing of it runs, remove; True when nothing is left."""
        self.kill()
        empty = self.wait_empty(timeout=KILL_WAIT_SECONDS, reap=reap)
        if not empty:
            self.kill()
            empty = self.wait_empty(timeout=KILL_WAIT_SECONDS, reap=reap)
        if not empty:
            log.warning("replica processes left", cgroup=str(self.path), pids=self.live_pids())
            return False
        if not self.remove():
            log.info("cgroup not removed yet (zombies)", cgroup=str(self.path))
        return True


def create(name: str, *, root: Path = CGROUP_ROOT) -> ProcessCgroup | None:
    """A new empty cgroup ``/dtpoc/<name>`` in the first hierarchy that lets us
    (see module docs), or None when none does."""
    candidates: list[tuple[Kind, Path]] = (
        [("v2", root)] if (root / "cgroup.controllers").exists() else []
    )
    candidates += [("freezer", root / "freezer"), ("pids", root / "pids")]
    for kind, hierarchy in candidates:
        if not (hierarchy / "cgroup.procs").exists():
            continue
        path = hierarchy / CGROUP_PARENT / name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            log.info("no cgroup here", hierarchy=str(hierarchy), error=error.strerror)
            continue
        cgroup = ProcessCgroup(kind=kind, path=path)
        try:
            with cgroup.entered():  # the move a start makes, tried once
                pass
        except OSError as error:
            log.info("cannot move into a cgroup here", cgroup=str(path), error=error.strerror)
            with contextlib.suppress(OSError):
                path.rmdir()
            continue
        return cgroup
    return None


def dead_children() -> Iterator[tuple[int, int]]:
    """Reap the caller's dead children (never blocks): each one's pid and wait status."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def reap_children() -> None:
    """Reap every dead child of the caller (never blocks)."""
    for _pid, _status in dead_children():
        pass


def _own_cgroup(hierarchy: Path, *, unified: bool) -> Path:
    """The caller's cgroup folder in ``hierarchy`` (from ``/proc/self/cgroup``)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _number, controllers, relative = line.split(":", 2)
        if (controllers == "") if unified else hierarchy.name in controllers.split(","):
            return hierarchy / relative.lstrip("/")
    return hierarchy


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone
    return stat[stat.rfind(")") + 2 :][:1] in ("Z", "X")


def remove_cgroups(name: str, *, wait_seconds: float = CGROUP_REMOVE_SECONDS) -> None:
    """Remove a container's cgroup ``/dtpoc/<name>`` in every hierarchy the engine
    created it in (best effort: the engine's monitor may leave its own sub-group a
    moment after the container)."""
    if not (CGROUP_ROOT / "memory" / CGROUP_PARENT / name).is_dir():
        return
    deadline = time.monotonic() + wait_seconds
    folders = [h / CGROUP_PARENT / name for h in CGROUP_ROOT.iterdir()]
    while True:
        left = [f for f in folders if f.is_dir() and not _rmdir_tree(f)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        log.warning("cgroups left behind", cgroups=[str(f) for f in left])


def _rmdir_tree(folder: Path) -> bool:
    for child in folder.iterdir():
        if child.is_dir():
            _rmdir_tree(child)
    try:
        folder.rmdir()
    except OSError:
        return False
    return True
