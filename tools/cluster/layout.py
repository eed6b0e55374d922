"""Where the node lives: its addresses and the folders of its state.

Every address here is one the project creates: the veth pair's /30, the pods'
/24 on the node's bridge and the Service range, all in private space and
checked unused at start (:func:`tools.cluster.network.check_free`). The node
namespace has no default route, so a pod or node process that tries any other
address gets "network unreachable".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

NETNS = "dtpoc-node"
"""The node's network namespace (``ip netns``)."""
HOST_IF = "dtpoc0"
"""Host end of the veth pair."""
NODE_IF = "eth0"
"""Node end of the veth pair, inside :data:`NETNS`."""
PREFIX_LEN = 30
HOST_IP = "10.213.0.1"
"""The host's address on the veth: the apiserver listens here (and only here)."""
NODE_IP = "10.213.0.2"
"""The node's address: kubelet, kube-proxy's NodePorts, CoreDNS."""
VETH_SUBNET = "10.213.0.0/30"
POD_CIDR = "10.244.0.0/24"
"""Pods' addresses, on bridge ``cni0`` inside the node namespace."""
POD_GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/24"
FIRST_SERVICE_IP = "10.96.0.1"
API_PORT = 6443
NODE_NAME = "dtpoc-node"
CLUSTER_DOMAIN = "cluster.local"
DNS_IP = NODE_IP
"""CoreDNS answers pods on the node's address (a process of the node, not a pod)."""
STORAGE_CLASS = "dtpoc-local"
LOCAL_VOLUMES = 8
"""Static local PersistentVolumes made at start; a claim binds one of them."""
GATEWAY_PORT = 8000
"""127.0.0.1 port the gateway is served on (kubectl port-forward)."""
RELEASE = "dtpoc"
NAMESPACE = "dtpoc"
VALUES_FILE = REPO / "infra" / "values-cluster.yaml"


def cache_dir() -> Path:
    override = os.environ.get("DTPOC_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "dtpoc"


@dataclass(frozen=True)
class Layout:
    """The node's folders. ``state`` is thrown away by ``make cluster-down``
    and at each start; ``images`` (containerd's content store) is a cache kept
    across starts, so a second start imports nothing."""

    state: Path
    images: Path

    @classmethod
    def default(cls) -> Layout:
        state = Path(os.environ.get("DTPOC_CLUSTER_DIR", REPO / "var" / "cluster"))
        return cls(state=state.resolve(), images=cache_dir() / "cluster" / "containerd")

    @property
    def plane(self) -> Path:
        return self.state / "plane"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def containerd_state(self) -> Path:
        return self.state / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def volumes(self) -> Path:
        return self.state / "volumes"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig printed for the user."""
        return self.state / "kubeconfig"

    @property
    def token(self) -> Path:
        return self.state / "token"
