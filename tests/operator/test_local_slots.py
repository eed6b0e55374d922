"""A replica slot of the local runtime is free as soon as its replica ends (issue 18).

``LOCAL_MAX_PROCESSES`` replicas run at once; a service with more to start
waits. The slot of a replica that ended used to stay taken until the
service it belonged to was reconciled again, which, with hundreds of
services queued for the operator's workers, left slots idle for seconds
between short replicas. Here one slot, two services, real processes: the
second service is woken and can start as soon as the first's replica exits,
without the first being synced again.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from dtpoc_common import analytics
from dtpoc_operator import model
from dtpoc_operator.local.runtime import LocalRuntime
from dtpoc_operator.model import AnalyticsResource, ServiceKey, Status

FIRST = "aaaaaaaaaaaaaaaaaaaaaaa1"
SECOND = "aaaaaaaaaaaaaaaaaaaaaaa2"
DEADLINE_SECONDS = 60.0


def _resource(service_id: str) -> AnalyticsResource:
    spec = analytics.spec_from_dict(
        {
            "image": "img",
            "jobType": "ondemand",
            "reps": 1,
            "command": [sys.executable, "-c", "pass"],
        }
    )
    return AnalyticsResource(
        key=ServiceKey("", service_id),
        uid="u",
        generation=1,
        spec=model.ServiceSpec.from_proto(spec),
        status=Status(),
    )


async def _until(condition: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(condition.wait(), DEADLINE_SECONDS)
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE_SECONDS:.0f}s: {what}") from None


async def _until_final(runtime: LocalRuntime, resource: AnalyticsResource) -> list[str]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        observation = await runtime.observe(resource)
        if observation.replicas and all(r.final for r in observation.replicas):
            return [r.state for r in observation.replicas]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{resource.service_id} did not finish")


async def test_a_waiting_service_starts_when_the_slot_frees_without_another_sync(
    tmp_path: Path,
) -> None:
    woken: dict[str, asyncio.Event] = {FIRST: asyncio.Event(), SECOND: asyncio.Event()}
    runtime = LocalRuntime(
        output_root=tmp_path / "out",
        state_root=tmp_path / "state",
        files_address="127.0.0.1:1",
        max_processes=1,
        on_change=lambda key: woken[key.name].set(),
    )
    first, second = _resource(FIRST), _resource(SECOND)
    started = await runtime.sync(first, allow_create=True)
    assert [r.state for r in started.observation.replicas] == ["running"]
    blocked = await runtime.sync(second, allow_create=True)
    assert [r.state for r in blocked.observation.replicas] == ["pending"]  # no slot left

    await _until(woken[FIRST], "the first replica's exit is reported")
    await _until(woken[SECOND], "the waiting service is woken by the freed slot")
    # The first service has not been synced since its replica ended: its slot is free all
    # the same, so the second one starts now.
    now = await runtime.sync(second, allow_create=True)
    assert [r.state for r in now.observation.replicas] == ["running"]
    assert await _until_final(runtime, second) == ["succeeded"]
    assert await _until_final(runtime, first) == ["succeeded"]
    await runtime.forget(first)
    await runtime.forget(second)
