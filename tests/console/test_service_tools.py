"""A service's daily tools in the console, in a real browser against the real platform.

Replica logs (whole, followed live, the size cap's marker), retry of a failed
replica (ondemand, and of a scheduled service's latest run), resubmission and
its links both ways, suspend and resume of a scheduled service: each through
the console's buttons only, on one ``make run --no-demo`` platform with a
small log cap. The services are launched through REST (the launch form has
its own test in test_console.py).
Screenshots go to ``test-artifacts/console/``; the run fails on any browser
console error or request to another origin (see browser.py).
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.browser import Guarded, assert_accessible_basics, screenshot
from tests.e2e.localrun import LocalPlatform, start_platform, stop_platform

pytestmark = pytest.mark.slow

RUN_TIMEOUT_MS = 180_000
"""A few short processes on a shared two-core machine, plus output collection."""
UI_TIMEOUT_MS = 30_000
FIRST_TICK_TIMEOUT_MS = 150_000
"""A ``* * * * *`` schedule's first run: the next minute boundary, on a loaded machine."""
LOG_CAP = 65_536
"""The platform's log cap (DTPOC_OPERATOR_LOG_MAX_BYTES) in this module: small, to reach it."""

Opener = Callable[..., tuple[Any, Guarded]]

#: 300 lines, then waits (up to 120 s) for the file CONSOLE_GO names, then one more line.
WAITS_FOR_GO = textwrap.dedent(
    """
    import os, pathlib, sys, time
    for n in range(300):
        print(f"line {n} of the first part", flush=True)
    go = pathlib.Path(os.environ["CONSOLE_GO"])
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    print("after the go" if go.exists() else "no go came", flush=True)
    """
)
#: Replica 1 fails on its first attempt only; each prints its index and attempt.
FLAKY_ONE = textwrap.dedent(
    """
    import os, sys
    index, attempt = os.environ["REPLICA_INDEX"], os.environ["DTPOC_ATTEMPT"]
    print(f"replica {index} attempt {attempt}", flush=True)
    sys.exit(1 if index == "1" and attempt == "1" else 0)
    """
)
#: Far more than the cap, then a failure.
LOUD = "import sys\nfor n in range(5000): print(f'noisy line {n:05d}')\nsys.exit(1)\n"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    data = tmp_path_factory.mktemp("tools") / "data"
    running = start_platform(data, env={"DTPOC_OPERATOR_LOG_MAX_BYTES": str(LOG_CAP)})
    try:
        yield running
    finally:
        assert stop_platform(running) == 0, running.process.log_tail(60)


def origin_of(platform: LocalPlatform) -> str:
    return platform.api_url.split("/api/", 1)[0]


def launch(
    platform: LocalPlatform,
    program: str,
    *,
    reps: int = 1,
    env: dict[str, str] | None = None,
    schedule: str = "",
) -> str:
    ana: dict[str, Any] = {"job_type": "scheduled" if schedule else "ondemand", "reps": reps}
    if schedule:
        ana["schedule"] = schedule
    body = {
        "image": "dtpoc-console-test",
        "version": "local",
        "description": "console tools test",
        "env": env or {},
        "mount_files": {},
        "ana": ana,
        "command": [sys.executable, "-c", program],
    }
    with platform.http() as http:
        answer = http.post("/service/launch", json=body)
    assert answer.status_code == 202, answer.text
    service_id: str = answer.json()["id"]
    return service_id


def open_service(page: Any, platform: LocalPlatform, service_id: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{origin_of(platform)}/#/services/{service_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(service_id)


def badge(page: Any, index: int) -> Any:
    return page.locator(f"tr[data-replica='{index}'] .badge")


def attempt_cell(page: Any, index: int) -> Any:
    return page.locator(f"tr[data-replica='{index}'] [data-testid=attempt]")


def test_a_running_replicas_log_is_followed_live_and_the_cap_is_shown(
    platform: LocalPlatform, browser_page: Opener, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    go = tmp_path / "go"
    service_id = launch(platform, WAITS_FOR_GO, env={"CONSOLE_GO": str(go)})
    page, guard = browser_page(origin_of(platform))
    open_service(page, platform, service_id)
    expect(badge(page, 0)).to_have_text("running", timeout=RUN_TIMEOUT_MS)
    page.get_by_role("button", name="Log of replica 0").click()
    panel = page.get_by_test_id("replica-log")
    log = panel.locator("pre.log")
    expect(panel.get_by_test_id("log-state")).to_have_text("following live…")
    expect(log).to_contain_text("line 299 of the first part", timeout=UI_TIMEOUT_MS)
    expect(log).not_to_contain_text("after the go")
    # The box scrolls: 300 lines do not fit, and it sits at its bottom.
    assert log.evaluate("e => e.scrollHeight > e.clientHeight + 100")
    page.evaluate("window.__sameDocument = true")
    assert_accessible_basics(page)
    screenshot(page, "20-log-following")

    go.write_text("go")  # the replica prints its last line only now
    expect(log).to_contain_text("after the go", timeout=UI_TIMEOUT_MS)
    at_bottom = "e => e.scrollHeight - e.scrollTop - e.clientHeight < 24"
    assert log.evaluate(at_bottom), "the log did not scroll to the new line"
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    expect(badge(page, 0)).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    expect(panel.get_by_test_id("log-state")).to_have_text("whole log", timeout=UI_TIMEOUT_MS)
    expect(log).to_contain_text("line 0 of the first part")
    expect(log).to_contain_text("after the go")
    screenshot(page, "21-log-ended")

    loud = launch(platform, LOUD)
    open_service(page, platform, loud)
    expect(badge(page, 0)).to_have_text("failed", timeout=RUN_TIMEOUT_MS)
    page.get_by_role("button", name="Log of replica 0").click()
    panel = page.get_by_test_id("replica-log")
    expect(panel.get_by_test_id("log-truncated")).to_contain_text("size cap", timeout=UI_TIMEOUT_MS)
    expect(panel.locator("pre.log")).to_contain_text("[dtpoc] log truncated")
    expect(panel.locator("pre.log")).not_to_contain_text("noisy line 04999")
    screenshot(page, "22-log-truncated")
    guard.assert_clean()


def test_retry_reruns_the_failed_replica_and_resubmit_links_both_ways(
    platform: LocalPlatform, browser_page: Opener
) -> None:
    from playwright.sync_api import expect

    service_id = launch(platform, FLAKY_ONE, reps=3)
    page, guard = browser_page(origin_of(platform))
    open_service(page, platform, service_id)
    expect(page.get_by_test_id("service-phase")).to_have_text("failed", timeout=RUN_TIMEOUT_MS)
    expect(badge(page, 1)).to_have_text("failed")
    retry = page.get_by_role("button", name="Retry failed replicas")
    expect(retry).to_be_enabled(timeout=UI_TIMEOUT_MS)
    attempts = [attempt_cell(page, index).inner_text() for index in range(3)]
    assert attempts == ["1", "1", "1"]
    screenshot(page, "23-failed-before-retry")

    retry.click()
    expect(page.locator(".notice")).to_contain_text("1 (attempt 2)", timeout=UI_TIMEOUT_MS)
    expect(attempt_cell(page, 1)).to_have_text("2", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("service-phase")).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    for index in range(3):
        expect(badge(page, index)).to_have_text("succeeded")
    for index in (0, 2):
        expect(attempt_cell(page, index)).to_have_text("1")
    # Succeeded: nothing failed, so no Retry is offered.
    expect(page.get_by_role("button", name="Retry failed replicas")).to_have_count(0)
    # Both attempts' logs of replica 1 are there to pick.
    page.get_by_role("button", name="Log of replica 1").click()
    panel = page.get_by_test_id("replica-log")
    expect(panel.locator("pre.log")).to_contain_text("replica 1 attempt 2", timeout=UI_TIMEOUT_MS)
    panel.get_by_label("Attempt").select_option("1")
    expect(panel.locator("pre.log")).to_contain_text("replica 1 attempt 1", timeout=UI_TIMEOUT_MS)
    screenshot(page, "24-retried")

    page.get_by_role("button", name="Resubmit").click()
    page.wait_for_url(
        lambda url: (
            re.search(r"#/services/[0-9a-f]{24}$", url) is not None and not url.endswith(service_id)
        ),
        timeout=UI_TIMEOUT_MS,
    )
    copy = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_contain_text(copy)
    back = page.get_by_test_id("resubmitted-from").get_by_role("link", name=service_id)
    expect(back).to_be_visible(timeout=UI_TIMEOUT_MS)
    screenshot(page, "25-resubmission")
    back.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(service_id)
    forward = page.get_by_test_id("resubmissions").get_by_role("link", name=copy)
    expect(forward).to_be_visible(timeout=UI_TIMEOUT_MS)
    assert_accessible_basics(page)
    guard.assert_clean()


def test_retry_of_a_scheduled_service_reruns_its_latest_runs_failed_replica(
    platform: LocalPlatform, browser_page: Opener
) -> None:
    """A scheduled run with replica 1 failed: Retry runs that replica again as attempt 2
    in the same run (no new run), and the run ends succeeded."""
    from playwright.sync_api import expect

    service_id = launch(platform, FLAKY_ONE, reps=3, schedule="* * * * *")
    page, guard = browser_page(origin_of(platform))
    open_service(page, platform, service_id)
    first = page.locator("tr[data-replica]").first
    expect(first).to_be_visible(timeout=FIRST_TICK_TIMEOUT_MS)  # the next minute boundary
    with platform.http() as http:  # no second run meanwhile (Suspend has its own test)
        assert http.post(f"/service/{service_id}/suspend", json={}).status_code == 200
    run = first.get_attribute("data-run")
    assert run, "a scheduled replica's row names its run"

    def row(index: int) -> Any:
        return page.locator(f"tr[data-replica='{index}'][data-run='{run}']")

    expect(row(1).locator(".badge")).to_have_text("failed", timeout=RUN_TIMEOUT_MS)
    for index in (0, 2):
        expect(row(index).locator(".badge")).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    retry = page.get_by_role("button", name="Retry failed replicas")
    expect(retry).to_be_enabled(timeout=UI_TIMEOUT_MS)
    assert [row(i).get_by_test_id("attempt").inner_text() for i in range(3)] == ["1"] * 3
    screenshot(page, "30-scheduled-run-failed")

    retry.click()
    notice = page.locator(".notice")
    expect(notice).to_contain_text(f"of run {run}", timeout=UI_TIMEOUT_MS)
    expect(notice).to_contain_text("1 (attempt 2)")
    expect(row(1).get_by_test_id("attempt")).to_have_text("2", timeout=RUN_TIMEOUT_MS)
    expect(row(1).locator(".badge")).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    for index in (0, 2):
        expect(row(index).get_by_test_id("attempt")).to_have_text("1")
        expect(row(index).locator(".badge")).to_have_text("succeeded")
    expect(page.locator("tr[data-replica]")).to_have_count(3)  # the retry is no new run
    expect(page.get_by_role("button", name="Retry failed replicas")).to_have_count(0)
    row(1).get_by_role("button", name="Log of replica 1").click()
    panel = page.get_by_test_id("replica-log")
    expect(panel.locator("pre.log")).to_contain_text("replica 1 attempt 2", timeout=UI_TIMEOUT_MS)
    assert_accessible_basics(page)
    screenshot(page, "31-scheduled-run-retried")
    guard.assert_clean()


def test_a_scheduled_service_is_suspended_and_resumed(
    platform: LocalPlatform, browser_page: Opener
) -> None:
    from playwright.sync_api import expect

    service_id = launch(platform, "print('run')", schedule="0 0 1 1 *")
    page, guard = browser_page(origin_of(platform))
    open_service(page, platform, service_id)
    state = page.get_by_test_id("suspension")
    expect(state).to_have_text("on schedule", timeout=UI_TIMEOUT_MS)
    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    page.get_by_role("button", name="Suspend").click()
    expect(state).to_have_text("suspended", timeout=RUN_TIMEOUT_MS)
    assert questions and "starts no new run" in questions[0]
    expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    with platform.http() as http:
        record = http.get(f"/service/{service_id}").json()
        assert record["suspended"] is True
    screenshot(page, "26-suspended")

    page.get_by_role("button", name="Resume").click()  # letting runs go needs no question
    expect(state).to_have_text("on schedule", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Suspend")).to_be_enabled()
    assert len(questions) == 1
    screenshot(page, "27-resumed")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Terminate").click()
    expect(page.get_by_test_id("service-phase")).to_have_text("terminated", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Suspend")).to_be_disabled(timeout=UI_TIMEOUT_MS)
    with platform.http() as http:
        refused = http.post(f"/service/{service_id}/suspend", json={})
    assert refused.status_code == 400 and "terminated" in refused.json()["message"]
    assert_accessible_basics(page)
    screenshot(page, "28-terminated-suspend-disabled")
    guard.assert_clean()


def test_a_refused_action_shows_the_servers_message(
    platform: LocalPlatform, browser_page: Opener
) -> None:
    """The page's view is stale (the service was terminated elsewhere while its live
    status stream is held back): the server's 400 is shown in words."""
    from playwright.sync_api import expect

    service_id = launch(platform, "print('run')", schedule="0 0 1 1 *")
    page, guard = browser_page(origin_of(platform))
    held: list[Any] = []  # the watch requests, never answered: the page learns nothing new

    def hold(route: Any) -> None:
        held.append(route)

    page.route(re.compile(r"/watch$"), hold)
    open_service(page, platform, service_id)
    expect(page.get_by_test_id("suspension")).to_have_text("on schedule", timeout=UI_TIMEOUT_MS)
    with httpx.Client(base_url=platform.api_url, timeout=30.0) as http:
        gone = http.delete(f"/service/{service_id}/terminate")
        assert gone.status_code == 200, gone.text
    assert held, "the page did not open its status stream"
    page.once("dialog", lambda dialog: dialog.accept())
    with guard.expect_refusals(400):
        page.get_by_role("button", name="Suspend").click()
        refusal = page.get_by_test_id("action-error")
        expect(refusal).to_contain_text("is terminated and cannot be suspended")
    screenshot(page, "29-refused-in-words")
    guard.assert_clean()
