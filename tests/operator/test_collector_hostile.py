"""The collector's scan run as a user who may not read everything (a forked child
that drops to ``nobody``, so this needs root and stays out of the unit tier; the
rest of the hostile folders are in ``tests/unit/operator/test_collector_hostile.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dtpoc_operator import collector as collector_mod


def test_a_file_the_collector_may_not_read_is_reported_and_the_rest_collected() -> None:
    """Permission denied (the operator runs as another user than the image): the
    scan, run here in a child as an unprivileged user, skips and names the file."""
    base = Path(tempfile.mkdtemp(prefix="dtpoc-perm-"))
    try:
        base.chmod(0o755)
        folder = base / "svc" / "0"
        (folder / "locked").mkdir(parents=True)
        for path in (base / "svc", folder):
            path.chmod(0o755)
        (folder / "ok.json").write_text("{}")
        (folder / "ok.json").chmod(0o644)
        (folder / "secret.csv").write_text("no")
        (folder / "secret.csv").chmod(0o600)
        (folder / "locked").chmod(0o700)
        assert _scan_as(NOBODY, folder) == 0
    finally:
        shutil.rmtree(base)


NOBODY = 65534


def _scan_as(uid: int, folder: Path) -> int:
    """The collector's scan in a child running as ``uid``; 0 when it found what it should."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.setgid(uid)
            os.setuid(uid)
            found = collector_mod.scan_folder(folder)
            ok = [f.relpath for f in found.files] == ["ok.json"] and dict(found.skipped) == {
                "locked": "unreadable: Permission denied",
                "secret.csv": "unreadable: Permission denied",
            }
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
