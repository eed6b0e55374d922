"""The Telegraf sensors: one ConfigMap + Deployment per entry of telegraf.sensors.

Each rendered telegraf.conf must be TOML that Telegraf would read as the
sensor says: the MQTT consumer on the sensor's brokers and topics parsing
JSON (json_v2) into the sensor's measurement, fields and tags, written to
InfluxDB v2 with a token from the environment.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import chart

SENSOR_LABEL = "dtpoc.eng.cam.ac.uk/sensor"


def _configs(rendered: chart.Rendered) -> dict[str, dict[str, Any]]:
    """Sensor name -> parsed telegraf.conf."""
    return {
        cm["metadata"]["labels"][SENSOR_LABEL]: tomllib.loads(cm["data"]["telegraf.conf"])
        for cm in rendered.of_kind("ConfigMap")
        if SENSOR_LABEL in cm["metadata"].get("labels", {})
    }


def _check_matches(config: dict[str, Any], sensor: dict[str, Any], *, broker: list[str]) -> None:
    (mqtt,) = config["inputs"]["mqtt_consumer"]
    assert mqtt["servers"] == broker
    assert mqtt["topics"] == sensor["mqtt"]["topics"]
    assert mqtt["qos"] == sensor["mqtt"].get("qos", 0)
    assert mqtt["data_format"] == "json_v2"
    # QoS 1/2: the broker keeps the session (and the readings) while Telegraf is away.
    durable = sensor["mqtt"].get("qos", 0) > 0
    assert mqtt["persistent_session"] is durable
    assert ("client_id" in mqtt) is durable
    if durable:
        assert mqtt["client_id"] == f"dtpoc-dtpoc-telegraf-{sensor['name']}"
    (parser,) = mqtt["json_v2"]
    assert parser["measurement_name"] == sensor["measurement"]
    if "timestamp" in sensor:
        assert parser["timestamp_path"] == sensor["timestamp"]["path"]
        assert parser["timestamp_format"] == sensor["timestamp"]["format"]
    assert [(f["path"], f["type"]) for f in parser["field"]] == [
        (f["path"], f.get("type", "float")) for f in sensor["fields"]
    ]
    assert [(t["path"], t["type"]) for t in parser.get("tag", [])] == [
        (t["path"], t.get("type", "string")) for t in sensor.get("tags", [])
    ]
    (influx,) = config["outputs"]["influxdb_v2"]
    assert influx["token"] == "${INFLUX_TOKEN}"
    assert influx["urls"] == ["http://dtpoc-influxdb.dtpoc.svc.cluster.local:8086"]
    assert (influx["organization"], influx["bucket"]) == ("camdt", "default")
    assert config["outputs"]["health"][0]["service_address"] == "http://:8080"


#: This release's Mosquitto, where a sensor without servers reads.
IN_CLUSTER_BROKER = ["tcp://dtpoc-mosquitto.dtpoc.svc.cluster.local:1883"]


@pytest.mark.parametrize("name", ["default", "docker-desktop", "public-broker"])
def test_each_sensor_of_the_values_is_a_telegraf_reading_its_topics(name: str) -> None:
    files = chart.SHAPES[name]
    rendered = chart.render(files)
    sensors = chart.merged_values(files)["telegraf"]["sensors"]
    configs = _configs(rendered)
    assert sorted(configs) == sorted(s["name"] for s in sensors)
    for sensor in sensors:
        broker = sensor["mqtt"]["servers"] or IN_CLUSTER_BROKER
        _check_matches(configs[sensor["name"]], sensor, broker=broker)
        deployment = rendered.named("Deployment", f"dtpoc-telegraf-{sensor['name']}")
        volume = chart.pod_spec(deployment)["volumes"][0]
        assert volume["configMap"]["name"] == f"dtpoc-telegraf-{sensor['name']}"
        (container,) = chart.containers(deployment)
        token = next(e for e in container["env"] if e["name"] == "INFLUX_TOKEN")
        assert token["valueFrom"]["secretKeyRef"] == {
            "name": "dtpoc-influxdb-auth",
            "key": "admin-token",
        }


def test_the_originals_sensors_read_the_releases_broker_with_its_credentials() -> None:
    rendered = chart.render()
    configs = _configs(rendered)
    assert sorted(configs) == ["light", "temp"]
    for name, measurement, field in (
        ("light", "light_reading", "lux"),
        ("temp", "temperature_reading", "temp"),
    ):
        mqtt = configs[name]["inputs"]["mqtt_consumer"][0]
        # Nobody outside the cluster writes into InfluxDB by default.
        assert mqtt["servers"] == IN_CLUSTER_BROKER
        assert (mqtt["username"], mqtt["password"]) == ("${MQTT_USERNAME}", "${MQTT_PASSWORD}")
        assert mqtt["json_v2"][0]["measurement_name"] == measurement
        assert mqtt["json_v2"][0]["field"][0]["path"] == field
        (container,) = chart.containers(rendered.named("Deployment", f"dtpoc-telegraf-{name}"))
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert refs["MQTT_PASSWORD"] == {"name": "dtpoc-mosquitto-auth", "key": "password"}
    assert "test.mosquitto.org" not in rendered.text


def test_the_public_broker_is_an_example_that_warns_anyone_can_publish() -> None:
    text = chart.PUBLIC_BROKER.read_text()
    assert "Anyone on the internet can publish" in text
    configs = _configs(chart.render([chart.PUBLIC_BROKER]))
    assert sorted(configs) == ["light", "temp"]
    for config in configs.values():
        mqtt = config["inputs"]["mqtt_consumer"][0]
        assert mqtt["servers"] == ["tcp://test.mosquitto.org:1883"]
        assert mqtt["topics"] == ["CamDT/DC1/IfM/#"]
        # A public broker gets no credentials of this release.
        assert "username" not in mqtt and "password" not in mqtt


WARD_SENSOR = {
    "name": "ward-co2",
    "mqtt": {"topics": ["wards/+/co2", 'odd "quoted" topic\\#'], "qos": 2, "topicTag": "topic"},
    "measurement": "co2 reading",
    "timestamp": {"path": "ts", "format": "unix_ms"},
    "fields": [{"path": "ppm", "type": "int"}, {"path": "ok", "type": "bool"}],
    "tags": [{"path": "ward"}, {"path": "bed", "type": "string"}],
}


def test_adding_a_sensor_is_a_values_change(tmp_path: Path) -> None:
    defaults = chart.merged_values()["telegraf"]["sensors"]
    extra = tmp_path / "sensors.yaml"
    extra.write_text(yaml.safe_dump({"telegraf": {"sensors": [*defaults, WARD_SENSOR]}}))
    rendered = chart.render([extra])
    configs = _configs(rendered)
    assert sorted(configs) == ["light", "temp", "ward-co2"]
    # No servers: this release's Mosquitto, with its generated credentials from the environment.
    _check_matches(configs["ward-co2"], WARD_SENSOR, broker=IN_CLUSTER_BROKER)
    mqtt = configs["ward-co2"]["inputs"]["mqtt_consumer"][0]
    assert (mqtt["username"], mqtt["password"]) == ("${MQTT_USERNAME}", "${MQTT_PASSWORD}")
    assert mqtt["topic_tag"] == "topic"
    (container,) = chart.containers(rendered.named("Deployment", "dtpoc-telegraf-ward-co2"))
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs["MQTT_USERNAME"] == {"name": "dtpoc-mosquitto-auth", "key": "username"}
    assert refs["MQTT_PASSWORD"] == {"name": "dtpoc-mosquitto-auth", "key": "password"}


def test_a_changed_sensor_restarts_only_its_own_telegraf(tmp_path: Path) -> None:
    sensors = chart.merged_values()["telegraf"]["sensors"]
    changed = [{**sensors[0], "measurement": "lux_reading"}, sensors[1]]
    extra = tmp_path / "changed.yaml"
    extra.write_text(yaml.safe_dump({"telegraf": {"sensors": changed}}))

    def checksums(rendered: chart.Rendered) -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
            for d in rendered.of_kind("Deployment")
            if "telegraf" in d["metadata"]["name"]
        }

    before, after = checksums(chart.render()), checksums(chart.render([extra]))
    assert before["dtpoc-telegraf-light"] != after["dtpoc-telegraf-light"]
    assert before["dtpoc-telegraf-temp"] == after["dtpoc-telegraf-temp"]


def test_two_sensors_with_one_name_are_refused(tmp_path: Path) -> None:
    sensors = chart.merged_values()["telegraf"]["sensors"]
    extra = tmp_path / "twice.yaml"
    extra.write_text(yaml.safe_dump({"telegraf": {"sensors": [sensors[0], sensors[0]]}}))
    assert 'the name "light" is used twice' in chart.render_error([extra])


def test_grafana_dashboard_has_a_panel_per_sensor(tmp_path: Path) -> None:
    import json

    defaults = chart.merged_values()["telegraf"]["sensors"]
    extra = tmp_path / "sensors.yaml"
    extra.write_text(yaml.safe_dump({"telegraf": {"sensors": [*defaults, WARD_SENSOR]}}))
    configmap = chart.render([extra]).named("ConfigMap", "dtpoc-grafana")
    dashboard = json.loads(configmap["data"]["sensors.json"])
    queries = [p["targets"][0]["query"] for p in dashboard["panels"]]
    assert len(queries) == 3
    for query, measurement in zip(
        queries, ["light_reading", "temperature_reading", "co2 reading"], strict=True
    ):
        assert f'r._measurement == "{measurement}"' in query
    datasources = yaml.safe_load(configmap["data"]["datasources.yaml"])
    (influx,) = datasources["datasources"]
    assert influx["uid"] == "dtpoc-influxdb"
    assert influx["secureJsonData"]["token"] == "$INFLUX_TOKEN"
