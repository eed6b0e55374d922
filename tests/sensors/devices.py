"""A sensor device for the tests: paho-mqtt publishing to the stack's broker with QoS 1."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from dtpoc_local import ports, waiting
from dtpoc_local.sensors.stack import Mosquitto


class Publisher:
    """A sensor device: an MQTT 3.1.1 client that publishes and awaits each PUBACK."""

    def __init__(self, broker: Mosquitto, *, login: tuple[str, str] | None) -> None:
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, clean_session=True
        )
        if login is not None:
            self._client.username_pw_set(*login)
        self._client.connect(ports.LOOPBACK, broker.port, keepalive=30)
        self._client.loop_start()
        waiting.wait_for(self._client.is_connected, timeout=30, what="the publisher to connect")

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1) -> None:
        info = self._client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=30)
        if not info.is_published():
            raise AssertionError(f"the broker did not acknowledge {topic}")

    def publish_json(self, topic: str, reading: dict[str, Any], *, qos: int = 1) -> None:
        self.publish(topic, json.dumps(reading), qos=qos)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextlib.contextmanager
def publisher(broker: Mosquitto, *, login: tuple[str, str] | None) -> Iterator[Publisher]:
    client = Publisher(broker, login=login)
    try:
        yield client
    finally:
        client.close()
