"""WatchService streams the status at once, then each change, until a final phase.

The operator double writes each status the operator would; the test waits
for each update to arrive before writing the next, so it checks that every
change is streamed, not just the last. How a watch ends (a final phase, a
terminate, a vanished resource, an unknown id) is the unit tier's
(``tests/unit/orchestrator/test_watch.py``).
"""

from __future__ import annotations

import threading
from typing import Any

import grpc

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_local.waiting import wait_for
from tests.orchestrator.helpers import Platform, status_dict

STEP_TIMEOUT = 30.0


class Watcher:
    """Reads a WatchService stream on a thread, as a client would."""

    def __init__(self, platform: Platform, service_id: str) -> None:
        self.call: Any = platform.stub().WatchService(
            orchestrator_pb2.WatchServiceRequest(id=service_id), timeout=120
        )
        self.updates: list[orchestrator_pb2.ServiceStatus] = []
        self.ended = threading.Event()
        self.error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.updates.append(message.status)
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.ended.set()

    def phases(self) -> list[str]:
        return [u.phase for u in self.updates]

    def wait_phase(self, phase: str) -> None:
        wait_for(
            lambda: phase in self.phases(),
            timeout=STEP_TIMEOUT,
            what=f"phase {phase} on the watch stream",
            details=lambda: f"seen {self.phases()}, error {self.error}",
        )

    def wait_end(self) -> None:
        wait_for(self.ended.is_set, timeout=STEP_TIMEOUT, what="the watch stream to end")


def test_watch_streams_each_change_until_succeeded(shared_platform: Platform) -> None:
    platform = shared_platform
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 2})
    watcher = Watcher(platform, service_id)
    watcher.wait_phase("pending")
    assert watcher.updates[0].status == "running"

    platform.operator.write_status(
        service_id,
        status_dict(
            phase="running", active=2, total=2, replicas=[{"index": 0, "state": "running"}]
        ),
    )
    watcher.wait_phase("running")
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="running",
            active=1,
            succeeded=1,
            total=2,
            replicas=[{"index": 0, "state": "succeeded"}, {"index": 1, "state": "running"}],
        ),
    )
    wait_for(
        lambda: any(u.succeeded_runs == 1 for u in watcher.updates),
        timeout=STEP_TIMEOUT,
        what="the one-succeeded update",
    )
    assert not watcher.ended.is_set()
    platform.operator.write_status(service_id, status_dict(phase="succeeded", succeeded=2, total=2))
    watcher.wait_end()
    assert watcher.error is None
    assert watcher.phases() == ["pending", "running", "running", "succeeded"]
    assert [u.succeeded_runs for u in watcher.updates] == [0, 0, 1, 2]
    assert watcher.updates[-1].status == "ok"


def test_a_client_that_goes_away_ends_the_watch_cleanly(shared_platform: Platform) -> None:
    platform = shared_platform
    service_id = platform.launch()
    watcher = Watcher(platform, service_id)
    watcher.wait_phase("pending")
    watcher.call.cancel()
    watcher.wait_end()
    assert watcher.error is not None and watcher.error.code() == grpc.StatusCode.CANCELLED
    # The server keeps serving, and logged no error for the abandoned stream.
    health = platform.stub().Healthz(orchestrator_pb2.HealthzRequest(), timeout=10)
    assert health.status == "ok"
    log = platform.orchestrator.log_path.read_text()
    assert "unhandled error" not in log
    assert "Traceback" not in log
