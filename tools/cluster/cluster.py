"""Bring the node up and take it down: the order, the waits and the clean-up.

Start order: network -> control plane (+ scheduler) -> containerd (images
imported) -> kubelet (Ready) -> kube-proxy, CoreDNS -> storage. Stop is the
reverse, and every container is killed and removed before containerd stops,
so nothing of the node outlives it. A start after a crash first clears what
the crashed run left (containers, mounts, the namespace).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes.client.exceptions import ApiException

from dtpoc_local import binaries, controlplane, probes, processes, waiting
from dtpoc_local.kube import KubeCluster
from dtpoc_local.pki import issue_client_certificate
from tools.cluster import addons, layout, network, node, registry

NODE_READY_TIMEOUT = 180.0
DNS_READY_TIMEOUT = 60.0

CONTROLLERS = ("*", "-bootstrap-signer-controller", "-token-cleaner-controller")
"""Every controller (node lifecycle, persistent volumes, StatefulSets...), as a real cluster."""


def log(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


@dataclass
class Node:
    """A running node and its control plane."""

    lay: layout.Layout
    plane: controlplane.ControlPlane
    kube: KubeCluster
    servers: list[processes.ServerProcess] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    registry: registry.Registry | None = None

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return kubectl(self.lay, *args, stdin=stdin)

    def stop(self) -> None:
        """Reverse order; every container is removed before containerd stops."""
        by_name = {s.name: s for s in self.servers}
        for name in ("kube-router", "kube-proxy", "coredns", "kubelet"):
            if name in by_name:
                by_name[name].stop()
        if "containerd" in by_name:
            _remove_containers(self.lay)
            by_name["containerd"].stop()
        if "port-forward" in by_name:
            by_name["port-forward"].stop()
        if self.registry is not None:
            self.registry.stop()
        self.kube.close()
        self.plane.stop()
        unmount_under(self.lay.state)
        network.delete()


def kubectl(lay: layout.Layout, *args: str, stdin: str | None = None) -> str:
    argv = [str(binaries.path("kubectl")), f"--kubeconfig={lay.kubeconfig}", *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise node.NodeError(f"`kubectl {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def apply(lay: layout.Layout, objects: Sequence[dict[str, Any]]) -> None:
    kubectl(lay, "apply", "-f", "-", stdin=yaml.safe_dump_all(list(objects)))


def unmount_under(root: Path) -> None:
    """Unmount everything mounted below ``root`` (pod volumes, rootfs, netns), deepest first."""
    prefix = str(root.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _sandbox_netns(lay: layout.Layout) -> list[str]:
    """Network namespaces containerd made for the node's pods (to delete with them)."""
    found = []
    for container in node.ctr(lay, "containers", "list", "-q", check=False).stdout.split():
        info = node.ctr(lay, "containers", "info", container, check=False).stdout
        try:
            spec = json.loads(info).get("Spec") or {}
        except json.JSONDecodeError:
            continue
        for namespace in (spec.get("linux") or {}).get("namespaces") or []:
            path = namespace.get("path") or ""
            if namespace.get("type") == "network" and path.startswith("/var/run/netns/cni-"):
                found.append(Path(path).name)
    return sorted(set(found))


def _remove_containers(lay: layout.Layout) -> None:
    namespaces = _sandbox_netns(lay)
    node.clear_containers(lay)
    for name in namespaces:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def clear_leftovers(lay: layout.Layout) -> None:
    """What a run that did not stop cleanly left: containers, mounts, state, the namespace.

    containerd is started on the old state just long enough to kill and remove
    the containers it still knows (their processes outlive it).
    """
    config = lay.containerd_state / "config.toml"
    if config.exists():
        server = processes.ServerProcess(
            name="containerd-cleanup",
            argv=["containerd", "--config", str(config)],
            log_path=lay.state.parent / "cluster-cleanup.log",
        ).start()
        try:
            server.wait_ready(
                lambda: node.ctr(lay, "version", check=False).returncode == 0,
                timeout=node.CONTAINERD_READY_TIMEOUT,
                what="the old containerd state",
            )
            _remove_containers(lay)
        finally:
            server.stop()
    unmount_under(lay.state)
    network.delete()
    keep = lay.token.read_text() if lay.token.exists() else None
    shutil.rmtree(lay.state, ignore_errors=True)
    if keep is not None:
        lay.token.parent.mkdir(parents=True, exist_ok=True)
        lay.token.write_text(keep)
        lay.token.chmod(0o600)


def _credentials(lay: layout.Layout, plane: controlplane.ControlPlane) -> node.NodeCredentials:
    """Client certificates and kubeconfigs of the kubelet, kube-proxy and CoreDNS."""

    def kubeconfig(stem: str, user: str, group: str | None) -> Path:
        pair = issue_client_certificate(
            plane.pki.ca, directory=lay.pki, stem=stem, common_name=user, organization=group
        )
        return controlplane.write_kubeconfig(
            lay.pki / f"{stem}.kubeconfig",
            server=plane.server,
            ca=plane.pki.ca.cert_path,
            client=pair,
            user=user,
        )

    return node.NodeCredentials(
        kubelet=kubeconfig("kubelet", f"system:node:{layout.NODE_NAME}", "system:nodes"),
        proxy=kubeconfig("kube-proxy", "system:kube-proxy", None),
        coredns=kubeconfig("coredns", "dtpoc:coredns", None),
        kube_router=kubeconfig("kube-router", "dtpoc:kube-router", None),
        client_ca=plane.pki.ca.cert_path,
    )


def _node_ready(kube: KubeCluster) -> bool:
    try:
        status = kube.request("GET", f"/api/v1/nodes/{layout.NODE_NAME}").get("status") or {}
    except (ApiException, urllib3.exceptions.HTTPError):
        return False  # 404 until the kubelet registers
    conditions = status.get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _node_untainted(kube: KubeCluster) -> bool:
    """The node-lifecycle controller removes the not-ready taint once the node is Ready."""
    spec = kube.request("GET", f"/api/v1/nodes/{layout.NODE_NAME}").get("spec") or {}
    return not any(t.get("key") == "node.kubernetes.io/not-ready" for t in spec.get("taints") or [])


class _Stopwatch:
    def __init__(self, timings: dict[str, float]) -> None:
        self._timings = timings
        self._last = time.monotonic()

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self._timings[stage] = now - self._last
        self._last = now
        log(f"{stage}: {self._timings[stage]:.1f}s")


def start(lay: layout.Layout, *, archives: Sequence[Path] = ()) -> Node:
    """Bring up the node with these OCI image archives imported (and served to pulls)."""
    node.check_prerequisites()
    timings: dict[str, float] = {}
    watch = _Stopwatch(timings)
    clear_leftovers(lay)
    lay.state.mkdir(parents=True, exist_ok=True)
    network.create()
    watch.lap("network")
    plane = controlplane.start_control_plane(
        lay.plane,
        controlplane.ControlPlaneOptions(
            address=layout.HOST_IP,
            apiserver_port=layout.API_PORT,
            service_cidr=layout.SERVICE_CIDR,
            first_service_ip=layout.FIRST_SERVICE_IP,
            authorization_modes=("Node", "RBAC"),
            endpoint_reconciler="lease",
            controllers=CONTROLLERS,
            extra_apiserver_args=("--enable-admission-plugins=NodeRestriction",),
            extra_controller_manager_args=(
                "--allocate-node-cidrs=false",
                "--node-monitor-grace-period=20s",
            ),
            kubelet_client=True,
            scheduler=True,
        ),
    )
    shutil.copyfile(plane.admin_kubeconfig, lay.kubeconfig)
    lay.kubeconfig.chmod(0o600)
    kube = KubeCluster(kubeconfig_path=lay.kubeconfig, managed=False)
    running = Node(lay=lay, plane=plane, kube=kube, timings=timings)
    watch.lap("control plane")
    try:
        _start_node(running, watch, archives)
    except BaseException:
        running.stop()
        raise
    return running


def _start_node(running: Node, watch: _Stopwatch, archives: Sequence[Path]) -> None:
    lay = running.lay
    credentials = _credentials(lay, running.plane)
    pause = subprocess.run(
        [str(binaries.BUILD_SCRIPT), "--pause-image"], capture_output=True, text=True, check=True
    ).stdout.strip()
    every = [binaries.path("pause").with_name("pause.oci.tar"), *archives]
    running.registry = registry.Registry(every).start()
    mirrors = registry.mirrors_config(running.registry.store.hosts(), running.registry.endpoint)
    running.servers.append(node.start_containerd(lay, pause_image=pause, mirrors=mirrors))
    for archive in every:
        import_archive(lay, archive)
    watch.lap("containerd + images")
    apply(lay, [*addons.coredns_rbac(), *addons.kube_router_rbac()])
    kubelet = node.start_kubelet(lay, credentials)
    running.servers.append(kubelet)
    kubelet.wait_ready(
        lambda: _node_ready(running.kube), timeout=NODE_READY_TIMEOUT, what="node Ready"
    )
    waiting.wait_for(
        lambda: _node_untainted(running.kube), timeout=60, what="the not-ready taint to go"
    )
    watch.lap("kubelet (node Ready)")
    proxy = node.start_kube_proxy(lay, credentials)
    running.servers.append(proxy)
    coredns = node.start_coredns(lay, credentials)
    running.servers.append(coredns)
    _wait_healthy(proxy, port=10256, path="/healthz", timeout=60)
    _wait_healthy(coredns, port=8181, path="/ready", timeout=DNS_READY_TIMEOUT)
    router = node.start_kube_router(lay, credentials)
    running.servers.append(router)
    _wait_healthy(router, port=node.KUBE_ROUTER_HEALTH_PORT, path="/healthz", timeout=60)
    apply(lay, [addons.storage_class(), *addons.local_volumes(lay.volumes)])
    watch.lap("kube-proxy, CoreDNS, kube-router, storage")


def _wait_healthy(server: processes.ServerProcess, *, port: int, path: str, timeout: float) -> None:
    """Wait until a node add-on's health endpoint, ``http://<node>:<port><path>``, answers 200."""
    url = f"http://{layout.NODE_IP}:{port}{path}"
    server.wait_ready(lambda: probes.http_ok(url), timeout=timeout, what=path)


def import_archive(lay: layout.Layout, archive: Path) -> None:
    """``ctr images import`` an OCI archive unless this very file was imported before.

    containerd's image store is a cache kept across starts (layout.Layout.images):
    a stamp with the archive's size and mtime skips a second import.
    """
    stat = archive.stat()
    stamp = lay.images / "imported" / (archive.name + ".stamp")
    signature = f"{archive.resolve()} {stat.st_size} {stat.st_mtime_ns}\n"
    if stamp.exists() and stamp.read_text() == signature:
        return
    node.ctr(lay, "images", "import", "--snapshotter=overlayfs", str(archive))
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(signature)
