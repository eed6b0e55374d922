"""The chart on the node: images into containerd, ``helm install``, the API token, port-forward.

Images come from ``make images`` (:func:`dtpoc_local.images.archive_path`),
imported once into the node's containerd cache. The chart is installed from
``infra/`` with ``infra/values-cluster.yaml``; the gateway's token Secret is
made here from ``var/cluster/token`` (kept across starts, so a client keeps
working after a restart) and named with ``gateway.auth.existingSecret``.
InfluxDB's credentials are made here too (``influxdb.auth.existingSecret``):
the node runs InfluxDB 1.8, whose ``/api/v2`` takes the token
``<username>:<password>``, so the admin token has that form.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from dtpoc_local import binaries, images, probes, processes
from tools.cluster import cluster, layout, node

IMAGES = (
    "dtpoc",
    "histolab",
    "ferretdb",
    "mosquitto",
    "influxdb",
    "telegraf",
    "node-red",
    "mongo-express",
)
"""What the node's values file runs (histolab: the original's analytics image)."""
TOKEN_SECRET = "dtpoc-cluster-api-token"  # noqa: S105 - the Secret's name
INFLUXDB_SECRET = "dtpoc-cluster-influxdb-auth"  # noqa: S105 - the Secret's name
_VALUES_KEYS = (
    ("ferretdb", "mongodb"),
    ("mosquitto", "mosquitto"),
    ("influxdb", "influxdb"),
    ("telegraf", "telegraf"),
    ("node-red", "nodeRed"),
    ("mongo-express", "mongoExpress"),
)
ROLLOUT_TIMEOUT = 300.0
PORT_FORWARD_TIMEOUT = 30.0


def values_images() -> dict[str, str]:
    """Image references infra/values-cluster.yaml names, by catalogue name."""
    values = yaml.safe_load(layout.VALUES_FILE.read_text())
    found = {}
    for name, key in _VALUES_KEYS:
        image = values[key]["image"]
        found[name] = f"{image['repository']}:{image['tag']}"
    return found


@dataclass(frozen=True)
class PreparedImage:
    """An image built by ``make images``: its primary reference and its OCI archive."""

    reference: str
    archive: Path


def prepare_images(names: Sequence[str] = IMAGES) -> dict[str, PreparedImage]:
    """Build (cached) each image; refuse a values file that names another tag.

    Done once before the node starts: the references are what pods must ask
    for afterwards (a later ``ensure_image`` may rebuild from changed sources).
    """
    expected = values_images()
    prepared = {}
    for name in names:
        reference = images.ensure_image(name)
        if name in expected and expected[name] != reference:
            raise node.NodeError(
                f"{layout.VALUES_FILE} names {expected[name]} for {name}, "
                f"but make images builds {reference}"
            )
        prepared[name] = PreparedImage(reference=reference, archive=images.archive_path(name))
    return prepared


def api_token(lay: layout.Layout) -> str:
    """The API token in ``var/cluster/token``, generated on first use."""
    if lay.token.exists():
        return lay.token.read_text().strip()
    token = secrets.token_urlsafe(32)
    lay.token.parent.mkdir(parents=True, exist_ok=True)
    lay.token.write_text(token + "\n")
    lay.token.chmod(0o600)
    return token


def token_secret(token: str) -> dict[str, object]:
    """The gateway's tokens file: the SHA-256 of the one token."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TOKEN_SECRET, "namespace": layout.NAMESPACE},
        "type": "Opaque",
        "stringData": {"tokens": hashlib.sha256(token.encode()).hexdigest() + "\n"},
    }


def _influxdb_admin() -> str:
    """``influxdb.auth.adminUsername`` of the node's values, else of the chart's defaults."""
    for path in (layout.VALUES_FILE, layout.REPO / "infra" / "values.yaml"):
        auth = (yaml.safe_load(path.read_text()).get("influxdb") or {}).get("auth") or {}
        if auth.get("adminUsername"):
            return str(auth["adminUsername"])
    raise node.NodeError("no influxdb.auth.adminUsername in the values")


def influxdb_secret() -> dict[str, object]:
    """InfluxDB's admin (the values' name, a fresh password) and a token 1.8 accepts.

    Fresh on every install, as the node's volumes are.
    """
    username = _influxdb_admin()
    password = secrets.token_urlsafe(24)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": INFLUXDB_SECRET, "namespace": layout.NAMESPACE},
        "type": "Opaque",
        "stringData": {
            "admin-username": username,
            "admin-password": password,
            "admin-token": f"{username}:{password}",
        },
    }


def helm(lay: layout.Layout, *args: str) -> str:
    argv = [str(binaries.path("helm")), f"--kubeconfig={lay.kubeconfig}", *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise node.NodeError(f"`helm {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def install(lay: layout.Layout, *, extra_values: Sequence[Path] = ()) -> str:
    """``helm install`` the chart and wait for every workload; returns helm's NOTES."""
    cluster.kubectl(lay, "create", "namespace", layout.NAMESPACE)
    cluster.apply(lay, [token_secret(api_token(lay)), influxdb_secret()])
    args = [
        "install",
        layout.RELEASE,
        str(layout.REPO / "infra"),
        f"--namespace={layout.NAMESPACE}",
        f"--values={layout.VALUES_FILE}",
        *[f"--values={v}" for v in extra_values],
        f"--set=gateway.auth.existingSecret={TOKEN_SECRET}",
        "--wait",
        f"--timeout={int(ROLLOUT_TIMEOUT)}s",
    ]
    try:
        return helm(lay, *args)
    except node.NodeError as error:
        raise node.NodeError(f"{error}\n{diagnosis(lay)}") from None


def diagnosis(lay: layout.Layout) -> str:
    """Pods and recent events of the release's namespace, for a failed rollout's message."""
    parts = []
    for args in (
        ("get", "pods", "-o", "wide"),
        ("get", "pvc"),
        ("get", "events", "--sort-by=.lastTimestamp"),
    ):
        try:
            parts.append(cluster.kubectl(lay, "-n", layout.NAMESPACE, *args))
        except node.NodeError as error:
            parts.append(str(error))
    return "\n".join(parts)


def port_forward(lay: layout.Layout, *, port: int = layout.GATEWAY_PORT) -> processes.ServerProcess:
    """``kubectl port-forward`` 127.0.0.1:port to the gateway Service (through the kubelet)."""
    forward = processes.ServerProcess(
        name="port-forward",
        argv=[
            str(binaries.path("kubectl")),
            f"--kubeconfig={lay.kubeconfig}",
            f"--namespace={layout.NAMESPACE}",
            "port-forward",
            "--address=127.0.0.1",
            f"svc/{layout.RELEASE}-gateway",
            f"{port}:80",
        ],
        log_path=lay.logs / "port-forward.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    forward.wait_ready(
        lambda: probes.http_ok(f"{url}/livez"), timeout=PORT_FORWARD_TIMEOUT, what=url
    )
    return forward


def wait_rollout(lay: layout.Layout) -> None:
    """Every Deployment and StatefulSet of the release Ready (helm --wait did it once)."""
    for kind in ("deployment", "statefulset"):
        names = cluster.kubectl(lay, "-n", layout.NAMESPACE, "get", kind, "-o", "name").split()
        for name in names:
            cluster.kubectl(
                lay,
                "-n",
                layout.NAMESPACE,
                "rollout",
                "status",
                name,
                f"--timeout={int(ROLLOUT_TIMEOUT)}s",
            )
