"""A real browser on the console: Debian's Chromium driven by Playwright, with guards.

Browsers cannot be downloaded here, so Playwright drives the system's
Chromium (``tools/hostpkgs/install`` installs it; ``DTPOC_CHROMIUM`` names
another). :func:`require_browser_and_build` skips only when Chromium or
Node.js is not installed; with npm present, a missing build is a failure
(``make test`` builds the console first).

:class:`Guarded` records every browser console error, uncaught page error
and request to another origin (those are also aborted, so nothing leaves
the machine); :meth:`Guarded.expect_refusals` admits the "Failed to load
resource" lines of the refusals a step provokes on purpose (a 400, a 409).
Screenshots go to ``test-artifacts/console/`` (kept by CI).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
CONSOLE_BUILD = REPO / "console" / "dist" / "index.html"
ARTIFACTS = REPO / "test-artifacts" / "console"
_RESOURCE = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")


def chromium_path() -> str | None:
    named = os.environ.get("DTPOC_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser_and_build() -> str:
    """Chromium's path; skip when Chromium or Node.js is missing, fail on a missing build."""
    browser = chromium_path()
    if browser is None:
        pytest.skip("Chromium is not installed (tools/hostpkgs/install installs it as root)")
    if not CONSOLE_BUILD.is_file():
        if shutil.which("npm") is None:
            pytest.skip("Node.js/npm is not installed, so the console cannot be built")
        pytest.fail(f"{CONSOLE_BUILD} is missing: run `make console` (make test does)")
    return browser


@dataclass
class Guarded:
    """What went wrong in the browser, by kind; empty lists mean a clean run."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)
    admitted: list[str] = field(default_factory=list)

    def on_console(self, kind: str, text: str) -> None:
        if kind != "error":
            return
        refused = _RESOURCE.match(text)
        if refused and int(refused.group(1)) in self.allowed_statuses:
            self.admitted.append(text)
            return
        self.console_errors.append(text)

    def is_foreign(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return False
        return f"{parts.scheme}://{parts.netloc}" != self.origin

    @contextmanager
    def expect_refusals(self, *statuses: int) -> Iterator[None]:
        self.allowed_statuses.update(statuses)
        try:
            yield
        finally:
            self.allowed_statuses.difference_update(statuses)

    def assert_clean(self) -> None:
        assert not self.page_errors, f"uncaught errors in the page: {self.page_errors}"
        assert not self.console_errors, f"browser console errors: {self.console_errors}"
        assert not self.foreign_requests, f"requests to other origins: {self.foreign_requests}"


def screenshot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll(
    "input, select, textarea, button")).filter((el) => {
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label")
        || el.getAttribute("aria-labelledby") || (el.tagName === "BUTTON" && el.textContent.trim());
    return !named;
}).map((el) => el.outerHTML.slice(0, 120))"""


def assert_accessible_basics(page: object) -> None:
    """Landmarks present, one h1, every control named (what a screen reader announces)."""
    evaluate = page.evaluate  # type: ignore[attr-defined]
    unnamed = evaluate(UNLABELLED_CONTROLS)
    assert not unnamed, f"controls without a label: {unnamed}"
    landmarks = evaluate(
        "() => ['header.banner', 'nav', 'main', 'footer'].filter((s) => !document.querySelector(s))"
    )
    assert not landmarks, f"missing landmarks: {landmarks}"
    assert evaluate("() => document.querySelectorAll('main h1').length") == 1
