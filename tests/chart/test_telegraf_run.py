"""Each rendered telegraf.conf, run by the real Telegraf (built from source, see build-telegraf).

Telegraf reads the exact file the chart renders for a sensor (only the
broker, InfluxDB addresses and ports are changed through values, as a user
would), refuses it if any option is unknown, and must turn a sensor message
from the MQTT broker into the point the sensor declares, written to InfluxDB
with the token from its environment. Mosquitto and InfluxDB are played by
the loopback doubles of :mod:`tests.chart.doubles`.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dtpoc_local import binaries, ports, processes
from tests.chart import chart
from tests.chart.doubles import InfluxWriteDouble, MqttBrokerDouble, Write

pytestmark = pytest.mark.slow

BUILD_SCRIPT = Path(__file__).with_name("build-telegraf")
SENSOR_LABEL = "dtpoc.eng.cam.ac.uk/sensor"

# One reading as the original's sensors publish it (both sensors read the same topic tree).
READING = {"timestamp": "2024-07-19T10:00:00.000Z", "lux": 312.5, "temp": 21.25, "machine": "m-42"}
READING_NS = 1721383200 * 10**9
IN_CLUSTER_BROKER = "tcp://dtpoc-mosquitto.dtpoc.svc.cluster.local:1883"


@pytest.fixture(scope="session")
def telegraf_bin() -> Path:
    """Telegraf of the chart's image tag, built from source with the sensors' plugins only."""
    tag = str(chart.merged_values()["telegraf"]["image"]["tag"])
    version = tag if tag.startswith("v") else f"v{tag}"
    path = binaries.cache_dir() / "bin" / f"telegraf-{version}" / "telegraf"
    if not path.exists():
        result = subprocess.run([str(BUILD_SCRIPT), version], check=False)
        assert result.returncode == 0, f"{BUILD_SCRIPT} {version} failed"
    return path


def _configs(rendered: chart.Rendered) -> dict[str, str]:
    return {
        cm["metadata"]["labels"][SENSOR_LABEL]: cm["data"]["telegraf.conf"]
        for cm in rendered.of_kind("ConfigMap")
        if SENSOR_LABEL in cm["metadata"].get("labels", {})
    }


@pytest.fixture
def doubles() -> Iterator[tuple[MqttBrokerDouble, InfluxWriteDouble]]:
    messages = [
        ("CamDT/DC1/IfM/lab-1", json.dumps(READING).encode()),
        ("sensors/light/lab-1", json.dumps({**READING, "temp": 99.0}).encode()),
        ("sensors/temperature/lab-1", json.dumps({**READING, "lux": 99.0}).encode()),
        ("elsewhere/lab-1", json.dumps({**READING, "lux": 1.0}).encode()),
    ]
    with MqttBrokerDouble(messages) as broker, InfluxWriteDouble() as influx:
        yield broker, influx


def _run_until_written(
    telegraf_bin: Path, config: str, workdir: Path, influx: InfluxWriteDouble, *, health: int
) -> tuple[Write, str]:
    """Run Telegraf on ``config`` until InfluxDB got a point; return it and the health answer."""
    path = workdir / "telegraf.conf"
    path.write_text(config)
    token = "tok-" + path.parent.name
    server = processes.ServerProcess(
        name="telegraf",
        argv=[str(telegraf_bin), "--config", str(path)],
        log_path=workdir / "telegraf.log",
        env={"INFLUX_TOKEN": token, "MQTT_USERNAME": "sensor-user", "MQTT_PASSWORD": "pw-1"},
    ).start()
    try:
        server.wait_ready(lambda: bool(influx.writes), timeout=60, what="a write to InfluxDB")
        with urllib.request.urlopen(f"http://{ports.LOOPBACK}:{health}/", timeout=5) as answer:
            status = str(answer.status)
    except urllib.error.HTTPError as error:
        status = str(error.code)
    finally:
        server.stop()
    write = influx.writes[0]
    assert write.authorization == f"Token {token}"
    return write, status


@pytest.mark.parametrize("shape", ["default", "public-broker"])
def test_each_sensors_telegraf_writes_the_point_its_values_declare(
    shape: str,
    telegraf_bin: Path,
    doubles: tuple[MqttBrokerDouble, InfluxWriteDouble],
    tmp_path: Path,
) -> None:
    broker, influx = doubles
    health = ports.free_port()
    files = chart.SHAPES[shape]
    sensors = chart.merged_values(files)["telegraf"]["sensors"]
    public = [s["mqtt"]["servers"] for s in sensors if s["mqtt"]["servers"]]
    overrides = tmp_path / "local.yaml"
    overrides.write_text(
        yaml.safe_dump(
            {
                "telegraf": {
                    "influxdb": {"url": influx.url},
                    "agent": {"interval": "1s", "flushInterval": "1s"},
                    "healthPort": health,
                    # Outside brokers are pointed at the double as a user would.
                    "sensors": [
                        {**s, "mqtt": {**s["mqtt"], "servers": [broker.url]}}
                        if s["mqtt"]["servers"]
                        else s
                        for s in sensors
                    ],
                }
            }
        )
    )
    configs = _configs(chart.render([*files, overrides]))
    expected = {
        "light": f"light_reading,machine=m-42 lux=312.5 {READING_NS}",
        "temp": f"temperature_reading,machine=m-42 temp=21.25 {READING_NS}",
    }
    assert sorted(configs) == sorted(expected)
    for name, line in expected.items():
        workdir = tmp_path / name
        workdir.mkdir()
        influx.writes.clear()
        # The release's broker is pointed at the double as the only change.
        config = configs[name].replace(IN_CLUSTER_BROKER, broker.url)
        write, health_status = _run_until_written(
            telegraf_bin, config, workdir, influx, health=health
        )
        assert write.lines == [line], name
        assert write.query["org"] == ["camdt"] and write.query["bucket"] == ["default"]
        assert health_status == "200"
    subscriptions = {f for c in broker.connections for f, _ in c.subscriptions}
    if public:
        # The public broker: no credentials, the original's topic tree.
        assert all(c.username is None for c in broker.connections)
        assert subscriptions == {"CamDT/DC1/IfM/#"}
    else:
        # The default: this release's Mosquitto, logged in with its credentials.
        assert all((c.username, c.password) == ("sensor-user", "pw-1") for c in broker.connections)
        assert subscriptions == {"sensors/light/#", "sensors/temperature/#"}


def test_a_sensor_on_the_releases_broker_logs_in_with_its_credentials(
    telegraf_bin: Path,
    doubles: tuple[MqttBrokerDouble, InfluxWriteDouble],
    tmp_path: Path,
) -> None:
    broker, influx = doubles
    health = ports.free_port()
    sensor = {
        "name": "ward",
        "mqtt": {"servers": [], "topics": ["CamDT/+/IfM/+"], "qos": 1, "topicTag": "topic"},
        "measurement": "ward_reading",
        "timestamp": {"path": "timestamp", "format": "2006-01-02T15:04:05.000Z"},
        "fields": [{"path": "temp", "type": "float", "rename": "celsius"}],
        "tags": [{"path": "machine"}],
    }
    overrides = tmp_path / "ward.yaml"
    overrides.write_text(
        yaml.safe_dump(
            {
                "telegraf": {
                    "influxdb": {"url": influx.url},
                    "agent": {"interval": "1s", "flushInterval": "1s"},
                    "healthPort": health,
                    "sensors": [sensor],
                }
            }
        )
    )
    config = _configs(chart.render([overrides]))["ward"]
    # Rendered for the in-cluster Mosquitto; pointed at the double as the only change.
    assert IN_CLUSTER_BROKER in config
    write, _ = _run_until_written(
        telegraf_bin, config.replace(IN_CLUSTER_BROKER, broker.url), tmp_path, influx, health=health
    )
    assert write.lines == [
        f"ward_reading,machine=m-42,topic=CamDT/DC1/IfM/lab-1 celsius=21.25 {READING_NS}"
    ]
    (connection,) = broker.connections
    assert (connection.username, connection.password) == ("sensor-user", "pw-1")
    assert connection.subscriptions == [("CamDT/+/IfM/+", 1)]


def test_telegraf_refuses_a_config_with_an_unknown_option(
    telegraf_bin: Path, tmp_path: Path
) -> None:
    config = _configs(chart.render())["light"].replace("optional = true", "optionall = true", 1)
    path = tmp_path / "telegraf.conf"
    path.write_text(config)
    result = subprocess.run(
        [str(telegraf_bin), "--config", str(path), "--test"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"INFLUX_TOKEN": "x", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode != 0
    assert "optionall" in result.stderr + result.stdout
