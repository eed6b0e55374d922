"""Launches queue in arrival order; one that would start too late is refused untouched.

The orchestrator lets a bounded number of launches write at once
(:mod:`dtpoc_orchestrator.admission`); the rest wait their turn. A launch
whose caller's deadline would pass while it waits is answered UNAVAILABLE
(the gateway's 503 with Retry-After) before any of its writes began.
"""

from __future__ import annotations

import asyncio

import pytest

from dtpoc_common import errors
from dtpoc_orchestrator import admission


async def test_launches_beyond_the_limit_wait_their_turn_in_order() -> None:
    gate = admission.LaunchGate(limit=2)
    running: set[int] = set()
    most = 0
    began: list[int] = []
    release, two_began = asyncio.Event(), asyncio.Event()

    async def launch(number: int) -> int:
        nonlocal most
        async with gate.slot(time_remaining=None):
            began.append(number)
            if len(began) == 2:
                two_began.set()
            running.add(number)
            most = max(most, len(running))
            await release.wait()
            running.discard(number)
        return number

    tasks = [asyncio.create_task(launch(n)) for n in range(6)]
    await two_began.wait()
    for _ in range(10):  # every other task runs until it blocks on the gate
        await asyncio.sleep(0)
    assert began == [0, 1]  # the others wait
    release.set()
    assert await asyncio.gather(*tasks) == list(range(6))
    assert began == list(range(6)) and most == 2


async def test_a_launch_that_would_start_too_late_is_refused_before_writing() -> None:
    gate = admission.LaunchGate(limit=1)
    hold, holding = asyncio.Event(), asyncio.Event()
    wrote: list[str] = []

    async def first() -> None:
        async with gate.slot(time_remaining=None):
            wrote.append("first")
            holding.set()
            await hold.wait()

    task = asyncio.create_task(first())
    await holding.wait()
    with pytest.raises(errors.Unavailable, match="too many launches at once"):
        async with gate.slot(time_remaining=admission.MIN_RESERVE_SECONDS + 0.1):
            wrote.append("late")
    with pytest.raises(errors.Unavailable):
        async with gate.slot(time_remaining=1.0):  # less than the reserve: at once
            wrote.append("hopeless")
    hold.set()
    await task
    assert wrote == ["first"]
    async with gate.slot(time_remaining=30.0):  # a free slot admits again
        wrote.append("next")
    assert wrote == ["first", "next"]


async def test_a_long_queue_refuses_at_once_with_a_retry_delay() -> None:
    """Behind a queue whose turn would come after the deadline, a launch is refused without
    waiting, and told to come back after part of the queue has drained."""
    from google.rpc import error_details_pb2  # type: ignore[import-untyped]

    now = [0.0]
    gate = admission.LaunchGate(limit=1, clock=lambda: now[0])
    async with gate.slot(time_remaining=None):
        now[0] += 4.0  # the recent average: 4 s a launch
    hold = asyncio.Event()

    async def occupy() -> None:
        async with gate.slot(time_remaining=None):
            await hold.wait()

    tasks = [asyncio.create_task(occupy()) for _ in range(11)]  # 1 running, 10 queued
    for _ in range(10):
        await asyncio.sleep(0)
    with pytest.raises(errors.Unavailable) as refused:
        async with gate.slot(time_remaining=30.0):  # 10 x 4 s ahead: too late
            pass
    (info,) = refused.value.details
    assert isinstance(info, error_details_pb2.RetryInfo)
    assert info.retry_delay.seconds == 20  # half the queue's 40 s
    hold.set()
    await asyncio.gather(*tasks)
