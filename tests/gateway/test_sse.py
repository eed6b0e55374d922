"""A client that leaves an SSE stream (WatchService) cancels the backend stream: a real
connection closing, through the gateway process. The framing is tested in-process in
``tests/unit/gateway/test_sse.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dtpoc_local.waiting import wait_for
from tests.gateway import doubles


@pytest.fixture
def double(
    orchestrator_double: tuple[doubles.OrchestratorDouble, str],
) -> Iterator[doubles.OrchestratorDouble]:
    found, _ = orchestrator_double
    with found.watch_settings_restored():
        yield found


def test_a_client_that_leaves_cancels_the_backend_stream(api: httpx.Client, double: Any) -> None:
    double.watch_gap = 30.0
    service = double.add_service(image="img")
    with api.stream("GET", f"/service/{service.id}/watch") as answer:
        first = next(answer.iter_lines())
        assert first.startswith("data: ")
    wait_for(
        lambda: any(
            name == "WatchService cancelled" and request.id == service.id
            for name, request in double.received
        ),
        timeout=20.0,
        what="the backend stream to be cancelled after the client left",
    )
    cancelled = [r.id for name, r in double.received if name == "WatchService cancelled"]
    assert cancelled == [service.id], "one backend stream, cancelled once, for the service watched"
