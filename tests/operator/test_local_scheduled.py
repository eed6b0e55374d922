"""A scheduled service in the local runtime, with a clock the test moves.

The runtime runs real replica processes; only time is controlled, so a
``* * * * *`` schedule fires at once instead of after a minute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path

from dtpoc_common import analytics
from dtpoc_operator import model
from dtpoc_operator.local.runtime import LocalRuntime
from dtpoc_operator.model import AnalyticsResource, ServiceKey, Status

SID = "abcdefabcdefabcdefabcdef"
PROGRAM = (
    "import os, pathlib; "
    "pathlib.Path(os.environ['OUTPUT_FOLDER'], 'out.txt').write_text(os.environ['DTPOC_RUN'])"
)


def _resource() -> AnalyticsResource:
    spec = analytics.spec_from_dict(
        {
            "image": "img",
            "jobType": "scheduled",
            "reps": 2,
            "schedule": "* * * * *",
            "successfulJobsHistoryLimit": 1,
            "command": [sys.executable, "-c", PROGRAM],
        }
    )
    return AnalyticsResource(
        key=ServiceKey("", SID),
        uid="u",
        generation=1,
        spec=model.ServiceSpec.from_proto(spec),
        status=Status(),
    )


async def _until_finished(runtime: LocalRuntime, resource: AnalyticsResource) -> model.Observation:
    for _ in range(300):
        observation = await runtime.observe(resource)
        if observation.runs and all(r.final for r in observation.replicas):
            return observation
        await asyncio.sleep(0.1)
    raise AssertionError(f"run did not finish: {observation}")


async def test_runs_start_when_due_with_their_own_folders(tmp_path: Path) -> None:
    now = [dt.datetime(2026, 5, 1, 10, 0, 30, tzinfo=dt.UTC)]
    runtime = LocalRuntime(
        output_root=tmp_path / "out",
        state_root=tmp_path / "state",
        files_address="127.0.0.1:1",
        max_processes=4,
        clock=lambda: now[0],
    )
    resource = _resource()
    first = await runtime.sync(resource, allow_create=True)
    assert first.observation.runs == ()  # created at 10:00:30, nothing due before 10:01
    assert first.requeue_after is not None and 0 < first.requeue_after <= 30

    now[0] = dt.datetime(2026, 5, 1, 10, 3, 5, tzinfo=dt.UTC)  # 10:01..10:03 missed
    started = await runtime.sync(resource, allow_create=True)
    (run,) = started.observation.runs
    assert run.schedule_time == dt.datetime(2026, 5, 1, 10, 3, tzinfo=dt.UTC)  # only the latest
    assert run.name == f"ana-{SID}-{int(run.schedule_time.timestamp() // 60)}"
    observation = await _until_finished(runtime, resource)
    assert [r.state for r in observation.replicas] == ["succeeded", "succeeded"]
    for index in range(2):
        # The attempt's own folder, named by its RUN_ID (<run>-<index>).
        out = tmp_path / "out" / SID / run.name / str(index) / f"{run.name}-{index}" / "out.txt"
        assert out.read_text() == run.name

    again = await runtime.sync(resource, allow_create=True)
    assert [r.name for r in again.observation.runs] == [run.name]  # not due again yet

    now[0] = dt.datetime(2026, 5, 1, 10, 4, 1, tzinfo=dt.UTC)
    second = await runtime.sync(resource, allow_create=True)
    assert len(second.observation.runs) == 2
    await _until_finished(runtime, resource)
    await runtime.forget(resource)
