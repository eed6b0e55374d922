"""``make run --exit-after-demo``: a newcomer's first command works, and keeps its data."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtpoc_local import ports
from tests.e2e import localrun as e2e

pytestmark = pytest.mark.slow

DEMO_TIMEOUT = 420.0


def test_demo_runs_and_a_second_run_reuses_the_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    args = ("--exit-after-demo", "--sim-hours", "168", "--demo-timeout", "300")

    first = e2e.run_local_once(
        data_dir, *args, "--port", str(ports.free_port()), timeout=DEMO_TIMEOUT
    )
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "dtpoc is running on this machine" in out
    assert "launched service" in out
    assert "succeeded" in out
    assert "KPIs per replica" in out
    table = out.split("KPIs per replica", 1)[1].splitlines()
    assert any(line.split()[:1] == ["0"] for line in table)
    assert any(line.split()[:1] == ["1"] for line in table)
    assert "no KPI document" not in out
    assert (data_dir / "ferretdb" / "data").is_dir()
    for name in ("files", "orchestrator", "operator", "gateway"):
        assert (data_dir / "logs" / f"{name}.log").is_file()

    second = e2e.run_local_once(
        data_dir, *args, "--port", str(ports.free_port()), timeout=DEMO_TIMEOUT
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "File already exists" in second.stdout, "the first run's upload is still stored"


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind((ports.LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = e2e.run_local_once(
            tmp_path / "var", "--no-demo", "--port", str(port), timeout=60.0
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use; pass --port" in result.stdout
