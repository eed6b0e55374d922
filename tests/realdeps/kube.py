"""The ``kube`` fixture: a real Kubernetes API for the test session.

Chosen in this order:

1. ``DTPOC_TEST_KUBECONFIG``, then ``KUBECONFIG``: a cluster of your own (its
   current context). Only the first file of a ``KUBECONFIG`` path list is used.
2. A local control plane (etcd, kube-apiserver, kube-controller-manager) from
   the binary cache, built if missing; see :mod:`dtpoc_local.controlplane`.

``kube_namespace`` gives each test a fresh namespace and deletes it after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtpoc_local import controlplane
from dtpoc_local.kube import KubeCluster

ENV_KUBECONFIG = "DTPOC_TEST_KUBECONFIG"


def _external_kubeconfig() -> Path | None:
    for variable in (ENV_KUBECONFIG, "KUBECONFIG"):
        value = os.environ.get(variable)
        if value:
            first = Path(value.split(os.pathsep)[0]).expanduser()
            if not first.is_file():
                raise FileNotFoundError(f"{variable} points at {first}, which is not a file")
            return first
    return None


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A Kubernetes API for the session: your cluster if configured, else a local one."""
    external = _external_kubeconfig()
    if external is not None:
        cluster = KubeCluster(kubeconfig_path=external, managed=False)
        try:
            yield cluster
        finally:
            cluster.close()
        return
    plane = controlplane.start_control_plane(tmp_path_factory.mktemp("kube"))
    try:
        cluster = KubeCluster(kubeconfig_path=plane.admin_kubeconfig, managed=True)
        yield cluster
        cluster.close()
    finally:
        plane.stop()


@pytest.fixture
def kube_namespace(kube: KubeCluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = kube.create_namespace()
    try:
        yield name
    finally:
        kube.delete_namespace(name)
