"""Shared code of tests/cluster: what its fixtures (conftest.py) and its tests use.

A named module rather than conftest.py, so that tests import it like any other
module (pytest loads conftest files itself; importing them by name is fragile).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from dtpoc_local.kube import KubeCluster
from tools.cluster import cluster

ENV = "DTPOC_TEST_CLUSTER"
HERE = Path(__file__).parent


@dataclass
class Platform:
    """The node, its admin client, and the gateway as a client of the original sees it."""

    node: cluster.Node
    api_url: str
    token: str
    images: dict[str, str]
    """Reference of each image on the node, by ``make images`` name (dtpoc, histolab...)."""

    @property
    def kube(self) -> KubeCluster:
        return self.node.kube

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=httpx.Timeout(60.0),
            **kwargs,  # type: ignore[arg-type]
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.node.kubectl(*args, stdin=stdin)
