"""What a cluster has that the bare control plane lacks: DNS's RBAC and node-local storage.

Storage: static ``local`` PersistentVolumes, one folder each under the state
folder, in the default StorageClass ``dtpoc-local`` (no provisioner,
``WaitForFirstConsumer``). A claim binds a free one of them; each offers
ReadWriteOnce and ReadWriteMany (one node: every pod that mounts it is on
that node). ``local`` volumes, unlike ``hostPath``, get the pod's fsGroup
applied by the kubelet, so the chart's uids and fsGroup own what they write.
Capacities are bookkeeping: the folders share the machine's disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.cluster import layout

VOLUME_CAPACITY = "100Gi"

Obj = dict[str, Any]


def _user_role(user: str, rules: list[Obj]) -> list[Obj]:
    """A ClusterRole named after ``user`` (a client certificate's name) and its binding to it."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": user},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": user},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": user,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    ]


def coredns_rbac() -> list[Obj]:
    """Read access to what the kubernetes plugin watches, for CoreDNS's client certificate."""
    return _user_role(
        "dtpoc:coredns",
        [
            {
                "apiGroups": [""],
                "resources": ["endpoints", "services", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    )


def kube_router_rbac() -> list[Obj]:
    """What kube-router's firewall controller reads (its own daemonset's role, trimmed)."""
    return _user_role(
        "dtpoc:kube-router",
        [
            {
                "apiGroups": [""],
                "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["networkpolicies"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["get", "list", "watch"],
            },
        ],
    )


def storage_class() -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": layout.STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain",
    }


def local_volume(index: int, folder: Path) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"dtpoc-local-{index}", "labels": {"dtpoc.node/local": "true"}},
        "spec": {
            "capacity": {"storage": VOLUME_CAPACITY},
            "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": layout.STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "local": {"path": str(folder)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [layout.NODE_NAME],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def local_volumes(root: Path, count: int = layout.LOCAL_VOLUMES) -> list[Obj]:
    """Make ``count`` empty folders under ``root`` and their PersistentVolumes."""
    volumes = []
    for index in range(count):
        folder = root / f"pv-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        volumes.append(local_volume(index, folder))
    return volumes
