"""In a real browser: the banner links to Grafana and Node-RED once signed in, where they run.

The gateway is started as the chart starts it when it runs both
(``DTPOC_GATEWAY_LINKS_*``; ``tests/chart/test_console_links.py``); before
sign-in the console shows no links (they are data, behind the token).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dtpoc_gateway import auth
from tests.console.browser import Guarded, screenshot

pytestmark = pytest.mark.slow

TOKEN = "console-links-browser-token-0123456789abcdef"
UI_TIMEOUT_MS = 30_000
LINKS = {
    "DTPOC_GATEWAY_LINKS_GRAFANA": "/grafana/",
    "DTPOC_GATEWAY_LINKS_NODE_RED": "http://127.0.0.1:1880/",
}


def test_the_banner_links_to_grafana_and_node_red_after_sign_in(
    gateway_server: Any, browser_page: Callable[..., tuple[Any, Guarded]]
) -> None:
    from playwright.sync_api import expect

    gateway = gateway_server(token_hashes=[auth.hash_token(TOKEN)], env=LINKS)
    origin = gateway.base_url
    page, guard = browser_page(origin)
    with guard.expect_refusals(401, 503):
        page.goto(origin + "/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.get_by_role("navigation", name="Tools")).to_have_count(0)
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        tools = page.get_by_role("navigation", name="Tools")
        grafana = tools.get_by_role("link", name="Grafana")
        expect(grafana).to_have_attribute("href", "/grafana/", timeout=UI_TIMEOUT_MS)
        node_red = tools.get_by_role("link", name="Node-RED")
        expect(node_red).to_have_attribute("href", "http://127.0.0.1:1880/")
        for link in (grafana, node_red):
            expect(link).to_have_attribute("target", "_blank")
            expect(link).to_have_attribute("rel", "noopener noreferrer")
    screenshot(page, "13-tool-links")
    guard.assert_clean()
