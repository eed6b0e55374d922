"""The platform on one machine, used through its REST API only (with the Python client).

The tests share a platform from ``python -m dtpoc_local.up --no-demo`` (see
conftest.py): FerretDB, files, orchestrator, operator (local runtime) and
gateway, exactly what ``make run`` starts.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dtpoc_client import Client, errors
from dtpoc_client.cli.output import to_json
from dtpoc_common.vocabulary import FINAL_PHASES
from dtpoc_local import waiting
from tests.e2e import localrun as e2e

pytestmark = pytest.mark.slow

HISTOLAB = [sys.executable, "-m", "histolab"]
RUN_TIMEOUT = 240.0
"""Three short simulations on a shared two-core machine, plus output collection."""


def watch_until_done(
    client: Client, service_id: str, *, timeout: float
) -> tuple[dict[str, Any], list[str]]:
    """Follow the watch stream until the service is final, then until its outputs are stored.

    Returns the last status and the phases seen in order; the deadline is
    overall (checked at each change; pytest's timeout bounds a silent stream).
    """
    deadline = time.monotonic() + timeout
    phases: list[str] = []
    last: dict[str, Any] = {}
    for update in client.services.watch(service_id):
        last = to_json(update)
        if not phases or phases[-1] != last["phase"]:
            phases.append(last["phase"])
        if time.monotonic() > deadline:
            raise waiting.WaitTimeout(
                f"service {service_id} not done after {timeout:g}s; phases {phases}, last {last}"
            )
    assert last.get("phase") in FINAL_PHASES, f"the watch ended before a final phase: {last}"
    final = e2e.wait_for_status(
        client,
        service_id,
        lambda s: all(r.get("outputs_collected") for r in s.get("replicas", [])),
        timeout=max(1.0, deadline - time.monotonic()),
        what="the outputs to be stored",
    )
    return final, phases


def test_launch_watch_collect_terminate(local_platform: e2e.LocalPlatform) -> None:
    with local_platform.client() as client:
        file_id = e2e.upload_sample(client)
        service_id = e2e.launch(
            client, file_id=file_id, reps=3, command=HISTOLAB, env={"SIM_HOURS": "168"}
        )

        final, phases = watch_until_done(client, service_id, timeout=RUN_TIMEOUT)
        assert final["phase"] == "succeeded", final
        assert phases[-1] == "succeeded"
        assert (final["status"], final["succeeded_runs"], final["failed_runs"]) == ("ok", 3, 0)
        assert [r["index"] for r in final["replicas"]] == [0, 1, 2]
        assert all(r["state"] == "succeeded" for r in final["replicas"])

        outputs = [to_json(client.services.output(service_id, idx).output) for idx in range(3)]
        assert [o["replica_index"] for o in outputs] == [0, 1, 2]
        assert len({o["seed"] for o in outputs}) == 3, "each replica runs its own seed"
        assert len({json.dumps(o["turnaround_hours"]) for o in outputs}) == 3
        sample_sha = hashlib.sha256(e2e.SAMPLE.read_bytes()).hexdigest()
        for kpis in outputs:
            assert kpis["sim_hours"] == 168
            assert kpis["input"]["sha256"] == sample_sha, "the replica read the uploaded file"
            counts = kpis["specimens"]
            assert counts["arrived"] == counts["completed"] + counts["wip_at_end"] > 0
        with pytest.raises(errors.NotFound) as missing:
            client.services.output(service_id, 3)
        assert missing.value.code == 404

        stored = final["output_files"]
        assert len(stored) == 3
        download = io.BytesIO()
        client.files.download(stored[0], download)
        assert json.loads(download.getvalue())["schema"] == "dtpoc.histolab.kpis/v1"

        terminated = client.services.terminate(service_id)
        assert terminated.message, terminated
        after = e2e.status(client, service_id)
        assert after["phase"] == "terminated"
        assert sorted(after["output_files"]) == sorted(stored)
        listed = client.services.list(limit=100)
        assert service_id in [s.id for s in listed], "terminate keeps the record"
        for idx in range(3):
            again = to_json(client.services.output(service_id, idx).output)
            assert again == outputs[idx], "terminate keeps the outputs"


def test_killed_replica_is_reported_failed_with_its_exit_code(
    local_platform: e2e.LocalPlatform,
) -> None:
    """Replica 0 runs until it is killed; replica 1 fails on its own with exit code 3."""
    program = (
        "import os, sys, time\n"
        "if os.environ['REPLICA_INDEX'] == '1':\n"
        "    sys.exit(3)\n"
        "time.sleep(600)\n"
    )
    with local_platform.client() as client:
        file_id = e2e.upload_sample(client)
        service_id = e2e.launch(
            client, file_id=file_id, reps=2, command=[sys.executable, "-c", program]
        )

        def replica(status: dict[str, Any], index: int) -> dict[str, Any]:
            return next((r for r in status.get("replicas", []) if r["index"] == index), {})

        running = e2e.wait_for_status(
            client,
            service_id,
            lambda s: replica(s, 0).get("state") == "running" and replica(s, 0).get("pod_name"),
            timeout=60.0,
            what="replica 0 to run",
        )
        run_id = replica(running, 0)["pod_name"]
        pids = waiting.wait_for(
            lambda: e2e.pids_with_env("RUN_ID", run_id),
            timeout=10.0,
            what=f"the process of replica 0 (RUN_ID={run_id})",
        )
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

        final = e2e.wait_for_status(
            client,
            service_id,
            lambda s: s.get("phase") in ("failed", "succeeded"),
            timeout=60.0,
            what="the service to end after its replica was killed",
        )
        assert final["phase"] == "failed"
        assert final["status"] == "error"
        assert final["failed_runs"] == 2
        killed, failed = replica(final, 0), replica(final, 1)
        assert killed["state"] == "failed"
        assert killed["exit_code"] == 128 + signal.SIGKILL, killed
        assert failed["state"] == "failed"
        assert failed["exit_code"] == 3, failed


def test_sigint_stops_every_child_and_exits_zero(tmp_path: Path) -> None:
    platform = e2e.start_platform(tmp_path / "data")
    try:
        children = e2e.descendants(platform.process.pid)
        assert len(children) >= 5, "FerretDB, files, orchestrator, operator, gateway"
        os.kill(platform.process.pid, signal.SIGINT)
        waiting.wait_for(
            lambda: not platform.process.is_running(),
            timeout=e2e.STOP_TIMEOUT,
            what="run_local to exit after Ctrl-C",
        )
        assert platform.process._popen is not None
        assert platform.process._popen.returncode == 0, platform.process.log_tail()
        assert not [pid for pid in children if e2e.alive(pid)], "no child outlives make run"
        log = platform.process.log_path.read_text()
        assert "SIGINT: stopping" in log
    finally:
        platform.process.stop()


def test_a_crashed_service_ends_the_run_with_its_log(tmp_path: Path) -> None:
    platform = e2e.start_platform(tmp_path / "data")
    try:
        gateway_log = platform.data_dir / "logs" / "gateway.log"
        gateway = next(
            pid
            for pid in e2e.descendants(platform.process.pid)
            if b"dtpoc_gateway" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        os.kill(gateway, signal.SIGKILL)
        waiting.wait_for(
            lambda: not platform.process.is_running(),
            timeout=e2e.STOP_TIMEOUT,
            what="run_local to notice the dead gateway",
        )
        assert platform.process._popen is not None
        assert platform.process._popen.returncode == 1
        log = platform.process.log_path.read_text()
        assert "gateway exited with code -9" in log
        assert str(gateway_log) in log
    finally:
        platform.process.stop()


def test_retry_reruns_only_the_failed_replica_and_resubmit_links(
    local_platform: e2e.LocalPlatform,
) -> None:
    """Through REST: replica 1 of 3 fails on its first attempt only (it reads
    DTPOC_ATTEMPT); a retry runs just that replica again; a resubmission is linked."""
    program = (
        "import json, os, pathlib, sys\n"
        "index, attempt = os.environ['REPLICA_INDEX'], os.environ['DTPOC_ATTEMPT']\n"
        "out = pathlib.Path(os.environ['OUTPUT_FOLDER'], 'result.json')\n"
        "out.write_text(json.dumps({'replica': index, 'attempt': attempt}))\n"
        "sys.exit(1 if index == '1' and attempt == '1' else 0)\n"
    )
    # the typed client runs the service; the retry/resubmit answers are checked on the wire
    with local_platform.client() as client, local_platform.http() as http:
        file_id = e2e.upload_sample(client)
        service_id = e2e.launch(
            client, file_id=file_id, reps=3, command=[sys.executable, "-c", program]
        )
        failed = e2e.wait_for_status(
            client,
            service_id,
            lambda s: (
                s.get("phase") == "failed"
                and all(r.get("outputs_collected") for r in s["replicas"])
            ),
            timeout=120.0,
            what="the service to fail with replica 1",
        )
        assert [r["state"] for r in failed["replicas"]] == ["succeeded", "failed", "succeeded"]
        answer = http.post(f"/service/{service_id}/retry")
        assert answer.status_code == 202, answer.text
        assert (answer.json()["indexes"], answer.json()["attempts"]) == ([1], [2])
        done = e2e.wait_for_status(
            client,
            service_id,
            lambda s: s.get("phase") == "succeeded",
            timeout=120.0,
            what="the retried service to succeed",
        )
        assert (done["succeeded_runs"], done["failed_runs"]) == (3, 0)
        assert [r["attempt"] for r in done["replicas"]] == [1, 2, 1]
        output = http.get(f"/service/{service_id}/output/1")
        assert output.json() == {"replica": "1", "attempt": "2"}
        assert http.get(f"/service/{service_id}/output/0").json()["attempt"] == "1"

        resubmitted = http.post(f"/service/{service_id}/resubmit")
        assert resubmitted.status_code == 202, resubmitted.text
        copy = resubmitted.json()["id"]
        assert http.get(f"/service/{copy}").json()["resubmitted_from"] == service_id
        assert http.get(f"/service/{service_id}").json()["resubmissions"] == [copy]
        suspend = http.post(f"/service/{copy}/suspend")
        assert suspend.status_code == 400 and "only a scheduled" in suspend.json()["message"]
        assert http.post(f"/service/{'0' * 24}/retry").status_code == 404


def test_retry_of_a_scheduled_service_reruns_its_latest_runs_failed_replica(
    local_platform: e2e.LocalPlatform,
) -> None:
    """Through REST: a scheduled service's run has 1 of 3 replicas failed; a retry runs
    just that replica of that run again (no new run); a second retry has nothing to do."""
    program = (
        "import os, sys\n"
        "index, attempt = os.environ['REPLICA_INDEX'], os.environ['DTPOC_ATTEMPT']\n"
        "sys.exit(1 if index == '1' and attempt == '1' else 0)\n"
    )
    body = {
        "image": "dtpoc-histolab",
        "version": "local",
        "description": "scheduled retry",
        "env": {},
        "mount_files": {},
        "ana": {"job_type": "scheduled", "reps": 3, "schedule": "* * * * *"},
        "command": [sys.executable, "-c", program],
    }

    def members(status: dict[str, Any], run: str) -> list[dict[str, Any]]:
        found = [r for r in status.get("replicas", []) if r.get("run") == run]
        return sorted(found, key=lambda r: r.get("index", 0))

    def run_is(state: str) -> Any:
        def check(status: dict[str, Any]) -> bool:
            runs = status.get("runs") or []
            done = members(status, runs[0]["name"]) if runs else []
            return (
                bool(runs)
                and runs[0].get("state") == state
                and len(done) == 3
                and all(r.get("outputs_collected") for r in done)
            )

        return check

    with local_platform.client() as client, local_platform.http() as http:
        launched = http.post("/service/launch", json=body)
        assert launched.status_code == 202, launched.text
        service_id = launched.json()["id"]
        early = http.post(f"/service/{service_id}/retry")
        assert early.status_code == 400 and "has not run yet" in early.json()["message"]
        e2e.wait_for_status(
            client, service_id, lambda s: bool(s.get("runs")), timeout=150.0, what="a run"
        )
        assert http.post(f"/service/{service_id}/suspend").status_code == 200  # no more runs
        failed = e2e.wait_for_status(
            client, service_id, run_is("failed"), timeout=120.0, what="the first run to fail"
        )
        run = failed["runs"][0]["name"]
        assert [r["state"] for r in members(failed, run)] == ["succeeded", "failed", "succeeded"]

        answer = http.post(f"/service/{service_id}/retry")
        assert answer.status_code == 202, answer.text
        assert (answer.json()["indexes"], answer.json()["attempts"]) == ([1], [2])
        assert run in answer.json()["message"]
        done = e2e.wait_for_status(
            client, service_id, run_is("succeeded"), timeout=120.0, what="the retried run"
        )
        assert [r["attempt"] for r in members(done, run)] == [1, 2, 1]
        assert [r["name"] for r in done["runs"]] == [run], "the retry is no new run"
        again = http.post(f"/service/{service_id}/retry")
        assert again.status_code == 400
        assert f"latest run {run} has no failed replica" in again.json()["message"]
