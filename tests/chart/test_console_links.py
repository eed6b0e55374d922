"""The chart tells the gateway where the console links to Grafana and Node-RED.

Only the parts it runs get a link (``DTPOC_GATEWAY_LINKS_*``): Grafana at its
ingress path when it is on the ingress, else at the address ``kubectl
port-forward`` gives (the notes print the command), Node-RED always there;
``gateway.consoleLinks`` overrides either. The gateway side is in
``tests/console/test_links.py``.
"""

from __future__ import annotations

import pytest

from tests.chart import chart


def _links(*sets: str) -> dict[str, str]:
    rendered = chart.render(sets=list(sets))
    (gateway,) = chart.containers(rendered.named("Deployment", "dtpoc-gateway"))
    return {
        e["name"].removeprefix("DTPOC_GATEWAY_LINKS_"): e["value"]
        for e in gateway["env"]
        if e["name"].startswith("DTPOC_GATEWAY_LINKS_")
    }


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ((), {"GRAFANA": "http://127.0.0.1:3000/", "NODE_RED": "http://127.0.0.1:1880/"}),
        (("grafana.ingress.enabled=true",), {"GRAFANA": "/grafana/", "NODE_RED": "http://127.0.0.1:1880/"}),
        (("grafana.ingress.enabled=true", "ingress.enabled=false"),
         {"GRAFANA": "http://127.0.0.1:3000/", "NODE_RED": "http://127.0.0.1:1880/"}),
        (("grafana.enabled=false", "nodeRed.enabled=false"), {}),
        (("nodeRed.enabled=false", "gateway.consoleLinks.grafana=https://dash.example.org/d/x"),
         {"GRAFANA": "https://dash.example.org/d/x"}),
    ],
)  # fmt: skip
def test_the_gateway_gets_a_link_for_each_enabled_tool(
    sets: tuple[str, ...], expected: dict[str, str]
) -> None:
    assert _links(*sets) == expected


def test_the_production_shape_links_to_nothing_it_does_not_run() -> None:
    rendered = chart.render([chart.PRODUCTION])
    (gateway,) = chart.containers(rendered.named("Deployment", "dtpoc-gateway"))
    assert not [e for e in gateway["env"] if e["name"].startswith("DTPOC_GATEWAY_LINKS_")]


def test_a_link_that_is_no_url_or_path_is_refused_by_the_schema() -> None:
    error = chart.render_error(sets=["gateway.consoleLinks.nodeRed=javascript:alert(1)"])
    assert "/gateway/consoleLinks/nodeRed" in error
