"""The chart, given ``tools/images/build --chart-values``, runs only images built here.

On a machine without a registry a pod whose image must be pulled never
starts; every container of the rendered chart must name either the dtpoc
image (built under the chart's own name) or one of the local data-stack
images — except the upstream-only parts (InfluxDB, Grafana), which these
values leave alone and which are listed here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.chart import chart

REPO = Path(__file__).resolve().parents[2]
NOT_BUILT_HERE = ("influxdb", "grafana")


def _local_values(tmp_path: Path) -> Path:
    text = subprocess.run(
        [sys.executable, "-m", "tools.images", "--chart-values"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = tmp_path / "local-images.yaml"
    path.write_text(text)
    return path


def test_local_values_put_every_built_component_on_a_local_image(tmp_path: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "tools.images", "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    local = {line.split()[1] for line in listed.splitlines()}
    rendered = chart.render([_local_values(tmp_path)])
    unresolved = []
    for workload in rendered.workloads():
        name = workload["metadata"]["name"]
        for init in (False, True):
            for container in chart.containers(workload, init=init):
                if container["image"] not in local and not name.endswith(NOT_BUILT_HERE):
                    unresolved.append((name, container["name"], container["image"]))
    assert unresolved == []
    images = {
        workload["metadata"]["name"]: {c["image"] for c in chart.containers(workload)}
        for workload in rendered.workloads()
    }
    assert images["dtpoc-mosquitto"] == {"localhost/dtpoc-mosquitto:bookworm"}
    assert any(i.startswith("localhost/dtpoc-telegraf:") for i in images["dtpoc-telegraf-light"])
    assert images["dtpoc-mongo-express"] == {"localhost/dtpoc-mongo-express:1.0.2"}
