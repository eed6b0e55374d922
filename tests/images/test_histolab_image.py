"""The histolab example image, run as the operator runs a replica's container.

Given the sample workbook in a read-only /input and an empty /output, the
image (under the name the original's clients launch) writes its KPI JSON
and exits 0; a bad input or a bad entry point fails with a message that says
what is wrong, not a stack trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from dtpoc_local import images
from tests.images import _containers

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "histolab" / "sample" / "input.xlsx"
ORIGINAL_NAME = "ghcr.io/cam-digital-hospitals/digital-hosp-des:latest"


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    inputs, outputs = tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    outputs.mkdir()
    outputs.chmod(0o777)  # an emptyDir / output folder the image's uid may write
    return inputs, outputs


def _mounts(inputs: Path, outputs: Path) -> list[str]:
    return ["--volume", f"{inputs}:/input:ro", "--volume", f"{outputs}:/output"]


def test_sample_workbook_gives_kpis_in_output(histolab_image: str, tmp_path: Path) -> None:
    assert histolab_image == ORIGINAL_NAME
    inputs, outputs = _folders(tmp_path)
    shutil.copy(SAMPLE, inputs / "input.xlsx")
    result = _containers.run(
        histolab_image,
        env={"SIM_HOURS": "336", "REPLICA_INDEX": "1", "RUN_ID": "run-1"},
        extra=_mounts(inputs, outputs),
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in outputs.iterdir()] == ["kpis.json"]
    kpis = json.loads((outputs / "kpis.json").read_text())
    counts = kpis["specimens"]
    assert counts["arrived"] > 500, "two weeks of a 130-a-day lab"
    assert counts["arrived"] == counts["completed"] + counts["wip_at_end"]
    assert sum(kpis["throughput"]["per_day"]) == counts["completed"]
    assert len(kpis["throughput"]["per_day"]) == 14
    assert kpis["turnaround_hours"]["overall"]["count"] == counts["completed"]
    urgent = kpis["turnaround_hours"]["by_priority"]["urgent"]["p50"]
    assert urgent < kpis["turnaround_hours"]["by_priority"]["routine"]["p50"]
    assert kpis["replica_index"] == 1
    assert kpis["sim_hours"] == 336
    assert kpis["input"]["sha256"] == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()


def test_missing_workbook_fails_with_a_clear_message(histolab_image: str, tmp_path: Path) -> None:
    inputs, outputs = _folders(tmp_path)
    result = _containers.run(histolab_image, extra=_mounts(inputs, outputs))
    assert result.returncode == 2, result.stderr
    assert "input.xlsx" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(outputs.iterdir()) == []


def test_bad_entry_point_fails_with_a_clear_message(histolab_image: str, tmp_path: Path) -> None:
    inputs, outputs = _folders(tmp_path)
    result = _containers.run(
        histolab_image,
        extra=[*_mounts(inputs, outputs), "--entrypoint", "dtpoc-no-such-model"],
    )
    assert result.returncode != 0
    assert "dtpoc-no-such-model" in result.stderr
    assert "executable file not found" in result.stderr


def _scratch_podman(scratch: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """podman on a store wholly inside ``scratch``, sharing nothing with the host's engine.

    ``--root``/``--runroot`` alone are not enough: libpod's tmp dir (default /run/libpod),
    its network configs and its lock table (shared memory, /libpod_lock) stay the host's.
    A fresh store "refreshes" on first use and frees every lock in that table, and
    ``system reset`` deletes the tmp dir: both pull the state from under the containers
    other tests (other pytest-xdist workers, other sessions) are running at that moment.
    So: its own tmp dir, network config dir, and file locks kept in that tmp dir.
    """
    conf = scratch / "containers.conf"
    project = images.containers_conf().read_text()
    conf.write_text(project.replace("[engine]\n", '[engine]\nlock_type = "file"\n', 1))
    assert 'lock_type = "file"' in conf.read_text(), "the project's containers.conf has [engine]"
    store = [
        *("--root", str(scratch / "root"), "--runroot", str(scratch / "run")),
        *("--tmpdir", str(scratch / "tmp"), "--network-config-dir", str(scratch / "net")),
    ]

    def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            images.podman_argv(*store, *args),
            env={**os.environ, "CONTAINERS_CONF": str(conf)},
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    return podman


def test_oci_archive_loads_under_the_original_name(histolab_image: str, tmp_path: Path) -> None:
    """The archive a cluster node imports carries the name clients launch."""
    archive = images.archive_path("histolab")
    # A store of its own (podman wants its runroot path short: under /tmp).
    with tempfile.TemporaryDirectory(prefix="dtpoc-store-", dir="/tmp") as scratch:
        podman = _scratch_podman(Path(scratch))
        try:
            loaded = podman("load", "--input", str(archive), timeout=300)
            assert loaded.returncode == 0, loaded.stderr
            assert ORIGINAL_NAME in loaded.stdout
            listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}")
            assert listed.stdout.split() == [ORIGINAL_NAME]
        finally:
            podman("system", "reset", "--force")
