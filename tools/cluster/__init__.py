"""``make cluster``: a real single-node Kubernetes on this machine, with the chart installed.

The control plane is the test suite's (:mod:`dtpoc_local.controlplane`,
started with :class:`~dtpoc_local.controlplane.ControlPlaneOptions` for a
node); the node (containerd, kubelet, kube-proxy, CoreDNS, kube-router and
the pods) runs in a network namespace joined to the host by a veth pair, the
way kind runs its node in a container: the kubelet refuses a loopback node address, and the
namespace keeps every packet between addresses the project made. See
docs/deploy.md ("This machine: make cluster").

Modules: :mod:`.layout` (addresses and paths), :mod:`.network`, :mod:`.node`
(containerd, kubelet, kube-proxy, CoreDNS, kube-router), :mod:`.registry`
(the images served to pulls), :mod:`.addons` (storage, RBAC of DNS and
kube-router), :mod:`.release` (images, helm, port-forward), :mod:`.cluster`
(bring-up and tear-down), ``__main__`` (the CLI).
"""
