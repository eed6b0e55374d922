"""The Grafana provisioning the chart renders is what Grafana's documented format accepts.

Grafana cannot be built or run here (its sources are not usable), so it stays
rendered-only: the data source and dashboard-provider files and the *Sensors*
dashboard of the ConfigMap are validated against JSON schemas written from
Grafana's documentation (``tests/chart/grafana/*.schema.json``, each naming
the pages it follows in its ``$comment``), for the shapes that change them.
What a schema cannot say (panel ids unique, panels inside the 24-column grid
and not overlapping, every panel on a provisioned data source, the provider's
folder being where the dashboard is mounted) is checked here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from tests.chart import chart

SCHEMAS = Path(__file__).parent / "grafana"
WARD_SENSOR = {
    "name": "ward-co2",
    "mqtt": {"servers": [], "topics": ["wards/+/co2"], "qos": 1, "topicTag": "topic"},
    "measurement": "co2_reading",
    "timestamp": {"path": "ts", "format": "unix_ms"},
    "fields": [{"path": "ppm", "type": "int"}],
    "tags": [{"path": "ward", "type": "string"}],
}


@cache
def _validator(name: str) -> jsonschema_rs.Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return jsonschema_rs.validator_for(schema)


def _errors(name: str, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.instance_path)) or '(top)'}: {e.message}"
        for e in _validator(name).iter_errors(document)
    ]


def _provisioning(tmp_path: Path, shape: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Data sources, dashboard providers and the dashboard of one values shape."""
    files: list[Path] = []
    if shape == "added-sensor":
        defaults = chart.merged_values()["telegraf"]["sensors"]
        extra = tmp_path / "sensors.yaml"
        extra.write_text(yaml.safe_dump({"telegraf": {"sensors": [*defaults, WARD_SENSOR]}}))
        files.append(extra)
    sets = ["telegraf.enabled=false"] if shape == "no-telegraf" else []
    rendered = chart.render(files, sets=sets)
    data = rendered.named("ConfigMap", "dtpoc-grafana")["data"]
    deployment = rendered.named("Deployment", "dtpoc-grafana")
    mounts = {m["mountPath"] for c in chart.containers(deployment) for m in c["volumeMounts"]}
    dashboards = yaml.safe_load(data["dashboards.yaml"])
    for provider in dashboards["providers"]:
        assert provider["options"]["path"] in mounts, "the provider reads a mounted folder"
    return yaml.safe_load(data["datasources.yaml"]), dashboards, json.loads(data["sensors.json"])


def _grid_problems(dashboard: dict[str, Any], datasource_uids: set[str]) -> list[str]:
    problems = []
    ids = [p["id"] for p in dashboard["panels"]]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids repeat: {ids}")
    cells: dict[tuple[int, int], int] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        if pos["x"] + pos["w"] > 24:
            problems.append(f"panel {panel['id']} is wider than the grid")
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                if (x, y) in cells:
                    problems.append(f"panels {cells[(x, y)]} and {panel['id']} overlap")
                cells[(x, y)] = panel["id"]
        for ref in [panel.get("datasource"), *[t.get("datasource") for t in panel["targets"]]]:
            if ref is not None and ref["uid"] not in datasource_uids:
                problems.append(f"panel {panel['id']} uses data source {ref['uid']!r}")
    return sorted(set(problems))


@pytest.mark.parametrize("shape", ["default", "added-sensor", "no-telegraf"])
def test_the_rendered_provisioning_follows_grafanas_documented_format(
    tmp_path: Path, shape: str
) -> None:
    datasources, dashboards, dashboard = _provisioning(tmp_path, shape)
    assert _errors("datasources", datasources) == []
    assert _errors("dashboard-providers", dashboards) == []
    assert _errors("dashboard", dashboard) == []
    uids = {d["uid"] for d in datasources["datasources"]}
    assert _grid_problems(dashboard, uids) == []
    panels = {"default": 2, "added-sensor": 3, "no-telegraf": 0}[shape]
    assert len(dashboard["panels"]) == panels


def _set(path: str, value: Any) -> Callable[[Any], None]:
    def change(document: Any) -> None:
        *parents, last = path.split("/")
        for key in parents:
            document = document[int(key) if key.isdigit() else key]
        document[int(last) if last.isdigit() else last] = value

    return change


def _drop(path: str) -> Callable[[Any], None]:
    def change(document: Any) -> None:
        *parents, last = path.split("/")
        for key in parents:
            document = document[int(key) if key.isdigit() else key]
        del document[last]

    return change


@pytest.mark.parametrize(
    ("which", "change", "expected"),
    [
        ("dashboard", _set("panels/0/gridPos/w", 30), "panels/0/gridPos/w"),
        ("dashboard", _set("panel", []), "panel"),
        ("dashboard", _set("refresh", "often"), "refresh"),
        ("dashboard", _set("panels/0/targets/0/refId", ""), "panels/0/targets/0/refId"),
        ("datasources", _drop("datasources/0/secureJsonData"), "datasources/0"),
        ("datasources", _set("datasources/0/jsonData/version", "flux"), "datasources/0"),
        ("datasources", _set("datasources/0/access", "server"), "datasources/0/access"),
        ("dashboard-providers", _set("providers/0/options/path", "dashboards"), "providers/0"),
    ],
)  # fmt: skip
def test_a_document_grafana_would_reject_or_ignore_fails_its_schema(
    tmp_path: Path, which: str, change: Callable[[Any], None], expected: str
) -> None:
    """The schemas are not vacuous: one wrong key or value in each file is caught."""
    datasources, dashboards, dashboard = _provisioning(tmp_path, "default")
    documents = {
        "datasources": datasources,
        "dashboard-providers": dashboards,
        "dashboard": dashboard,
    }
    document = copy.deepcopy(documents[which])
    change(document)
    errors = _errors(which, document)
    assert any(expected in error for error in errors), errors
