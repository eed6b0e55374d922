"""The node's network namespace and the veth pair that joins it to the host.

Host side: ``dtpoc0`` with 10.213.0.1/30 and a route to the pods' /24 through
the node. Node side: ``eth0`` with 10.213.0.2/30, loopback, IP forwarding (the
pods' bridge routes through it) and bridged traffic through iptables (so
kube-proxy's rules see pod-to-pod Service traffic on the bridge). No default
route anywhere in the namespace: only the project's addresses are reachable.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence

from tools.cluster import layout


class NetworkError(RuntimeError):
    """The namespace or veth could not be made, or an address is already in use."""


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


def in_netns(argv: Sequence[str]) -> list[str]:
    """``argv`` run inside the node's network namespace, nothing else changed.

    Not ``ip netns exec``: that also remounts /sys in a new mount namespace,
    which hides /sys/fs/cgroup ("failed to find cgroup mounts" from the
    kubelet). nsenter execs, so the process keeps its pid (and its parent-death
    signal).
    """
    return ["nsenter", f"--net=/run/netns/{layout.NETNS}", "--", *argv]


def exists() -> bool:
    return layout.NETNS in _run(["ip", "netns", "list"]).stdout.split()


def check_free() -> None:
    """Refuse to start when a subnet the node would use is already routed on the host."""
    ours = [layout.VETH_SUBNET, layout.POD_CIDR, layout.SERVICE_CIDR]
    routes = _run(["ip", "-4", "-o", "route", "show"]).stdout.splitlines()
    for line in routes:
        destination = line.split()[0]
        if destination == "default" or f"dev {layout.HOST_IF}" in line:
            continue
        try:
            routed = ipaddress.ip_network(destination, strict=False)
        except ValueError:
            continue
        for subnet in ours:
            if routed.overlaps(ipaddress.ip_network(subnet)):
                raise NetworkError(
                    f"{subnet} overlaps the host's route {line.strip()!r}; "
                    "the node's addresses are in tools/cluster/layout.py"
                )


def create() -> None:
    """Make the namespace, the veth pair, addresses, routes and sysctls (idempotent: recreated)."""
    delete()
    check_free()
    _run(["ip", "netns", "add", layout.NETNS])
    veth = ["ip", "link", "add", layout.HOST_IF, "type", "veth"]
    _run([*veth, "peer", "name", layout.NODE_IF, "netns", layout.NETNS])
    _run(["ip", "addr", "add", f"{layout.HOST_IP}/{layout.PREFIX_LEN}", "dev", layout.HOST_IF])
    _run(["ip", "link", "set", layout.HOST_IF, "up"])
    node_addr = f"{layout.NODE_IP}/{layout.PREFIX_LEN}"
    _run(in_netns(["ip", "addr", "add", node_addr, "dev", layout.NODE_IF]))
    _run(in_netns(["ip", "link", "set", layout.NODE_IF, "up"]))
    _run(in_netns(["ip", "link", "set", "lo", "up"]))
    # The host reaches pods (port-forward does not need it; debugging does).
    _run(["ip", "route", "add", layout.POD_CIDR, "via", layout.NODE_IP, "dev", layout.HOST_IF])
    for key, value in (("net.ipv4.ip_forward", "1"), ("net.bridge.bridge-nf-call-iptables", "1")):
        _run(in_netns(["sysctl", "-q", "-w", f"{key}={value}"]))


def delete() -> None:
    """Remove the veth pair (its peer goes with it) and the namespace; no error if absent."""
    _run(["ip", "link", "del", layout.HOST_IF], check=False)
    if exists():
        _run(["ip", "netns", "del", layout.NETNS], check=False)
