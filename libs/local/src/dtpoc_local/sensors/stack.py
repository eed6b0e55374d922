"""The chart's sensor half on this machine: real Mosquitto, InfluxDB and Telegraf.

Each server runs from what the chart renders (:mod:`dtpoc_local.sensors.chartparts`),
changed only where a pod's world differs from a test's:

- **Mosquitto** (Debian's package, installed by ``tools/hostpkgs/install``):
  the rendered ``mosquitto.conf`` with the listener moved to a free loopback
  port and ``/mosquitto/auth`` and ``/mosquitto/data`` moved to a folder of the
  test; the password file written by the init container's own script. Run as
  the chart's uid when the tests run as root (Mosquitto would otherwise drop
  to its Debian user, as the pod never does).
- **InfluxDB** (``influxd`` of ``INFLUXDB_VERSION``, built from source by
  ``tools/testbin/build influxd``: 1.8, the newest pure-Go server, while the
  chart runs 2.7, see docs/dependencies.md): set up on first start with the
  admin, bucket and retention (2.x: also organisation and token) of the
  image's ``DOCKER_INFLUXDB_INIT_*`` variables.
- **Telegraf** (``tools/testbin/build-telegraf``, the chart's version): the
  rendered ``telegraf.conf`` byte for byte except the in-cluster broker
  address, with the environment its Deployment gives it.

Used by ``tests/sensors`` and ``bench/sensors.py``; devices publish with paho-mqtt there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import string
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dtpoc_local import binaries, ports, processes, waiting
from dtpoc_local.paths import REPO_ROOT
from dtpoc_local.sensors.chartparts import ChartParts, InfluxSetup, Sensor

READY_TIMEOUT = 180.0
TELEGRAF_BUILD_SCRIPT = REPO_ROOT / "tools" / "testbin" / "build-telegraf"
# The InfluxDB image's 1.x config (tools/images/influxdb/entrypoint.py fills it the same way).
INFLUXDB_V1_CONFIG = REPO_ROOT / "tools" / "images" / "influxdb" / "influxdb.conf.template"


def _replace_once(text: str, old: str, new: str, *, what: str) -> str:
    """Replace the one occurrence of ``old``; a chart that changed it fails loudly."""
    if text.count(old) != 1:
        raise AssertionError(f"{what}: expected exactly one {old!r} in:\n{text}")
    return text.replace(old, new)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((ports.LOOPBACK, port), 1):
        return True
    return False


# --- Mosquitto -------------------------------------------------------------------------------


class Mosquitto:
    """The release's broker: the chart's config and password file on a loopback port."""

    def __init__(self, parts: ChartParts, *, log_dir: Path, public: bool = False) -> None:
        """``public``: an open broker like the example's test.mosquitto.org, not the chart's."""
        self.port = ports.free_port()
        self._parts = parts
        self._log_path = log_dir / "mosquitto.log"
        # Not under pytest's tmp_path: that is root-only, and the broker runs as the chart's uid.
        self._dir = Path(tempfile.mkdtemp(prefix="dtpoc-mosquitto-"))
        self._server: processes.ServerProcess | None = None
        self._as_uid = os.geteuid() == 0
        self.public = public
        if public:
            (self._dir / "mosquitto.conf").write_text(
                f"listener {self.port} {ports.LOOPBACK}\nallow_anonymous true\n" + self._logging()
            )
            if self._as_uid:
                os.chown(self._dir, *parts.mosquitto_uid())
        else:
            self._write_config()

    @property
    def url(self) -> str:
        return f"tcp://{ports.LOOPBACK}:{self.port}"

    def _logging(self) -> str:
        """Logging only: also to a file (stdout is buffered until exit), with subscriptions.

        A test waits until a Telegraf has subscribed before it publishes (a reading
        before that reaches nobody), and reads connections from the same file.
        """
        kinds = ("error", "warning", "notice", "information", "subscribe")
        return f"log_dest file {self._dir / 'broker.log'}\n" + "".join(
            f"log_type {kind}\n" for kind in kinds
        )

    def _demote(self) -> list[str]:
        if not self._as_uid:
            return []
        uid, gid = self._parts.mosquitto_uid()
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]

    def _write_config(self) -> None:
        (self._dir / "auth").mkdir()
        (self._dir / "data").mkdir()
        config = self._parts.mosquitto_config()
        config = _replace_once(
            config, "listener 1883\n", f"listener {self.port} {ports.LOOPBACK}\n", what="listener"
        )
        config = config.replace("/mosquitto/auth/", f"{self._dir}/auth/")
        config = config.replace("/mosquitto/data/", f"{self._dir}/data/")
        config += "\n" + self._logging()
        if "/mosquitto/" in config:
            raise AssertionError(f"mosquitto.conf names a pod path not mapped here:\n{config}")
        (self._dir / "mosquitto.conf").write_text(config)
        if self._as_uid:
            uid, gid = self._parts.mosquitto_uid()
            for path in (self._dir, self._dir / "auth", self._dir / "data"):
                os.chown(path, uid, gid)
                path.chmod(0o700)
        # The init container's own script, with its volume mapped to this run's folder.
        script, env = self._parts.mosquitto_password_step()
        script = script.replace("/mosquitto/auth", str(self._dir / "auth"))
        subprocess.run(
            [*self._demote(), "/bin/sh", "-ec", script],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start(self) -> Mosquitto:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self._server = processes.ServerProcess(
            name="mosquitto",
            argv=[*self._demote(), mosquitto, "-c", str(self._dir / "mosquitto.conf")],
            log_path=self._log_path,
        ).start()
        self._server.wait_ready(
            lambda: _listening(self.port), timeout=READY_TIMEOUT, what="its MQTT listener"
        )
        return self

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its sessions and queued messages to its data folder."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self._dir / "broker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def subscriptions(self, topic_filter: str) -> int:
        """How many times a client subscribed to ``topic_filter`` (from the broker's log)."""
        return sum(1 for line in self.log().splitlines() if line.endswith(f" {topic_filter}"))

    def connections(self, client_id: str) -> int:
        """How many times ``client_id`` connected (``New client connected ... as <id>``)."""
        return self.log().count(f" as {client_id} ")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


# --- InfluxDB --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One point as InfluxDB returns it: what a Grafana panel would show."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, Any]
    time_ns: int


class InfluxDB:
    """InfluxDB of ``INFLUXDB_VERSION``, set up as the chart's image does on first start.

    2.x: the setup API with the chart's admin, organisation, bucket and token.
    1.x (the fallback the tests use while 2.x cannot be built here, see
    docs/dependencies.md): the same admin as a 1.x admin user, the bucket as a
    database; 1.x has no tokens, so its ``/api/v2/write`` and ``/api/v2/query``
    take ``Token <user>:<password>`` (:attr:`token`) and ignore the organisation.
    """

    def __init__(self, setup: InfluxSetup, *, workdir: Path) -> None:
        self.setup = setup
        self.port = ports.free_port()
        self.version = binaries.pinned_versions()["INFLUXDB_VERSION"]
        self.major = int(self.version.lstrip("v").split(".")[0])
        self._dir = workdir
        self._server: processes.ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{ports.LOOPBACK}:{self.port}"

    @property
    def token(self) -> str:
        """What a client presents as ``Authorization: Token ...``."""
        if self.major >= 2:
            return self.setup.token
        return f"{self.setup.username}:{self.setup.password}"

    def start(self) -> InfluxDB:
        if self.major >= 2:
            env = dict(self.setup.server_env)
            # The pod binds every interface on the chart's port; a test binds loopback only.
            env["INFLUXD_HTTP_BIND_ADDRESS"] = f"{ports.LOOPBACK}:{self.port}"
            argv = [
                str(influxd_path()),
                f"--bolt-path={self._dir / 'influxd.bolt'}",
                f"--engine-path={self._dir / 'engine'}",
                f"--sqlite-path={self._dir / 'influxd.sqlite'}",
            ]
        else:
            env = {}
            argv = [str(influxd_path()), "run", "-config", str(self._config_v1())]
        self._server = processes.ServerProcess(
            name="influxd", argv=argv, log_path=self._dir / "influxd.log", env=env
        ).start()
        self._server.wait_ready(self._healthy, timeout=READY_TIMEOUT, what="GET /health")
        if self.major >= 2:
            self._first_start()
        else:
            self._first_start_v1()
        return self

    def _config_v1(self) -> Path:
        """The image's own config (one template, tools/images/influxdb) on this run's ports."""
        config = string.Template(INFLUXDB_V1_CONFIG.read_text()).substitute(
            rpc_bind=f"{ports.LOOPBACK}:{ports.free_port()}",
            data=self._dir,
            http_bind=f"{ports.LOOPBACK}:{self.port}",
        )
        path = self._dir / "influxdb.conf"
        path.write_text(config)
        return path

    def _first_start_v1(self) -> None:
        """The chart's admin as a 1.x admin user (allowed while none exists), its bucket as a db."""
        user = json.dumps(self.setup.username)
        password = "'" + self.setup.password.replace("\\", "\\\\").replace("'", "\\'") + "'"
        self._influxql(f"CREATE USER {user} WITH PASSWORD {password} WITH ALL PRIVILEGES")
        duration = f" WITH DURATION {self.setup.retention}" if self.setup.retention else ""
        self._influxql(f"CREATE DATABASE {json.dumps(self.setup.bucket)}{duration}")

    def _influxql(self, statement: str) -> list[dict[str, Any]]:
        """One InfluxQL statement (1.x) on the chart's bucket; its series."""
        answer = httpx.post(
            f"{self.url}/query",
            params={"q": statement, "db": self.setup.bucket, "epoch": "ns"},
            headers={"Authorization": f"Token {self.token}"},
            timeout=30,
        )
        answer.raise_for_status()
        results = answer.json()["results"]
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            raise AssertionError(f"{statement.split(' WITH ')[0]}: {errors}")
        return [series for r in results for series in r.get("series", [])]

    def _points_v1(self, measurement: str) -> list[Point]:
        """Points through InfluxQL, each field typed by the server's schema (SHOW FIELD KEYS)."""
        name = json.dumps(measurement)
        selected = self._influxql(f"SELECT * FROM {name} GROUP BY *")  # noqa: S608 (a quoted name)
        # Asked after the points: every field they carry is in the schema by then.
        kinds = {
            key: kind
            for series in self._influxql(f"SHOW FIELD KEYS FROM {name}")
            for key, kind in series["values"]
        }
        convert = {"float": float, "integer": int, "string": str, "boolean": bool}
        points = []
        for series in selected:
            columns = series["columns"]
            for row in series["values"]:
                record = dict(zip(columns, row, strict=True))
                fields = {
                    k: convert[kinds[k]](v)
                    for k, v in record.items()
                    if k != "time" and v is not None
                }
                points.append(
                    Point(
                        measurement=series["name"],
                        tags={k: v for k, v in (series.get("tags") or {}).items() if v},
                        fields=fields,
                        time_ns=int(record["time"]),
                    )
                )
        return points

    def _healthy(self) -> bool:
        try:
            return bool(self._request("GET", "/health", token=None).get("status") == "pass")
        except (httpx.HTTPError, ValueError):
            return False

    def _first_start(self) -> None:
        """What ``DOCKER_INFLUXDB_INIT_MODE=setup`` does on an empty volume."""
        body: dict[str, Any] = {
            "username": self.setup.username,
            "password": self.setup.password,
            "org": self.setup.organization,
            "bucket": self.setup.bucket,
            "token": self.setup.token,
        }
        if self.setup.retention:
            raise AssertionError("a retention in the values: map it to retentionPeriodSeconds")
        self._request("POST", "/api/v2/setup", body=body, token=None)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        token: str | None,
        accept: str = "application/json",
    ) -> Any:
        headers = {"Accept": accept}
        if token is not None:
            headers["Authorization"] = f"Token {token}"
        answer = httpx.request(method, self.url + path, json=body, headers=headers, timeout=30)
        answer.raise_for_status()
        if accept != "application/json":
            return answer.text
        return answer.json() if answer.content else {}

    def count(self, measurement: str, *, field: str, tag: tuple[str, str]) -> int:
        """How many points of ``measurement`` carry ``field`` and the tag ``tag``."""
        if self.major >= 2:
            return sum(1 for p in self.points(measurement) if p.tags.get(tag[0]) == tag[1])
        where = f"{json.dumps(tag[0])} = '{tag[1]}'"
        statement = f"SELECT count({json.dumps(field)}) FROM {json.dumps(measurement)}"  # noqa: S608
        series = self._influxql(f"{statement} WHERE {where}")
        return int(series[0]["values"][0][1]) if series else 0

    def query_csv(self, flux: str) -> str:
        """A Flux query's annotated CSV, asked with the operator token (2.x)."""
        body = {
            "query": flux,
            "type": "flux",
            "dialect": {"header": True, "annotations": ["datatype"]},
        }
        path = f"/api/v2/query?org={urllib.parse.quote(self.setup.organization)}"
        return str(self._request("POST", path, body=body, token=self.token, accept="text/csv"))

    def points(self, measurement: str, *, start: str = "0") -> list[Point]:
        """Every point of ``measurement`` in the chart's bucket, oldest first."""
        if self.major < 2:
            return sorted(self._points_v1(measurement), key=lambda p: p.time_ns)
        flux = (
            f"from(bucket: {json.dumps(self.setup.bucket)})"
            f" |> range(start: {start})"
            f" |> filter(fn: (r) => r._measurement == {json.dumps(measurement)})"
        )
        return sorted(points_from_csv(self.query_csv(flux)), key=lambda p: p.time_ns)

    def log(self) -> str:
        if self._server is None:
            return ""
        return self._server.log_tail(80)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


_CSV_SKIP = {"", "result", "table", "_start", "_stop"}
_CONVERT: dict[str, Any] = {
    "double": float,
    "long": int,
    "unsignedLong": int,
    "boolean": lambda v: v == "true",
    "string": str,
}


def rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 UTC time with up to 9 fraction digits."""
    import calendar
    import time as _time

    whole, _, rest = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(_time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 10**9 + int((rest or "0").ljust(9, "0")[:9])


def points_from_csv(text: str) -> list[Point]:
    """Flux annotated CSV (one row per field value) folded into points."""
    import csv

    grouped: dict[tuple[str, tuple[tuple[str, str], ...], int], dict[str, Any]] = {}
    header: list[str] = []
    types: list[str] = []
    for row in csv.reader(text.splitlines()):
        if not row or all(not cell for cell in row):
            header, types = [], []
            continue
        if row[0] == "#datatype":
            types, header = row, []
            continue
        if not header:
            header = row
            continue
        record = dict(zip(header, row, strict=False))
        kinds = dict(zip(header, types, strict=False))
        tags = tuple(
            sorted(
                (k, v)
                for k, v in record.items()
                if k not in _CSV_SKIP and not k.startswith("_") and v != ""
            )
        )
        key = (record["_measurement"], tags, rfc3339_ns(record["_time"]))
        value = _CONVERT.get(kinds.get("_value", "string"), str)(record["_value"])
        grouped.setdefault(key, {})[record["_field"]] = value
    return [
        Point(measurement=m, tags=dict(tags), fields=fields, time_ns=t)
        for (m, tags, t), fields in grouped.items()
    ]


def influxd_path() -> Path:
    """``influxd`` of ``INFLUXDB_VERSION`` (tools/testbin/versions.env), built if missing."""
    version = binaries.pinned_versions()["INFLUXDB_VERSION"]
    path = binaries.cache_dir() / "bin" / f"influxd-{version}" / "influxd"
    if not os.access(path, os.X_OK):
        result = subprocess.run([str(binaries.BUILD_SCRIPT), "influxd"], check=False)
        assert result.returncode == 0, f"{binaries.BUILD_SCRIPT} influxd failed"
    return path


# --- Telegraf --------------------------------------------------------------------------------


def telegraf_path(parts: ChartParts) -> Path:
    """Telegraf of the chart's image tag, built from source with the sensors' plugins only."""
    tag = str(parts.values["telegraf"]["image"]["tag"])
    version = tag if tag.startswith("v") else f"v{tag}"
    path = binaries.cache_dir() / "bin" / f"telegraf-{version}" / "telegraf"
    if not path.exists():
        result = subprocess.run([str(TELEGRAF_BUILD_SCRIPT), version], check=False)
        assert result.returncode == 0, f"{TELEGRAF_BUILD_SCRIPT} {version} failed"
    return path


class Telegraf:
    """One sensor's Telegraf: its rendered config, with the pod's addresses made local.

    The in-cluster names of the broker and of InfluxDB become this run's
    loopback servers, and the health output (``:<healthPort>`` in the pod's own
    network) a free loopback port, so several sensors run side by side.
    """

    def __init__(
        self,
        parts: ChartParts,
        sensor: Sensor,
        *,
        broker: Mosquitto,
        influx: InfluxDB,
        workdir: Path,
    ) -> None:
        config = sensor.config
        for server in sensor.values["mqtt"]["servers"] or [
            "tcp://" + parts.in_cluster_url("mosquitto", int(parts.values["mosquitto"]["port"]))
        ]:
            config = _replace_once(config, server, broker.url, what=f"{sensor.name} broker")
        influx_in_cluster = "http://" + parts.in_cluster_url(
            "influxdb", int(parts.values["influxdb"]["port"])
        )
        config = _replace_once(config, influx_in_cluster, influx.url, what=f"{sensor.name} output")
        self.health_port = ports.free_port()
        health = f'service_address = "http://:{parts.values["telegraf"]["healthPort"]}"'
        config = _replace_once(
            config,
            health,
            f'service_address = "http://{ports.LOOPBACK}:{self.health_port}"',
            what=f"{sensor.name} health",
        )
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "telegraf.conf"
        self.config_path.write_text(config)
        self.sensor = sensor
        env = dict(sensor.env)
        # The Deployment hands Telegraf the chart's token; a 1.x server reads another form.
        assert env["INFLUX_TOKEN"] == influx.setup.token, "Telegraf's token is not InfluxDB's"
        env["INFLUX_TOKEN"] = influx.token
        self._server = processes.ServerProcess(
            name=f"telegraf-{sensor.name}",
            argv=[str(telegraf_path(parts)), "--config", str(self.config_path)],
            log_path=workdir / "telegraf.log",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        )

    def start(self, broker: Mosquitto) -> Telegraf:
        """Start, and return once it answers its health check and has subscribed."""
        topics = self.sensor.values["mqtt"]["topics"]
        before = {t: broker.subscriptions(t) for t in topics}
        self._server.start()
        self._server.wait_ready(
            lambda: (
                _health(self.health_port)
                and all(broker.subscriptions(t) > n for t, n in before.items())
            ),
            timeout=READY_TIMEOUT,
            what=f"its health output and its subscription to {topics}",
        )
        return self

    @property
    def client_id(self) -> str:
        """The MQTT client id the rendered config gives (persistent sessions)."""
        for line in self.config_path.read_text().splitlines():
            key, _, value = line.strip().partition(" = ")
            if key == "client_id":
                return str(json.loads(value))
        raise AssertionError(f"{self.sensor.name}: the config has no client_id")

    def log(self) -> str:
        path = self._server.log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def ensure_running(self) -> None:
        self._server.ensure_running()

    def stop(self) -> None:
        self._server.stop()


def _health(port: int) -> bool:
    try:
        return httpx.get(f"http://{ports.LOOPBACK}:{port}/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def agent_values(path: Path, *, interval: str = "1s", flush_interval: str = "1s") -> Path:
    """Values that make Telegraf gather and flush every second (the chart's default is 10 s)."""
    import yaml

    agent = {"interval": interval, "flushInterval": flush_interval}
    path.write_text(yaml.safe_dump({"telegraf": {"agent": agent}}))
    return path


@dataclass
class Stack:
    """One render's broker, InfluxDB and a running Telegraf per sensor."""

    parts: ChartParts
    broker: Mosquitto
    influx: InfluxDB
    telegrafs: dict[str, Telegraf]

    def login(self) -> tuple[str, str] | None:
        """What a device of the release logs in with (None on the public broker)."""
        return None if self.broker.public else self.parts.mosquitto_login()

    def wait_for_points(
        self, measurement: str, count: int, *, timeout: float = 60.0, start: str = "0"
    ) -> list[Point]:
        """The points of ``measurement`` once at least ``count`` are queryable."""

        def arrived() -> list[Point] | None:
            for telegraf in self.telegrafs.values():
                telegraf.ensure_running()
            found = self.influx.points(measurement, start=start)
            return found if len(found) >= count else None

        return waiting.wait_for(
            arrived,
            timeout=timeout,
            what=f"{count} point(s) of {measurement} in InfluxDB",
            details=lambda: (
                "\n".join(f"--- {name}:\n{t.log()[-3000:]}" for name, t in self.telegrafs.items())
                + f"\n--- broker:\n{self.broker.log()[-2000:]}"
            ),
        )


@contextlib.contextmanager
def running(
    values_files: Sequence[Path], *, workdir: Path, public_broker: bool = False
) -> Iterator[Stack]:
    """Render the chart with ``values_files`` and run its sensor half until the block ends."""
    parts = ChartParts.render(values_files)
    with contextlib.ExitStack() as stack:
        broker = Mosquitto(parts, log_dir=workdir, public=public_broker)
        stack.callback(broker.close)
        broker.start()
        (workdir / "influxdb").mkdir(parents=True, exist_ok=True)
        influx = InfluxDB(parts.influx_setup(), workdir=workdir / "influxdb")
        stack.callback(influx.stop)
        influx.start()
        telegrafs: dict[str, Telegraf] = {}
        for sensor in parts.sensors():
            telegraf = Telegraf(
                parts, sensor, broker=broker, influx=influx, workdir=workdir / sensor.name
            )
            stack.callback(telegraf.stop)
            telegrafs[sensor.name] = telegraf.start(broker)
        yield Stack(parts=parts, broker=broker, influx=influx, telegrafs=telegrafs)
