"""The console's links to Grafana and Node-RED: the gateway's settings as ``/console/links.json``.

The chart sets ``DTPOC_GATEWAY_LINKS_*`` where it runs those parts
(``tests/chart/test_console_links.py``); the gateway serves them, behind the
API token, in the order the console shows them. The browser side (the links
in the banner) is in ``test_console.py``'s platform only when it runs them.
"""

from __future__ import annotations

import httpx
import pydantic
import pytest

from dtpoc_gateway import app as gateway_app
from dtpoc_gateway import auth, settings

TOKEN = "console-links-test-token-0123456789"


def client_for(config: settings.GatewaySettings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gateway_app.build(config))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def test_the_links_the_chart_sets_are_served_to_a_signed_in_console(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DTPOC_GATEWAY_LINKS_GRAFANA", "/grafana/")
    monkeypatch.setenv("DTPOC_GATEWAY_LINKS_NODE_RED", "http://127.0.0.1:1880/")
    config = settings.GatewaySettings(auth_token_hashes=[auth.hash_token(TOKEN)])
    async with client_for(config) as client:
        refused = await client.get("/console/links.json")
        assert refused.status_code == 401, "links are data: behind the token like the API"
        answer = await client.get(
            "/console/links.json", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert answer.status_code == 200
    assert answer.json() == {
        "links": [
            {"id": "grafana", "title": "Grafana", "url": "/grafana/"},
            {"id": "node-red", "title": "Node-RED", "url": "http://127.0.0.1:1880/"},
        ]
    }
    assert answer.headers["cache-control"] == "no-cache"


async def test_without_those_parts_the_console_gets_no_links() -> None:
    config = settings.GatewaySettings(auth_disabled=True, links_grafana="")
    async with client_for(config) as client:
        answer = await client.get("/console/links.json")
    assert answer.json() == {"links": []}


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "//elsewhere.example/", "grafana", "http://", "/a b"]
)
def test_a_link_that_is_no_url_or_path_stops_the_gateway_with_its_name(link: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="links_node_red"):
        settings.GatewaySettings(auth_disabled=True, links_node_red=link)
