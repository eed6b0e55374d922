"""A reading published to the node's Mosquitto is a point in the node's InfluxDB.

The chart's own pods with the images built here (``make images``): Mosquitto
(Debian's package), one Telegraf per default sensor (built from source with
the chart's plugins) and InfluxDB (1.8 from source, set up from the chart's
``DOCKER_INFLUXDB_INIT_*``; docs/deploy.md, "This machine: make cluster").
A device logs in to the broker with the chart's generated Mosquitto
credentials through ``kubectl port-forward``, as docs/deploy.md tells a user
to, and reads back with the token Telegraf is given, from the Secret the chart names.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import paho.mqtt.publish as mqtt_publish

from dtpoc_local import waiting
from tests.cluster._datastack import NS, RELEASE, forward, image_of, secret, workload
from tests.cluster.helpers import Platform

POINT_TIMEOUT = 120.0
"""Telegraf gathers and flushes every 10 s (the chart's defaults); a pod may still be connecting."""

#: The original's reading shape, one per default sensor (measurement, field, topic).
SENSORS = {
    "light": ("light_reading", "lux", "sensors/light/ward-1", 312.5),
    "temp": ("temperature_reading", "temp", "sensors/temperature/ward-1", 21.25),
}
TIME = "2024-07-19T10:00:00.000Z"
TIME_NS = 1721383200 * 10**9


def _env_secret(container: dict[str, Any], variable: str) -> tuple[str, str]:
    """The Secret and key a container's environment variable comes from."""
    (entry,) = [e for e in container["env"] if e["name"] == variable]
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def _connected(platform: Platform, sensor: str) -> bool:
    """Telegraf logs ``Connected [tcp://...]`` once its MQTT input has subscribed."""
    logs = platform.kubectl("-n", NS, "logs", f"deploy/{RELEASE}-telegraf-{sensor}")
    return "Connected [" in logs


def _points(influx: int, *, token: str, measurement: str) -> list[dict[str, Any]]:
    """InfluxQL on the bucket the chart names, with Telegraf's own token."""
    answer = httpx.get(
        f"http://127.0.0.1:{influx}/query",
        params={"db": "default", "epoch": "ns", "q": f'SELECT * FROM "{measurement}"'},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    answer.raise_for_status()
    (result,) = answer.json()["results"]
    rows = []
    for series in result.get("series", []):
        rows += [dict(zip(series["columns"], row, strict=True)) for row in series["values"]]
    return rows


def test_the_chart_runs_its_sensor_half_on_the_images_built_here(platform: Platform) -> None:
    images = {
        "mosquitto": image_of(workload(platform, "deployment", f"{RELEASE}-mosquitto")),
        "influxdb": image_of(workload(platform, "statefulset", f"{RELEASE}-influxdb")),
    }
    for sensor in SENSORS:
        telegraf = workload(platform, "deployment", f"{RELEASE}-telegraf-{sensor}")
        images[f"telegraf-{sensor}"] = image_of(telegraf)
        assert telegraf["status"].get("readyReplicas") == 1, telegraf["status"]
    assert images == {
        "mosquitto": platform.images["mosquitto"],
        "influxdb": platform.images["influxdb"],
        **{f"telegraf-{s}": platform.images["telegraf"] for s in SENSORS},
    }


def test_a_reading_published_to_the_broker_reaches_influxdb_with_the_charts_credentials(
    platform: Platform,
) -> None:
    mqtt_login = secret(platform, f"{RELEASE}-mosquitto-auth")
    telegraf = workload(platform, "deployment", f"{RELEASE}-telegraf-light")
    token_secret, key = _env_secret(
        telegraf["spec"]["template"]["spec"]["containers"][0], "INFLUX_TOKEN"
    )
    token = secret(platform, token_secret)[key]
    for sensor in SENSORS:
        waiting.wait_for(
            lambda s=sensor: _connected(platform, s),  # type: ignore[misc]
            timeout=POINT_TIMEOUT,
            what=f"the {sensor} Telegraf to connect to the broker",
        )
    with (
        forward(platform, f"{RELEASE}-mosquitto", 1883) as mqtt_port,
        forward(platform, f"{RELEASE}-influxdb", 8086) as influx_port,
    ):
        for _measurement, field, topic, value in SENSORS.values():
            reading = {"timestamp": TIME, field: value, "machine": "ward-1"}
            mqtt_publish.single(
                topic,
                json.dumps(reading),
                qos=1,
                hostname="127.0.0.1",
                port=mqtt_port,
                auth={"username": mqtt_login["username"], "password": mqtt_login["password"]},
            )
        for measurement, field, _topic, value in SENSORS.values():
            rows = waiting.wait_for(
                lambda m=measurement: _points(influx_port, token=token, measurement=m) or None,  # type: ignore[misc]
                timeout=POINT_TIMEOUT,
                what=f"a point of {measurement} in the node's InfluxDB",
                details=lambda: platform.kubectl(
                    "-n", NS, "logs", f"deploy/{RELEASE}-telegraf-light"
                ),
            )
            assert rows == [{"time": TIME_NS, field: value, "machine": "ward-1"}]
        wrong = httpx.get(
            f"http://127.0.0.1:{influx_port}/query",
            params={"db": "default", "q": 'SELECT * FROM "light_reading"'},
            headers={"Authorization": f"Token {mqtt_login['username']}:{mqtt_login['password']}"},
            timeout=30,
        )
        assert wrong.status_code == 401, "InfluxDB answers only the chart's credentials"
