"""What the chart renders for the sensor half, read as the pods would see it.

The servers of :mod:`dtpoc_local.sensors.stack` are configured from these parts
only: Mosquitto's ``mosquitto.conf`` and the password-file script of its init
container, InfluxDB's first-start settings (the image's ``DOCKER_INFLUXDB_INIT_*``
environment), each sensor's ``telegraf.conf`` and the environment its
Deployment gives Telegraf, with every ``secretKeyRef`` resolved against the
Secrets the same render generated. A credential therefore reaches a server
exactly as the chart wires it, or the test fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dtpoc_local.sensors import render as chart

SENSOR_LABEL = "dtpoc.eng.cam.ac.uk/sensor"


class ChartPartMissing(AssertionError):
    """The render lacks a part the sensor half needs (a chart change the tests must follow)."""


def resolve_env(container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """A container's environment with ``value`` and ``secretKeyRef`` entries resolved."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        try:
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
        except KeyError:
            raise ChartPartMissing(
                f"{item['name']} reads Secret {ref['name']} key {ref['key']}, "
                "which the render does not generate"
            ) from None
    return env


@dataclass(frozen=True)
class InfluxSetup:
    """The first start of the chart's InfluxDB: admin, organisation, bucket, token."""

    username: str
    password: str
    token: str
    organization: str
    bucket: str
    retention: str
    server_env: dict[str, str]
    """INFLUXD_* settings the StatefulSet gives the server itself."""


@dataclass(frozen=True)
class Sensor:
    """One entry of ``telegraf.sensors`` with its rendered config and environment."""

    values: dict[str, Any]
    config: str
    env: dict[str, str]

    @property
    def name(self) -> str:
        return str(self.values["name"])


@dataclass(frozen=True)
class ChartParts:
    """The sensor half of one ``helm template`` render."""

    rendered: chart.Rendered
    values: dict[str, Any]

    @classmethod
    def render(cls, values_files: Sequence[Path] = ()) -> ChartParts:
        return cls(rendered=chart.render(values_files), values=chart.merged_values(values_files))

    def _component(self, kind: str, component: str) -> dict[str, Any]:
        return self.rendered.named(kind, f"{self.rendered.release}-{component}")

    @property
    def secrets(self) -> dict[tuple[str, str], str]:
        return self.rendered.secret_values()

    def mosquitto_config(self) -> str:
        return str(self._component("ConfigMap", "mosquitto")["data"]["mosquitto.conf"])

    def mosquitto_password_step(self) -> tuple[str, dict[str, str]]:
        """The init container's shell script that writes the password file, and its env."""
        (init,) = chart.containers(self._component("Deployment", "mosquitto"), init=True)
        command = list(init["command"])
        if command[:2] != ["/bin/sh", "-ec"]:
            raise ChartPartMissing(f"the password-file step is no longer a shell script: {command}")
        return str(command[2]), resolve_env(init, self.secrets)

    def mosquitto_login(self) -> tuple[str, str]:
        """The username and password the chart generated for the release's broker."""
        _, env = self.mosquitto_password_step()
        return env["MQTT_USERNAME"], env["MQTT_PASSWORD"]

    def mosquitto_uid(self) -> tuple[int, int]:
        context = self.values["mosquitto"]["securityContext"]
        return int(context["runAsUser"]), int(context["runAsGroup"])

    def influx_setup(self) -> InfluxSetup:
        (container,) = chart.containers(self._component("StatefulSet", "influxdb"))
        env = resolve_env(container, self.secrets)
        if env.get("DOCKER_INFLUXDB_INIT_MODE") != "setup":
            raise ChartPartMissing("the InfluxDB StatefulSet no longer runs the image's setup")
        return InfluxSetup(
            username=env["DOCKER_INFLUXDB_INIT_USERNAME"],
            password=env["DOCKER_INFLUXDB_INIT_PASSWORD"],
            token=env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"],
            organization=env["DOCKER_INFLUXDB_INIT_ORG"],
            bucket=env["DOCKER_INFLUXDB_INIT_BUCKET"],
            retention=env.get("DOCKER_INFLUXDB_INIT_RETENTION", ""),
            server_env={k: v for k, v in env.items() if k.startswith("INFLUXD_")},
        )

    def sensors(self) -> list[Sensor]:
        """Every sensor of the values, in values order, with what its Deployment runs."""
        configs = {
            cm["metadata"]["labels"][SENSOR_LABEL]: str(cm["data"]["telegraf.conf"])
            for cm in self.rendered.of_kind("ConfigMap")
            if SENSOR_LABEL in cm["metadata"].get("labels", {})
        }
        envs = {
            d["metadata"]["labels"][SENSOR_LABEL]: resolve_env(
                next(chart.containers(d)), self.secrets
            )
            for d in self.rendered.of_kind("Deployment")
            if SENSOR_LABEL in d["metadata"].get("labels", {})
        }
        out = []
        for values in self.values["telegraf"]["sensors"]:
            name = values["name"]
            if name not in configs or name not in envs:
                raise ChartPartMissing(f"sensor {name!r} has no ConfigMap or Deployment")
            out.append(Sensor(values=values, config=configs[name], env=envs[name]))
        return out

    def in_cluster_url(self, component: str, port: int) -> str:
        """How a pod of this release names ``component`` (what a local run replaces)."""
        release, namespace = self.rendered.release, self.rendered.namespace
        return f"{release}-{component}.{namespace}.svc.cluster.local:{port}"
