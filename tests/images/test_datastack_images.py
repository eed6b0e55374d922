"""The data-stack images built here, run as the chart runs them (read-only root).

No registry can be pulled on the project's machines, so FerretDB, Mosquitto,
Telegraf, InfluxDB, Node-RED and Mongo Express are built locally
(tools/images); these tests prove each one does its job under the chart's
command and user: FerretDB stores and reads a document, Mosquitto accepts
the hashed user and refuses anonymous clients, Telegraf carries the plugins
the chart's sensors use, Node-RED serves the chart's settings and flow with
its admin API locked (401) until the chart's login opens it (200, the
chart's flow), Mongo Express (its browser assets built into the image)
answers its health check openly and every page only to the chart's
basic-auth login, InfluxDB sets the chart's bucket up on an empty volume
and takes the ``<user>:<password>`` token.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import httpx
import pymongo
import pymongo.errors
import pytest

from dtpoc_local import images, ports, waiting
from tests.chart import chart
from tests.images import _containers

READY_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def datastack_image(container_engine: str) -> Callable[[str], str]:
    refs: dict[str, str] = {}

    def ref(name: str) -> str:
        if name not in refs:
            refs[name] = images.ensure_image(name)
        return refs[name]

    return ref


def _writable(path: Path) -> Path:
    path.mkdir()
    path.chmod(0o777)  # the image's own uid writes it, as a volume in the pod
    return path


def test_ferretdb_stores_and_reads_a_document(
    datastack_image: Callable[[str], str],
    containers: Callable[..., _containers.Container],
    tmp_path: Path,
) -> None:
    port = ports.free_port()
    state = _writable(tmp_path / "state")
    container = containers(
        datastack_image("ferretdb"),
        command=[],
        env={"FERRETDB_LISTEN_ADDR": f"127.0.0.1:{port}"},
        extra=["--volume", f"{state}:/state"],
    )
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=500
    )

    def ping() -> bool:
        if not container.running():
            raise AssertionError(f"ferretdb exited:\n{container.logs()}")
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError:
            return False
        return True

    try:
        waiting.wait_for(ping, timeout=READY_TIMEOUT, what="FerretDB ping")
        client.dtpoc.records.insert_one({"_id": "a", "beds": 12})
        assert client.dtpoc.records.find_one({"_id": "a"}) == {"_id": "a", "beds": 12}
    finally:
        client.close()
    assert any(state.rglob("*.sqlite")), "data lands in the /state volume"


def _mqtt_connect(port: int, *, username: str = "", password: str = "") -> int:
    """CONNACK return code of an MQTT 3.1.1 CONNECT (0 accepted, 5 not authorised)."""
    flags = 0x02  # clean session
    payload = struct.pack("!H", 4) + b"test"
    if username:
        flags |= 0xC0
        payload += struct.pack("!H", len(username)) + username.encode()
        payload += struct.pack("!H", len(password)) + password.encode()
    variable = struct.pack("!H", 4) + b"MQTT" + bytes([4, flags]) + struct.pack("!H", 30)
    body = variable + payload
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        answer = sock.recv(4)
    assert answer[:2] == b"\x20\x02", answer
    return answer[3]


def test_mosquitto_accepts_its_user_and_refuses_anonymous_clients(
    datastack_image: Callable[[str], str],
    containers: Callable[..., _containers.Container],
    tmp_path: Path,
) -> None:
    image = datastack_image("mosquitto")
    auth, config = _writable(tmp_path / "auth"), tmp_path / "config"
    config.mkdir()
    # As the chart's init container: hash the password into a file the broker reads.
    hashed = _containers.run(
        image,
        command=[
            "/bin/sh",
            "-ec",
            ": > /mosquitto/auth/passwd; mosquitto_passwd -b "
            "/mosquitto/auth/passwd dtpoc-mqtt s3cret",
        ],
        extra=["--volume", f"{auth}:/mosquitto/auth"],
    )
    assert hashed.returncode == 0, hashed.stderr
    port = ports.free_port()
    (config / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\n"
        "password_file /mosquitto/auth/passwd\npersistence true\n"
        "persistence_location /mosquitto/data/\n"
    )
    data = _writable(tmp_path / "data")
    container = containers(
        image,
        command=["mosquitto", "-c", "/mosquitto/config/mosquitto.conf"],
        env={},
        extra=[
            "--volume",
            f"{config}:/mosquitto/config:ro",
            "--volume",
            f"{auth}:/mosquitto/auth:ro",
            "--volume",
            f"{data}:/mosquitto/data",
        ],
    )

    def listening() -> bool:
        if not container.running():
            raise AssertionError(f"mosquitto exited:\n{container.logs()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    waiting.wait_for(listening, timeout=READY_TIMEOUT, what="mosquitto listening")
    assert _mqtt_connect(port, username="dtpoc-mqtt", password="s3cret") == 0
    assert _mqtt_connect(port) == 5
    assert _mqtt_connect(port, username="dtpoc-mqtt", password="wrong") == 5


def test_telegraf_has_the_plugins_the_chart_configures(
    datastack_image: Callable[[str], str],
) -> None:
    image = datastack_image("telegraf")
    listed = {}
    for kind in ("inputs", "outputs"):
        result = _containers.run(image, command=["telegraf", "plugins", kind])
        assert result.returncode == 0, result.stderr
        listed[kind] = set(result.stdout.split())
    assert "inputs.mqtt_consumer" in listed["inputs"]
    assert {"outputs.influxdb_v2", "outputs.health"} <= listed["outputs"]


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def _login(username: str, password: str) -> dict[str, str]:
    """Node-RED's admin login (OAuth2 password grant of its editor client)."""
    return {
        "client_id": "node-red-admin",
        "grant_type": "password",
        "scope": "*",
        "username": username,
        "password": password,
    }


def test_node_red_runs_the_charts_settings_and_flow(
    datastack_image: Callable[[str], str],
    containers: Callable[..., _containers.Container],
    tmp_path: Path,
) -> None:
    image = datastack_image("node-red")
    rendered = chart.render()
    config_map = rendered.named("ConfigMap", "dtpoc-node-red")
    config = tmp_path / "config"
    config.mkdir()
    for key in ("settings.js", "flows.json"):
        (config / key).write_text(config_map["data"][key])
    secrets = rendered.secret_values()
    data = _writable(tmp_path / "data")
    mounts = ["--volume", f"{config}:/config:ro", "--volume", f"{data}:/data"]
    # The chart's init container: the flow of the ConfigMap is the flow at every start.
    copied = _containers.run(
        image,
        command=["/bin/sh", "-ec", "cp /config/flows.json /data/flows.json"],
        extra=["--entrypoint", "", *mounts],
    )
    assert copied.returncode == 0, copied.stderr
    port = ports.free_port()
    container = containers(
        image,
        command=["--settings", "/config/settings.js"],
        env={
            "NODE_RED_ADMIN_USERNAME": "dtpoc-nodered",
            "NODE_RED_ADMIN_PASSWORD_BCRYPT": secrets[
                ("dtpoc-node-red-auth", "admin-password-bcrypt")
            ],
            "NODE_RED_CREDENTIAL_SECRET": secrets[("dtpoc-node-red-auth", "credential-secret")],
        },
        extra=mounts,
        publish={port: 1880},
    )

    def serving() -> bool:
        if not container.running():
            raise AssertionError(f"node-red exited:\n{container.logs()}")
        return _http_status(f"http://127.0.0.1:{port}/") == 200

    waiting.wait_for(serving, timeout=60, what="Node-RED editor", details=container.logs)
    assert _http_status(f"http://127.0.0.1:{port}/flows") == 401, "the admin API needs a login"
    # The chart's login (the password the Secret keeps beside its bcrypt hash) opens it.
    base = f"http://127.0.0.1:{port}"
    wrong = httpx.post(f"{base}/auth/token", data=_login("dtpoc-nodered", "wrong"), timeout=10)
    assert wrong.status_code == 403, wrong.text
    login = _login("dtpoc-nodered", secrets[("dtpoc-node-red-auth", "admin-password")])
    token = httpx.post(f"{base}/auth/token", data=login, timeout=10)
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    flows = httpx.get(f"{base}/flows", headers=bearer, timeout=10)
    assert flows.status_code == 200
    assert [n["id"] for n in flows.json()] == [
        n["id"] for n in json.loads(config_map["data"]["flows.json"])
    ]
    waiting.wait_for(
        lambda: "Started flows" in container.logs(), timeout=30, what="the chart's flow started"
    )


def _chart_env(rendered: chart.Rendered, workload: str) -> dict[str, str]:
    """A workload's container environment with its Secret references resolved."""
    secrets = rendered.secret_values()
    (container,) = chart.containers(rendered.named("Deployment", workload))
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[(ref["name"], ref["key"])]
    return env


def test_mongo_express_answers_its_health_check_and_opens_only_to_the_charts_login(
    datastack_image: Callable[[str], str],
    containers: Callable[..., _containers.Container],
    tmp_path: Path,
) -> None:
    mongo_port = ports.free_port()
    state = _writable(tmp_path / "state")
    mongo = containers(
        datastack_image("ferretdb"),
        command=[],
        env={"FERRETDB_LISTEN_ADDR": f"127.0.0.1:{mongo_port}"},
        extra=["--volume", f"{state}:/state"],
    )
    env = _chart_env(chart.render(), "dtpoc-mongo-express")
    port = ports.free_port()
    # The pod's world made local: FerretDB (the node's MongoDB, no users) on a loopback port.
    env |= {
        "ME_CONFIG_MONGODB_URL": f"mongodb://127.0.0.1:{mongo_port}/",
        "VCAP_APP_HOST": "127.0.0.1",
        "PORT": str(port),
    }
    container = containers(datastack_image("mongo-express"), command=[], env=env)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if not container.running():
            raise AssertionError(f"mongo-express exited:\n{container.logs()}\n{mongo.logs()}")
        return _http_status(f"{base}/status") == 200

    waiting.wait_for(healthy, timeout=90, what="Mongo Express /status", details=container.logs)
    login = (env["ME_CONFIG_BASICAUTH_USERNAME"], env["ME_CONFIG_BASICAUTH_PASSWORD"])
    assert httpx.get(f"{base}/", timeout=30).status_code == 401
    assert httpx.get(f"{base}/", auth=(login[0], "wrong"), timeout=30).status_code == 401
    page = httpx.get(f"{base}/", auth=login, timeout=30)
    assert page.status_code == 200, page.text[:500]
    assert "Mongo Express" in page.text
    # The browser assets built into the image (the npm package has none) are served.
    scripts = re.findall(r'<script src="([^"]+\.js)"', page.text)
    assert scripts, page.text[:1000]
    for script in scripts:
        url = script if script.startswith("http") else base + "/" + script.lstrip("/")
        assert httpx.get(url, auth=login, timeout=30).status_code == 200, script


def test_influxdb_sets_up_the_charts_bucket_and_takes_its_token(
    datastack_image: Callable[[str], str],
    containers: Callable[..., _containers.Container],
    tmp_path: Path,
) -> None:
    data = _writable(tmp_path / "data")
    port = ports.free_port()
    container = containers(
        datastack_image("influxdb"),
        command=[],
        env={
            "DOCKER_INFLUXDB_INIT_MODE": "setup",
            "DOCKER_INFLUXDB_INIT_USERNAME": "dtpoc-admin",
            "DOCKER_INFLUXDB_INIT_PASSWORD": "s3cret",
            "DOCKER_INFLUXDB_INIT_ORG": "dtpoc",
            "DOCKER_INFLUXDB_INIT_BUCKET": "sensors",
            "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": "dtpoc-admin:s3cret",
        },
        extra=["--volume", f"{data}:/var/lib/influxdb2"],
        publish={port: 8086},
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if not container.running():
            raise AssertionError(f"influxdb exited:\n{container.logs()}")
        return _http_status(f"{base}/health") == 200

    waiting.wait_for(healthy, timeout=120, what="InfluxDB /health", details=container.logs)
    write = f"{base}/api/v2/write?org=dtpoc&bucket=sensors&precision=s"
    line = "ward,bed=3 occupancy=1i 1700000000"
    wrong = httpx.post(write, content=line, headers={"Authorization": "Token x:y"}, timeout=10)
    assert wrong.status_code == 401, wrong.text
    token = {"Authorization": "Token dtpoc-admin:s3cret"}
    written = httpx.post(write, content=line, headers=token, timeout=10)
    assert written.status_code == 204, written.text
    answer = httpx.post(
        f"{base}/query",
        data={"db": "sensors", "q": "SELECT occupancy FROM ward"},
        auth=("dtpoc-admin", "s3cret"),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    series = answer.json()["results"][0]["series"][0]
    assert series["values"] == [["2023-11-14T22:13:20Z", 1]]
    assert (data / "data" / "sensors").is_dir(), "the bucket lives in the volume"
