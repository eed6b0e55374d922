"""Fixtures of the console tests: Chromium through Playwright, guarded, on a given origin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.console.browser import Guarded, require_browser_and_build

LAPTOP = {"width": 1366, "height": 900}
TABLET = {"width": 820, "height": 1180}


@pytest.fixture
def browser_page() -> Iterator[Callable[..., tuple[Any, Guarded]]]:
    """Factory: ``open(origin, viewport=LAPTOP) -> (page, guard)``, closed after the test.

    Every page gets the guards of :class:`~tests.console.browser.Guarded`;
    the test ends with ``guard.assert_clean()``.
    """
    executable = require_browser_and_build()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            # root in a container: Chromium's sandbox needs user namespaces it may not get
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )

        def open_page(origin: str, viewport: dict[str, int] = LAPTOP) -> tuple[Any, Guarded]:
            context = browser.new_context(viewport=viewport, accept_downloads=True)
            guard = Guarded(origin=origin)

            def refuse(route: Any) -> None:
                guard.foreign_requests.append(route.request.url)
                route.abort()

            # only other origins are intercepted: the console's own requests (SSE too) flow as is
            context.route(guard.is_foreign, refuse)
            page = context.new_page()
            page.on("console", lambda message: guard.on_console(message.type, message.text))
            page.on("pageerror", lambda error: guard.page_errors.append(str(error)))
            return page, guard

        try:
            yield open_page
        finally:
            browser.close()
