"""The web console in a real browser against the real local platform.

One researcher's afternoon, step by step, through the console only: the
platform is ``make run --no-demo`` (FerretDB, files, orchestrator, operator
with the local runtime, gateway serving the built console at ``/``). Each
step leaves a screenshot in ``test-artifacts/console/``; the run fails on any
browser console error or request to another origin (see browser.py).
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dtpoc_gateway import auth
from tests.console.browser import Guarded, assert_accessible_basics, screenshot
from tests.console.conftest import TABLET
from tests.e2e.localrun import SAMPLE, start_platform, stop_platform

pytestmark = pytest.mark.slow

RUN_TIMEOUT_MS = 240_000
"""Two short simulations on a shared two-core machine, plus output collection."""
UI_TIMEOUT_MS = 30_000
TOKEN = "console-browser-test-token-0123456789abcdef"
TYPED_ENV = {"SIM_HOURS": 48, "SEED": 7}
"""What the researcher types into the launch form's environment (the example says 168, 0)."""

Opener = Callable[..., tuple[Any, Guarded]]


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[str]:
    """The address of a fresh ``make run --no-demo`` (its store holds nothing yet: the
    workbook's only reference is this test's upload, so deleting it is refused)."""
    running = start_platform(tmp_path / "data")
    try:
        yield running.api_url.split("/api/", 1)[0]
    finally:
        assert stop_platform(running) == 0, running.process.log_tail(60)


def drop_file(page: Any, selector: str, path: Path) -> None:
    """Drop a file on ``selector`` as a user dragging it from their desktop would."""
    payload = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name));
            return transfer;
        }""",
        [payload, path.name],
    )
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def upload_workbook(page: Any, origin: str) -> str:
    from playwright.sync_api import expect

    page.goto(origin + "/")
    expect(page.get_by_role("heading", name="Files")).to_be_visible()
    screenshot(page, "01-files-empty")
    drop_file(page, "[data-testid=dropzone]", SAMPLE)
    # a fresh platform stores it; one already holding it answers with the stored copy
    answer = re.compile(r"input\.xlsx( uploaded|: File already exists)")
    expect(page.get_by_text(answer)).to_be_visible(timeout=UI_TIMEOUT_MS)
    progress = page.locator("progress#upload-progress")
    # the whole multipart body was sent (the request's size, a little over the file's)
    maximum = int(progress.get_attribute("max") or 0)
    assert maximum > SAMPLE.stat().st_size
    assert progress.get_attribute("value") == str(maximum)
    notice = page.locator(".notice").inner_text()
    found = re.search(r"\(id ([0-9a-f]{24})\)", notice)
    assert found, notice
    row = page_to_file(page, found.group(1))
    expect(row).to_contain_text("input.xlsx")
    expect(row).to_contain_text("9.5 KiB")
    expect(row).to_contain_text("sha256")
    assert_accessible_basics(page)
    screenshot(page, "02-uploaded")
    file_id = row.get_attribute("data-file-id")
    assert file_id
    return file_id


def launch_example(page: Any, origin: str) -> str:
    from playwright.sync_api import expect

    page.goto(origin + "/#/launch")
    page.get_by_role("button", name="Fill in the histolab example").click()
    page.get_by_label("Replicas").fill("2")
    change_the_environment(page)
    page.get_by_label(re.compile(r"^input\.xlsx")).check()
    # The local runtime runs the example as a process of this environment.
    page.get_by_label(re.compile(r"^Command")).fill(f"{sys.executable}\n-m\nhistolab")
    assert_accessible_basics(page)
    screenshot(page, "03-launch-form")
    page.get_by_role("button", name="Launch", exact=True).click()
    page.wait_for_url(re.compile(r"#/services/[0-9a-f]{24}$"), timeout=UI_TIMEOUT_MS)
    service_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("tr[data-replica]")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    screenshot(page, "04-service-started")
    return service_id


def change_the_environment(page: Any) -> None:
    """Type, key by key, into the variables the example filled in, and add one."""
    from playwright.sync_api import expect

    expect(page.locator("#env-key-2")).to_have_value("SIM_HOURS")
    hours = page.locator("#env-value-2")
    hours.fill("")
    hours.press_sequentially(str(TYPED_ENV["SIM_HOURS"]))
    page.get_by_role("button", name="Add variable").click()
    page.locator("#env-key-3").press_sequentially("SEED")
    page.locator("#env-value-3").press_sequentially(str(TYPED_ENV["SEED"]))
    expect(page.get_by_role("button", name="Remove variable SEED")).to_be_visible()


def the_typed_environment_reached_the_replicas(page: Any, origin: str, service_id: str) -> None:
    """Each replica's KPIs name the hours and the seed typed into the form."""
    base = f"{origin}/api/orchestrator/v1alpha1/service/{service_id}/output"
    for index in (0, 1):
        answer = page.request.get(f"{base}/{index}")
        assert answer.ok, answer.text()
        kpis = answer.json()  # the replica's one JSON file, as the original answers
        assert (kpis["sim_hours"], kpis["seed_base"]) == (
            TYPED_ENV["SIM_HOURS"],
            TYPED_ENV["SEED"],
        ), kpis


def see_replicas_succeed_live(page: Any) -> None:
    from playwright.sync_api import expect

    page.evaluate("window.__sameDocument = true")
    for index in (0, 1):
        badge = page.locator(f"tr[data-replica='{index}'] .badge")
        expect(badge).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("service-phase")).to_have_text("succeeded", timeout=UI_TIMEOUT_MS)
    for index in (0, 1):
        outputs = page.locator(f"tr[data-replica='{index}'] td").last
        expect(outputs).to_contain_text("kpis.json", timeout=RUN_TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    screenshot(page, "05-replicas-succeeded")


def open_kpi_charts(page: Any) -> None:
    from playwright.sync_api import expect

    across = page.get_by_test_id("charts-across")
    expect(across).to_be_visible(timeout=UI_TIMEOUT_MS)
    for chart in ("turnaround", "utilisation", "wip", "throughput"):
        expect(page.locator(f"[data-chart='across-{chart}'] svg[role=img]")).to_be_visible()
    turnaround = page.locator("[data-chart='across-turnaround']")
    expect(turnaround.locator("figcaption")).to_contain_text("range between replicas")
    turnaround.get_by_text("Numbers").click()
    header = turnaround.locator("thead th")
    expect(header).to_contain_text(["series", "replica 0", "replica 1", "mean"])
    expect(turnaround.locator("tbody th", has_text="cancer")).to_have_count(3)  # p50 p90 p95
    expect(page.locator("[data-chart='across-utilisation'] tbody tr").first).to_contain_text("%")
    assert_accessible_basics(page)
    screenshot(page, "06-charts-across-replicas")
    page.get_by_label("Show").select_option("0")
    expect(page.get_by_test_id("charts-replica-0")).to_be_visible()
    screenshot(page, "07-charts-replica-0")
    page.set_viewport_size(TABLET)
    screenshot(page, "07b-charts-tablet")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= TABLET["width"], f"the page scrolls sideways on a tablet ({width}px)"
    page.set_viewport_size({"width": 1366, "height": 900})


def invalid_cron_is_explained_beside_the_schedule(page: Any, origin: str, guard: Guarded) -> None:
    from playwright.sync_api import expect

    page.goto(origin + "/#/launch")
    page.get_by_label("Job type").select_option("scheduled")
    page.get_by_label("Image", exact=True).fill("ghcr.io/cam-digital-hospitals/digital-hosp-des")
    page.get_by_label(re.compile(r"^Schedule")).fill("every monday")
    page.get_by_label(re.compile(r"^Command")).fill("true")
    with guard.expect_refusals(400):
        page.get_by_role("button", name="Launch", exact=True).click()
        message = page.locator("#schedule-error")
        expect(message).to_contain_text("give five", timeout=UI_TIMEOUT_MS)
    schedule = page.get_by_label(re.compile(r"^Schedule"))
    expect(schedule).to_have_attribute("aria-invalid", "true")
    expect(schedule).to_have_attribute("aria-describedby", "schedule-error")
    expect(schedule).to_be_focused()
    assert guard.admitted, "the launch was not refused by the server"
    screenshot(page, "08-invalid-cron")


def page_to_file(page: Any, file_id: str) -> Any:
    """The list row of ``file_id``, paging on with Next (the list is newest first)."""
    from playwright.sync_api import expect

    expect(page.locator("tr[data-file-id]").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    for _ in range(50):
        row = page.locator(f"tr[data-file-id='{file_id}']")
        if row.count():
            return row
        first = page.locator("tr[data-file-id]").first.get_attribute("data-file-id")
        page.get_by_role("button", name="Next").click()
        expect(page.locator("tr[data-file-id]").first).not_to_have_attribute(
            "data-file-id", first or "", timeout=UI_TIMEOUT_MS
        )
    raise AssertionError(f"file {file_id} is on none of 50 pages")


def deleting_the_mounted_workbook_is_refused(
    page: Any, origin: str, guard: Guarded, *, service_id: str, file_id: str
) -> None:
    from playwright.sync_api import expect

    page.goto(origin + "/#/files")
    row = page_to_file(page, file_id)
    page.once("dialog", lambda dialog: dialog.accept())
    with guard.expect_refusals(409):
        row.get_by_role("button", name="Delete input.xlsx").click()
        refusal = page.get_by_role("alert")
        expect(refusal).to_contain_text("still in use", timeout=UI_TIMEOUT_MS)
    expect(refusal).to_contain_text(service_id)
    expect(refusal.get_by_role("link", name=service_id)).to_have_attribute(
        "href", f"#/services/{service_id}"
    )
    expect(row).to_have_count(1)  # still listed
    assert_accessible_basics(page)
    screenshot(page, "09-delete-refused")


def terminate(page: Any, origin: str, service_id: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{origin}/#/services/{service_id}")
    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    page.get_by_role("button", name="Terminate").click()
    expect(page.get_by_test_id("service-phase")).to_have_text("terminated", timeout=UI_TIMEOUT_MS)
    assert questions and "Terminate service" in questions[0]
    expect(page.get_by_role("button", name="Terminate")).to_have_count(0)
    screenshot(page, "10-terminated")


def test_a_researcher_runs_the_histolab_example_in_the_console(
    origin: str, browser_page: Opener
) -> None:
    page, guard = browser_page(origin)
    file_id = upload_workbook(page, origin)
    service_id = launch_example(page, origin)
    see_replicas_succeed_live(page)
    the_typed_environment_reached_the_replicas(page, origin, service_id)
    open_kpi_charts(page)
    invalid_cron_is_explained_beside_the_schedule(page, origin, guard)
    deleting_the_mounted_workbook_is_refused(
        page, origin, guard, service_id=service_id, file_id=file_id
    )
    terminate(page, origin, service_id)
    guard.assert_clean()


def test_sign_in_keeps_the_token_for_the_tab_and_says_when_it_is_refused(
    gateway_server: Any, browser_page: Opener
) -> None:
    """With authentication on: 401 -> sign-in, wrong token -> refused in words, right -> in."""
    from playwright.sync_api import expect

    gateway = gateway_server(token_hashes=[auth.hash_token(TOKEN)])
    origin = gateway.base_url
    page, guard = browser_page(origin)
    with guard.expect_refusals(401, 503):
        page.goto(origin + "/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.get_by_role("alert")).to_contain_text("a valid bearer token is required")
        screenshot(page, "11-sign-in")
        page.get_by_label("API token").fill("not-the-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("the bearer token is not valid")
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        # Accepted: the Files page asks the (absent) Files backend and says it is not there.
        expect(page.get_by_role("heading", name="Files")).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.get_by_role("alert")).to_contain_text("not configured")
    assert page.evaluate("sessionStorage.getItem('dtpoc.token')") == TOKEN
    assert page.evaluate("localStorage.length") == 0
    screenshot(page, "12-signed-in")
    guard.assert_clean()
