"""Helm values that point the chart at the images built here.

The dtpoc image already carries the chart's own name (``image.repository``
and the appVersion), so a node that imported its archive needs nothing set.
The data stack's upstream images cannot be pulled on machines without a
registry; these values swap in the local builds of Mosquitto, Telegraf,
Node-RED and Mongo Express, which keep each component's command and paths
(the local images are laid out as the chart expects). Grafana has no local
build and keeps its upstream image; so does InfluxDB here, since its local
image is 1.8 and needs an admin token of the form ``<user>:<password>``
(``infra/values-cluster.yaml`` and ``tools/cluster`` give it one).
The MongoDB-protocol server becomes FerretDB only where the chart offers
``mongodb.server`` (its schema says so).
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.images._catalogue import ImageSpec

# chart component -> image of the catalogue
_COMPONENTS = {
    "mosquitto": "mosquitto",
    "telegraf": "telegraf",
    "nodeRed": "node-red",
    "mongoExpress": "mongo-express",
}


def _image_block(ref: str) -> str:
    repository, tag = ref.rsplit(":", 1)
    return f'  image:\n    repository: {repository}\n    tag: "{tag}"\n    digest: ""\n'


def _chart_has_ferretdb(repo: Path) -> bool:
    schema = json.loads((repo / "infra/values.schema.json").read_text())
    server = schema["properties"]["mongodb"]["properties"].get("server", {})
    return "ferretdb" in server.get("enum", [])


def local_values(repo: Path, specs: dict[str, ImageSpec]) -> str:
    """A values file (YAML text) naming the local images of the data stack."""
    lines = [
        "# The chart's data stack on the images tools/images builds on this machine",
        "# (import their OCI archives into the node first; see docs/deploy.md).",
    ]
    text = "\n".join(lines) + "\n"
    for component, name in _COMPONENTS.items():
        text += f"{component}:\n{_image_block(specs[name].tags[0])}"
    if _chart_has_ferretdb(repo):
        text += "mongodb:\n  server: ferretdb\n" + _image_block(specs["ferretdb"].tags[0])
    return text
