"""Node-RED on the node: the chart's pod on the image built from its npm package, behind its login.

The editor's admin API (``/flows``) answers 401 without a login and 200 with
the chart's generated credentials (Secret ``<release>-node-red-auth``, the
password kept beside the bcrypt hash the pod is given), returning the flow
of the chart's values. Reached through ``kubectl port-forward``, as
docs/deploy.md says (the NetworkPolicy admits nobody else).
"""

from __future__ import annotations

import json

import httpx

from tests.cluster._datastack import RELEASE, forward, image_of, secret, workload
from tests.cluster.helpers import Platform
from tools.cluster import layout


def test_node_red_runs_the_image_built_here_and_opens_only_to_the_charts_login(
    platform: Platform,
) -> None:
    deployment = workload(platform, "deployment", f"{RELEASE}-node-red")
    assert image_of(deployment) == platform.images["node-red"]
    assert deployment["status"].get("readyReplicas") == 1, deployment["status"]
    login = secret(platform, f"{RELEASE}-node-red-auth")
    config_map = json.loads(
        platform.kubectl(
            "-n", layout.NAMESPACE, "get", "configmap", f"{RELEASE}-node-red", "-o", "json"
        )
    )
    chart_flow = {node["id"] for node in json.loads(config_map["data"]["flows.json"])}
    with forward(platform, f"{RELEASE}-node-red", 1880) as port:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/", timeout=30).status_code == 200, "the editor's page"
        assert httpx.get(f"{base}/flows", timeout=30).status_code == 401
        form = {
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": "dtpoc-nodered",
            "password": login["admin-password"],
        }
        token = httpx.post(f"{base}/auth/token", data=form, timeout=30)
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        flows = httpx.get(f"{base}/flows", headers=bearer, timeout=30)
    assert flows.status_code == 200
    assert {n["id"] for n in flows.json()} == chart_flow, "the flow of the chart's values"
