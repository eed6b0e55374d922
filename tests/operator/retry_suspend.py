"""What the retry and suspension tests of both runtimes share (tests/operator/
test_kube_retry_suspend.py, test_local_retry_suspend.py): the flaky replica, the
checks of a retried service or run, and the watch across two schedule ticks.

A suspended service is watched across two real schedule ticks (``* * * * *``: the
first two minute boundaries after the suspension is applied), so those tests wait
about two minutes each: no controller here accepts a finer schedule. The two
runtimes' tests are two files so that pytest-xdist runs their waits side by side.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import Callable
from typing import Any

from dtpoc_local import waiting

#: Replica 1 fails on its first attempt only; every replica writes its index and attempt.
FLAKY_ONE = textwrap.dedent(
    """
    import json, os, pathlib, sys
    index, attempt = int(os.environ["REPLICA_INDEX"]), int(os.environ["DTPOC_ATTEMPT"])
    out = pathlib.Path(os.environ["OUTPUT_FOLDER"])
    (out / "result.json").write_text(json.dumps({"replica": index, "attempt": attempt}))
    sys.exit(1 if index == 1 and attempt < 2 else 0)
    """
)


def all_collected(status: dict[str, Any]) -> bool:
    return bool(status.get("replicas")) and all(
        r.get("outputsCollected") for r in status["replicas"]
    )


def assert_retried(status: dict[str, Any], before: dict[str, Any], content: Callable) -> None:
    """3 succeeded; replica 1 at attempt 2 with its new output; 0 and 2 untouched."""
    assert status["phase"] == "succeeded", status
    assert (status["succeeded"], status["failed"], status["total"]) == (3, 0, 3)
    by_index = {r["index"]: r for r in status["replicas"]}
    assert [by_index[i]["attempt"] for i in range(3)] == [1, 2, 1]
    old = {r["index"]: r for r in before["replicas"]}
    for index in (0, 2):
        assert by_index[index]["outputFileIds"] == old[index]["outputFileIds"]
        assert by_index[index]["podName"] == old[index]["podName"]
    (file_id,) = by_index[1]["outputFileIds"]
    assert json.loads(content(file_id)) == {"replica": 1, "attempt": 2}
    assert by_index[1]["outputFileIds"] != old[1]["outputFileIds"]


def two_ticks_from(moment: dt.datetime) -> dt.datetime:
    """A little after the second minute boundary following ``moment``."""
    boundary = moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return boundary + dt.timedelta(minutes=1, seconds=10)


def no_run_until(runs: Callable[[], list[str]], until: dt.datetime, what: str) -> dt.datetime:
    """Check on every poll that ``runs()`` stays empty until ``until``; fail at the first run."""

    def passed() -> bool:
        started = runs()
        assert not started, f"{what}: a run started while suspended: {started}"
        return dt.datetime.now(dt.UTC) >= until

    waiting.wait_for(
        passed, timeout=(until - dt.datetime.now(dt.UTC)).total_seconds() + 30, what=what
    )
    return until


def run_members(status: dict[str, Any], run: str) -> dict[int, dict[str, Any]]:
    return {r.get("index", 0): r for r in status.get("replicas") or [] if r.get("run") == run}


def run_state(status: dict[str, Any], run: str) -> str:
    return next((r.get("state", "") for r in status.get("runs") or [] if r["name"] == run), "")


def run_done(run: str, state: str) -> Callable[[dict[str, Any]], bool]:
    def done(status: dict[str, Any]) -> bool:
        members = run_members(status, run)
        return (
            run_state(status, run) == state
            and len(members) == 3
            and all(r.get("outputsCollected") for r in members.values())
        )

    return done


def assert_run_retried(
    status: dict[str, Any], before: dict[str, Any], run: str, content: Callable
) -> None:
    """The run's replica 1 at attempt 2 with its new output; 0 and 2 untouched."""
    members, old = run_members(status, run), run_members(before, run)
    assert [members[i]["state"] for i in range(3)] == ["succeeded"] * 3, status
    assert [members[i]["attempt"] for i in range(3)] == [1, 2, 1]
    for index in (0, 2):
        assert members[index]["outputFileIds"] == old[index]["outputFileIds"]
        assert members[index]["podName"] == old[index]["podName"]
    (file_id,) = members[1]["outputFileIds"]
    assert json.loads(content(file_id)) == {"replica": 1, "attempt": 2}
    assert len(status["runs"]) == 1, "the retry is no new run"
