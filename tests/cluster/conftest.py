"""The cluster tier: the chart on a real node (``make test-cluster``; no kubelet double).

One node for the whole session, started by :mod:`tools.cluster` (as ``make
cluster`` does, in ``var/cluster-test``) with the images of ``make images``
and the chart installed; the gateway is forwarded to a free loopback port.
It needs root (network namespace, containerd) and is skipped unless
``DTPOC_TEST_CLUSTER=1`` (``make test-cluster`` sets it), so ``make test``
stays fast. ``make cluster`` must not be running at the same time (they share
the node's namespace and addresses).

Shared code (classes, constants, helpers) lives in :mod:`tests.cluster.helpers`;
this module holds only fixtures, so tests import from there, never from here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtpoc_common.vocabulary import API_PREFIX
from dtpoc_local import ports
from tests.cluster.helpers import ENV, HERE, Platform
from tools.cluster import cluster, layout, network, release


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=f"cluster tier: run with make test-cluster ({ENV}=1, root)")
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)
            if not os.environ.get(ENV):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    if os.geteuid() != 0:
        pytest.fail("the cluster tier needs root (network namespace, containerd)")
    if network.exists():
        pytest.fail(f"network namespace {layout.NETNS} exists: is make cluster running?")
    lay = layout.Layout(
        state=layout.REPO / "var" / "cluster-test", images=layout.Layout.default().images
    )
    prepared = release.prepare_images()
    node = cluster.start(lay, archives=[image.archive for image in prepared.values()])
    try:
        release.install(lay)
        port = ports.free_port()
        node.servers.append(release.port_forward(lay, port=port))
        yield Platform(
            node=node,
            api_url=f"http://127.0.0.1:{port}{API_PREFIX}",
            token=release.api_token(lay),
            images={name: image.reference for name, image in prepared.items()},
        )
    finally:
        node.stop()
