"""docs/deploy.md's "Add a sensor", applied as written on the chart's real servers.

The section's values file is rendered with the chart (what ``helm upgrade -f``
applies), its ``mosquitto_pub`` line is published with the arguments it
gives, and InfluxDB must then hold exactly the point the section prints in
line protocol; its Flux query is asked as written where the server has Flux
(2.x; the 1.8 of this machine runs without it, so there the query's bucket
and measurement are checked and the points read with InfluxQL). A change to the
doc that stops working, or to the chart that breaks the doc, fails here.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from dtpoc_local.sensors import stack
from tests.chart import chart
from tests.sensors import devices

pytestmark = pytest.mark.slow

DOC = chart.REPO_ROOT / "docs" / "deploy.md"


def _section() -> str:
    text = DOC.read_text()
    start = text.index("\n## Add a sensor\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(section: str, language: str) -> list[str]:
    """The fenced code blocks of ``language`` ("" for a bare fence), in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    current_language = ""
    for line in section.splitlines():
        if line.startswith("```") and current is None:
            current, current_language = [], line[3:].strip()
        elif line.startswith("```"):
            if current_language == language and current is not None:
                blocks.append("".join(f"{text}\n" for text in current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _publish_args(section: str) -> dict[str, str]:
    (bash,) = _blocks(section, "bash")
    (line,) = [line for line in bash.splitlines() if line.startswith("mosquitto_pub ")]
    args = shlex.split(line)[1:]
    return dict(zip(args[::2], args[1::2], strict=True))


def _line_protocol(line: str) -> stack.Point:
    """One line of InfluxDB line protocol, without escapes (enough for the doc's)."""
    series, field_set, timestamp = line.split(" ")
    measurement, *tag_pairs = series.split(",")
    fields: dict[str, object] = {}
    for pair in field_set.split(","):
        key, value = pair.split("=", 1)
        fields[key] = int(value[:-1]) if value.endswith("i") else float(value)
    return stack.Point(
        measurement=measurement,
        tags=dict(pair.split("=", 1) for pair in tag_pairs),
        fields=fields,
        time_ns=int(timestamp),
    )


def test_add_a_sensor_as_the_deploy_doc_says(tmp_path: Path) -> None:
    section = _section()
    (values_text,) = _blocks(section, "yaml")
    values = tmp_path / "my-sensors.yaml"
    values.write_text(values_text)
    sensors = yaml.safe_load(values_text)["telegraf"]["sensors"]
    # The file keeps the defaults as the section says (lists replace in Helm).
    defaults = chart.merged_values()["telegraf"]["sensors"]
    assert sensors[: len(defaults)] == defaults
    publish = _publish_args(section)
    # It logs in with the broker's credentials and asks for QoS 1.
    assert {"-u", "-P", "-t", "-m"} <= set(publish) and publish["-q"] == "1"
    (expected_line,) = [line for line in _blocks(section, "")[0].splitlines() if line]
    expected = _line_protocol(expected_line)
    (flux,) = _blocks(section, "flux")

    agent = stack.agent_values(tmp_path / "agent.yaml")
    with stack.running([values, agent], workdir=tmp_path) as run:
        assert sorted(run.telegrafs) == sorted(s["name"] for s in sensors)
        with devices.publisher(run.broker, login=run.login()) as device:
            device.publish(publish["-t"], publish["-m"], qos=int(publish["-q"]))
        points = run.wait_for_points(expected.measurement, 1)
        if run.influx.major >= 2:
            points = stack.points_from_csv(run.influx.query_csv(flux))
        else:
            # 1.8 here runs without Flux (docs/dependencies.md): the query's bucket and
            # filter are checked against what it was asked instead.
            assert f'from(bucket: "{run.influx.setup.bucket}")' in flux
            assert f'r._measurement == "{expected.measurement}"' in flux
        assert points == [expected]
