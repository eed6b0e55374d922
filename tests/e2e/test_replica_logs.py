"""Replica logs on the local runtime, through the REST API of ``make run``'s platform.

A replica prints 10,000 lines (and one to stderr), waits for a file the test
creates, then exits 1: ``follow=true`` delivers every line while it still
runs, the stream ends when it ends, and the whole log is answered again
after the service is terminated and its local folders are gone (from the
copy the operator stored in Files). The log is never one of its outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from dtpoc_local import waiting
from tests.e2e import localrun as e2e

pytestmark = pytest.mark.slow

LINES = 10_000
TIMEOUT = 120.0

PRINTER = """
import os, sys, time
for i in range(int(sys.argv[1])):
    print(f"line {i:05d} of the replica")
sys.stdout.flush()
print("a line on stderr", file=sys.stderr, flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
sys.exit(1)
"""


def _launch(client: httpx.Client, release: Path) -> str:
    body = {
        "image": "dtpoc-logs",
        "description": "prints 10,000 lines then fails",
        "ana": {"job_type": "ondemand", "reps": 1},
        "command": [sys.executable, "-c", PRINTER, str(LINES), str(release)],
    }
    response = client.post("/service/launch", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _status(client: httpx.Client, service_id: str) -> dict[str, Any]:
    response = client.get(f"/service/{service_id}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _wait(
    client: httpx.Client, service_id: str, predicate: Any, *, timeout: float, what: str
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = _status(client, service_id)
        return last if predicate(last) else None

    found: dict[str, Any] = waiting.wait_for(
        check, timeout=timeout, what=what, details=lambda: f"last status: {last}"
    )
    return found


def _replica(client: httpx.Client, service_id: str) -> dict[str, Any]:
    replicas = _status(client, service_id)["replicas"]
    return dict(replicas[0]) if replicas else {}


def _follow_until(client: httpx.Client, service_id: str, release: Path) -> tuple[str, str]:
    """Follow the log: every line while the replica runs, then release it and read
    on until the stream ends. Returns (text while running, state seen then)."""
    seen: list[str] = []
    state_then = ""
    with client.stream(
        "GET",
        f"/service/{service_id}/logs/0",
        params={"follow": "true"},
        timeout=httpx.Timeout(30.0, read=60.0),
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            assert event["attempt"] == 1
            seen.append(event["text"])
            if not state_then and "a line on stderr" in "".join(seen[-2:]):
                state_then = _replica(client, service_id).get("state", "")
                running_text = "".join(seen)
                release.touch()
    return running_text, state_then


def test_a_failing_replicas_whole_log_is_followed_live_and_kept_after_its_folder_is_gone(
    local_platform: e2e.LocalPlatform, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    with local_platform.http() as client:
        service_id = _launch(client, release)
        _wait(
            client,
            service_id,
            lambda s: s["replicas"] and s["replicas"][0]["state"] == "running",
            timeout=TIMEOUT,
            what="the replica to run",
        )
        running_text, state_then = _follow_until(client, service_id, release)
        assert state_then == "running"
        lines = running_text.splitlines()
        assert lines[:2] == ["line 00000 of the replica", "line 00001 of the replica"]
        assert lines[-2:] == ["line 09999 of the replica", "a line on stderr"]
        assert len(lines) == LINES + 1

        final = _wait(
            client,
            service_id,
            lambda s: s["phase"] == "failed" and s["replicas"][0].get("logs"),
            timeout=TIMEOUT,
            what="the replica to fail and its log to be stored",
        )
        replica = final["replicas"][0]
        assert replica["exit_code"] == 1
        assert replica["logs"][0]["attempt"] == 1
        assert replica["logs"][0]["truncated"] is False
        whole = client.get(f"/service/{service_id}/logs/0")
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-type"] == "text/plain; charset=utf-8"
        assert whole.text == running_text

        # The log is not an output: the replica wrote none.
        outputs = client.get(f"/service/{service_id}/outputs").json()
        assert outputs["replicas"][0]["files"] == []
        assert client.get(f"/service/{service_id}/output/0").json() == []

        state_dir = local_platform.data_dir / "outputs" / ".local-runtime" / service_id
        assert state_dir.is_dir()
        terminated = client.delete(f"/service/{service_id}/terminate")
        assert terminated.status_code == 200, terminated.text
        waiting.wait_for(
            lambda: not state_dir.exists(),
            timeout=TIMEOUT,
            what="the replica's local folder to be removed",
        )
        again = client.get(f"/service/{service_id}/logs/0")
        assert again.status_code == 200, again.text
        assert again.text == running_text

        tail = client.get(f"/service/{service_id}/logs/0", params={"tail_lines": 2})
        assert tail.text == "line 09999 of the replica\na line on stderr\n"
        recent = client.get(f"/service/{service_id}/logs/0", params={"since_seconds": 3600})
        assert recent.text == running_text
        stamped = client.get(
            f"/service/{service_id}/logs/0", params={"timestamps": "true", "tail_lines": 1}
        ).text
        stamp, _, text = stamped.partition(" ")
        assert text == "a line on stderr\n"
        assert stamp.endswith("Z") and stamp[:4].isdigit() and "T" in stamp


def test_bad_log_requests_answer_clear_4xx(local_platform: e2e.LocalPlatform) -> None:
    with local_platform.http() as client:
        missing = client.get("/service/0123456789abcdef01234567/logs/0")
        assert missing.status_code == 404, missing.text
        assert "no service" in missing.json()["message"]
        assert client.get("/service/not-an-id/logs/0").status_code == 400
        body = {
            "image": "dtpoc-logs",
            "ana": {"job_type": "ondemand", "reps": 2},
            "command": [sys.executable, "-c", "print('hello')"],
        }
        launched = client.post("/service/launch", json=body)
        assert launched.status_code == 202, launched.text
        service_id = launched.json()["id"]
        _wait(
            client,
            service_id,
            lambda s: s["phase"] == "succeeded" and all(r.get("logs") for r in s["replicas"]),
            timeout=TIMEOUT,
            what="both replicas to succeed with their logs stored",
        )
        assert client.get(f"/service/{service_id}/logs/1").text == "hello\n"
        beyond = client.get(f"/service/{service_id}/logs/2")
        assert beyond.status_code == 404
        assert "no such replica: 2" in beyond.json()["message"]
        negative = client.get(f"/service/{service_id}/logs/-1")
        assert negative.status_code == 400
        assert client.get(f"/service/{service_id}/logs/x").status_code == 400
        attempt = client.get(f"/service/{service_id}/logs/0", params={"attempt": 2})
        assert attempt.status_code == 404
        assert "no log of attempt 2" in attempt.json()["message"]
        for name, value in (("tail_lines", -1), ("since_seconds", 0), ("attempt", 0)):
            refused = client.get(f"/service/{service_id}/logs/0", params={name: value})
            assert refused.status_code == 400, (name, refused.text)
        # A finished replica followed: its stored log, then the stream ends.
        followed = client.get(f"/service/{service_id}/logs/0", params={"follow": "true"})
        events = [json.loads(x[5:]) for x in followed.text.splitlines() if x.startswith("data:")]
        assert "".join(e["text"] for e in events) == "hello\n"
