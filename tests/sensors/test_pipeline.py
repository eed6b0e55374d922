"""A reading published to the broker is a point in InfluxDB: the chart's sensor half, real servers.

Mosquitto, InfluxDB and one Telegraf per sensor run from one render of the
chart (:mod:`tests.sensors.stack`): its broker config and password file, its
generated credentials and token, each sensor's ``telegraf.conf``. A device
publishes readings in the original's JSON shape with QoS 1; the tests read
back what a Grafana panel would show: measurement, fields with their types,
tags and the reading's own timestamp.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from dtpoc_local import ports, waiting
from dtpoc_local.sensors import stack
from dtpoc_local.sensors.chartparts import ChartParts
from tests.chart import chart
from tests.sensors import devices

pytestmark = pytest.mark.slow

#: The original's reading (one JSON object per message; both sensors read the same shape).
TIME = "2024-07-19T10:00:00.000Z"
TIME_NS = 1721383200 * 10**9
TOPIC = "sensors/light/lab-1"


def reading(*, ms: int = 0, **values: Any) -> dict[str, Any]:
    return {"timestamp": f"2024-07-19T10:00:00.{ms:03d}Z", **values}


def _ns(ms: int) -> int:
    return TIME_NS + ms * 10**6


def _summary(points: list[stack.Point]) -> list[tuple[dict[str, str], dict[str, Any], int]]:
    return [(p.tags, p.fields, p.time_ns) for p in points]


def test_each_default_sensor_turns_its_readings_into_its_points(tmp_path: Path) -> None:
    values = stack.agent_values(tmp_path / "agent.yaml")
    with stack.running([values], workdir=tmp_path) as run:
        assert sorted(run.telegrafs) == ["light", "temp"]
        with devices.publisher(run.broker, login=run.login()) as device:
            device.publish_json("sensors/light/lab-1", reading(lux=312.5, machine="lab-1"))
            device.publish_json("sensors/light/lab-2", reading(ms=250, lux=0, machine="lab-2"))
            device.publish_json("sensors/temperature/lab-1", reading(temp=21.25, machine="lab-1"))
            # Outside both topic trees: no sensor reads it.
            device.publish_json("elsewhere/lab-1", reading(ms=999, lux=1.0, temp=1.0, machine="x"))
            late = reading(ms=500, temp=-3.5, machine="z")
            device.publish_json("sensors/temperature/lab-9", late)
        light = run.wait_for_points("light_reading", 2)
        temp = run.wait_for_points("temperature_reading", 2)
        assert _summary(light) == [
            ({"machine": "lab-1"}, {"lux": 312.5}, TIME_NS),
            ({"machine": "lab-2"}, {"lux": 0.0}, _ns(250)),
        ]
        assert _summary(temp) == [
            ({"machine": "lab-1"}, {"temp": 21.25}, TIME_NS),
            ({"machine": "z"}, {"temp": -3.5}, _ns(500)),
        ]
        # Each Telegraf logged in with the chart's generated user, under its own session.
        username, _ = run.parts.mosquitto_login()
        for telegraf in run.telegrafs.values():
            assert f" as {telegraf.client_id} (p2, c0, k60, u'{username}')" in run.broker.log()


def test_a_sensor_added_through_values_only_gets_its_own_telegraf(tmp_path: Path) -> None:
    sensors = chart.merged_values()["telegraf"]["sensors"]
    ward = {
        "name": "ward",
        "mqtt": {"servers": [], "topics": ["CamDT/+/IfM/+"], "qos": 1, "topicTag": "topic"},
        "measurement": "ward_reading",
        "timestamp": {"path": "timestamp", "format": "2006-01-02T15:04:05.000Z"},
        "fields": [
            {"path": "temp", "type": "float", "rename": "celsius"},
            {"path": "beds", "type": "int"},
        ],
        "tags": [{"path": "machine"}],
    }
    values = tmp_path / "ward.yaml"
    import yaml

    values.write_text(yaml.safe_dump({"telegraf": {"sensors": [*sensors, ward]}}))
    agent = stack.agent_values(tmp_path / "agent.yaml")
    with stack.running([values, agent], workdir=tmp_path) as run:
        assert sorted(run.telegrafs) == ["light", "temp", "ward"]
        with devices.publisher(run.broker, login=run.login()) as device:
            device.publish_json("CamDT/DC1/IfM/lab-1", reading(temp=21.25, beds=12, machine="m-42"))
            # Two levels below IfM: outside the filter's single-level wildcard.
            device.publish_json("CamDT/DC1/IfM/lab-1/extra", reading(ms=1, temp=1.0, machine="m"))
            other = reading(ms=2, temp=19.5, beds=3, machine="q")
            device.publish_json("CamDT/DC2/IfM/lab-7", other)
        (first, second) = run.wait_for_points("ward_reading", 2)
        assert _summary([first, second]) == [
            (
                {"machine": "m-42", "topic": "CamDT/DC1/IfM/lab-1"},
                {"celsius": 21.25, "beds": 12},
                TIME_NS,
            ),
            (
                {"machine": "q", "topic": "CamDT/DC2/IfM/lab-7"},
                {"celsius": 19.5, "beds": 3},
                _ns(2),
            ),
        ]
        assert isinstance(first.fields["beds"], int)
        # The default sensors read other trees: nothing of this reached them.
        assert run.influx.points("light_reading") == []


def test_the_public_broker_example_reads_the_originals_topic_tree_anonymously(
    tmp_path: Path,
) -> None:
    agent = stack.agent_values(tmp_path / "agent.yaml")
    with stack.running([chart.PUBLIC_BROKER, agent], workdir=tmp_path, public_broker=True) as run:
        with devices.publisher(run.broker, login=None) as device:
            device.publish_json(
                "CamDT/DC1/IfM/lab-1", reading(lux=312.5, temp=21.25, machine="m-42")
            )
        # One message, read by both sensors: each keeps its own field.
        (light,) = run.wait_for_points("light_reading", 1)
        (temp,) = run.wait_for_points("temperature_reading", 1)
        assert _summary([light, temp]) == [
            ({"machine": "m-42"}, {"lux": 312.5}, TIME_NS),
            ({"machine": "m-42"}, {"temp": 21.25}, TIME_NS),
        ]
        assert "u'" not in run.broker.log()  # nobody logged in


def _connack(broker: stack.Mosquitto, login: tuple[str, str] | None) -> Any:
    """The broker's answer to a CONNECT with ``login``."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if login is not None:
        client.username_pw_set(*login)
    codes: list[Any] = []
    client.on_connect = lambda _c, _u, _f, code, _p: codes.append(code)
    client.connect(ports.LOOPBACK, broker.port)
    client.loop_start()
    try:
        waiting.wait_for(lambda: codes, timeout=30, what="the broker's CONNACK")
    finally:
        client.loop_stop()
        client.disconnect()
    return codes[0]


def test_the_releases_broker_refuses_anonymous_and_wrong_passwords(tmp_path: Path) -> None:
    parts = ChartParts.render()
    broker = stack.Mosquitto(parts, log_dir=tmp_path).start()
    try:
        username, password = parts.mosquitto_login()
        assert _connack(broker, None).is_failure
        assert _connack(broker, (username, password + "x")).is_failure
        assert not _connack(broker, (username, password)).is_failure
    finally:
        broker.close()


def test_a_malformed_reading_is_dropped_and_logged_and_the_next_one_arrives(
    tmp_path: Path,
) -> None:
    agent = stack.agent_values(tmp_path / "agent.yaml")
    with stack.running([agent], workdir=tmp_path) as run:
        light = run.telegrafs["light"]
        with devices.publisher(run.broker, login=run.login()) as device:
            device.publish("sensors/light/lab-1", b'{"timestamp": "' + TIME.encode() + b'", "lux"')
            device.publish_json("sensors/light/lab-1", {"timestamp": "yesterday", "lux": 5.0})
            device.publish("sensors/light/lab-1", b"\xff\xfe not json")
            waiting.wait_for(
                lambda: light.log().count("E! [inputs.mqtt_consumer]") >= 3,
                timeout=60,
                what="Telegraf to log the three malformed readings",
                details=light.log,
            )
            device.publish_json("sensors/light/lab-1", reading(ms=7, lux=9.5, machine="lab-1"))
        (point,) = run.wait_for_points("light_reading", 1)
        assert _summary([point]) == [({"machine": "lab-1"}, {"lux": 9.5}, _ns(7))]
        light.ensure_running()
        assert "yesterday" in light.log()


def test_a_broker_restart_loses_no_qos1_reading(tmp_path: Path) -> None:
    """Readings published while Telegraf is away wait in its persistent session.

    The broker stops (saving its sessions, as a pod's container restart does
    with its data volume) and starts again; Telegraf reconnects only at its
    next gather (the chart's 10 s interval), and the readings published in
    between are delivered when it does, then the ones published after.
    """
    agent = stack.agent_values(tmp_path / "agent.yaml", interval="10s", flush_interval="1s")
    with stack.running([agent], workdir=tmp_path) as run:
        light = run.telegrafs["light"]
        with devices.publisher(run.broker, login=run.login()) as device:
            device.publish_json("sensors/light/lab-1", reading(ms=0, lux=0.0, machine="m"))
        run.wait_for_points("light_reading", 1)
        connected = run.broker.connections(light.client_id)
        run.broker.stop()
        # Telegraf saw the broker go and tried once at a gather: the next try is ~10 s away.
        waiting.wait_for(
            lambda: "connection refused" in light.log(),
            timeout=60,
            what="Telegraf to fail a reconnect",
            details=light.log,
        )
        run.broker.start()
        with devices.publisher(run.broker, login=run.login()) as device:
            for ms in range(1, 6):
                device.publish_json(TOPIC, reading(ms=ms, lux=float(ms), machine="m"))
            assert run.broker.connections(light.client_id) == connected, (
                "Telegraf reconnected before the readings were published: the test proves nothing"
            )
            waiting.wait_for(
                lambda: run.broker.connections(light.client_id) > connected,
                timeout=60,
                what="Telegraf to reconnect",
                details=light.log,
            )
            for ms in range(6, 9):
                device.publish_json(TOPIC, reading(ms=ms, lux=float(ms), machine="m"))
        points = run.wait_for_points("light_reading", 9)
        assert [p.time_ns for p in points] == [_ns(ms) for ms in range(9)]
        assert [p.fields["lux"] for p in points] == [float(ms) for ms in range(9)]


def test_a_burst_beyond_the_brokers_default_queue_loses_no_reading(tmp_path: Path) -> None:
    """1,500 QoS-1 readings at once: Telegraf holds them unacknowledged until it writes.

    Mosquitto's default queue per client (1,000 beyond those in flight) dropped
    the rest of such a burst, each already acknowledged to the device; the
    chart's broker keeps 100,000.
    """
    count = 1500
    agent = stack.agent_values(tmp_path / "agent.yaml")
    with stack.running([agent], workdir=tmp_path) as run:
        with devices.publisher(run.broker, login=run.login()) as device:
            for i in range(count):
                minute, second = divmod(i, 60)
                stamp = f"2024-07-19T{10 + minute // 60:02d}:{minute % 60:02d}:{second:02d}.000Z"
                device.publish_json(TOPIC, {"timestamp": stamp, "lux": float(i), "machine": "b"})
        points = run.wait_for_points("light_reading", count, timeout=120)
        assert [p.fields["lux"] for p in points] == [float(i) for i in range(count)]
        assert "dropped" not in run.broker.log()


def test_telegraf_refuses_a_config_with_an_unknown_option(tmp_path: Path) -> None:
    parts = ChartParts.render()
    (light, _) = parts.sensors()
    path = tmp_path / "telegraf.conf"
    path.write_text(light.config.replace("optional = true", "optionall = true", 1))
    result = subprocess.run(
        [str(stack.telegraf_path(parts)), "--config", str(path), "--test"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"INFLUX_TOKEN": "x", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode != 0
    assert "optionall" in result.stderr + result.stdout
