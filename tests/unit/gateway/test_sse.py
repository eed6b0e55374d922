"""Server-streaming RPCs without a handler are Server-Sent Events (WatchService), in-process:
the framing (one event per message, an error event for a failure mid-stream, keep-alive
comments while idle) and the refusals before streaming. A client that leaves (a real
connection closing) is in ``tests/gateway/test_sse.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from tests.gateway import doubles
from tests.gateway.helpers import PREFIX, abort_id


@pytest.fixture
def double(
    orchestrator_double: tuple[doubles.OrchestratorDouble, str],
) -> Iterator[doubles.OrchestratorDouble]:
    found, _ = orchestrator_double
    with found.watch_settings_restored():
        yield found


def events(text: str) -> list[dict[str, Any]]:
    """The events of an event-stream body: {"event": ..., "data": parsed JSON}."""
    found = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        event = {"event": "message", "data": None}
        for line in lines:
            key, _, value = line.partition(": ")
            if key == "event":
                event["event"] = value
            elif key == "data":
                event["data"] = json.loads(value)
        found.append(event)
    return found


def test_watch_streams_one_event_per_status(api: httpx.Client, double: Any) -> None:
    service = double.add_service(image="img", reps=2)
    answer = api.get(f"{PREFIX}/service/{service.id}/watch")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-cache"
    received = events(answer.text)
    assert [e["event"] for e in received] == ["message"] * 3
    statuses = [e["data"]["status"] for e in received]
    assert [s["phase"] for s in statuses] == ["running", "running", "succeeded"]
    assert statuses[-1]["active_runs"] == 0 and statuses[-1]["succeeded_runs"] == 2


def test_unknown_service_answers_404_before_streaming(api: httpx.Client) -> None:
    answer = api.get(f"{PREFIX}/service/{'e' * 24}/watch")
    assert answer.status_code == 404
    assert answer.json()["status"] == "NOT_FOUND"
    denied = api.get(f"{PREFIX}/service/{abort_id(grpc.StatusCode.PERMISSION_DENIED)}/watch")
    assert denied.status_code == 403


def test_a_failure_mid_stream_is_an_error_event(api: httpx.Client, double: Any) -> None:
    double.fail_after = grpc.StatusCode.UNAVAILABLE
    service = double.add_service(image="img")
    answer = api.get(f"{PREFIX}/service/{service.id}/watch")
    assert answer.status_code == 200
    received = events(answer.text)
    assert [e["event"] for e in received] == ["message", "error"]
    assert received[1]["data"]["code"] == 503
    assert received[1]["data"]["status"] == "UNAVAILABLE"


def test_idle_streams_carry_keep_alive_comments(api: httpx.Client, double: Any) -> None:
    double.watch_gap = 0.7  # the unit tier's gateway sends a keep-alive every 0.2 s
    service = double.add_service(image="img")
    answer = api.get(f"{PREFIX}/service/{service.id}/watch")
    assert ": keep-alive" in answer.text
    assert len(events(answer.text)) == 3
