"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

With the default :class:`ControlPlaneOptions` there is no scheduler and no
kubelet: pods stay Pending until a test plays the kubelet's part with
``tests/realdeps/kubelet_double.py``. Everything else is the real thing:
RBAC authorization, admission (including ServiceAccount), CRDs, and the
controllers that Jobs, CronJobs, Deployments and namespaces need.

``make cluster`` (``tools/cluster``) starts the same plane with other options
(an address a node can reach, the Node authorizer, every controller) and adds
a real node to it.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dtpoc_local import binaries, ports, probes, processes
from dtpoc_local.pki import (
    CertPair,
    ControlPlanePki,
    generate_control_plane_pki,
    issue_client_certificate,
)

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
"""Cluster IPs are bookkeeping only here: nothing routes to them."""
FIRST_SERVICE_IP = "10.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

CONTROLLERS = (
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "namespace-controller",
    "clusterrole-aggregation-controller",
    "garbage-collector-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "deployment-controller",
    "replicaset-controller",
    "endpoints-controller",
    "endpointslice-controller",
)
"""Controllers the platform relies on; node, volume and cloud controllers stay off."""


@dataclass(frozen=True)
class ControlPlaneOptions:
    """How the plane is started; the defaults are the test fixtures' (loopback, no node).

    ``address`` is where the apiserver listens and what it advertises (the
    endpoint of the ``kubernetes`` Service when ``endpoint_reconciler`` is not
    ``none``); ``apiserver_port`` 0 picks a free one.
    """

    address: str = ports.LOOPBACK
    apiserver_port: int = 0
    service_cidr: str = SERVICE_CLUSTER_IP_RANGE
    first_service_ip: str = FIRST_SERVICE_IP
    authorization_modes: Sequence[str] = ("RBAC",)
    # The "kubernetes" Service cannot have a loopback endpoint; nothing
    # in-cluster needs to reach the apiserver through it on the test plane.
    endpoint_reconciler: str = "none"
    controllers: Sequence[str] = CONTROLLERS
    # Test data is thrown away: skip fsync, which dominates etcd latency on VMs.
    etcd_fsync: bool = False
    extra_apiserver_args: Sequence[str] = field(default_factory=tuple)
    extra_controller_manager_args: Sequence[str] = field(default_factory=tuple)
    # A node's parts: the apiserver's client certificate for kubelets (logs,
    # exec, port-forward) and a kube-scheduler.
    kubelet_client: bool = False
    scheduler: bool = False


ETCD_READY_TIMEOUT = 120.0
APISERVER_READY_TIMEOUT = 240.0
CONTROLLER_MANAGER_READY_TIMEOUT = 180.0


@dataclass
class ControlPlane:
    """The running processes and the files a client needs to reach them."""

    server: str
    admin_kubeconfig: Path
    pki: ControlPlanePki
    etcd: processes.ServerProcess
    apiserver: processes.ServerProcess
    controller_manager: processes.ServerProcess
    scheduler: processes.ServerProcess | None = None

    def stop(self) -> None:
        """Stop in reverse start order, so no component logs its peers' deaths first."""
        for server in (self.scheduler, self.controller_manager, self.apiserver, self.etcd):
            if server is not None:
                server.stop()


def write_kubeconfig(path: Path, *, server: str, ca: Path, client: CertPair, user: str) -> Path:
    """A kubeconfig with embedded certificates, so it works from any directory."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "dtpoc-test",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert_path),
                    "client-key-data": b64(client.key_path),
                },
            }
        ],
        "contexts": [{"name": "dtpoc-test", "context": {"cluster": "dtpoc-test", "user": user}}],
        "current-context": "dtpoc-test",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def _start_etcd(workdir: Path, options: ControlPlaneOptions) -> tuple[processes.ServerProcess, str]:
    client_port, peer_port = ports.free_ports(2)
    client_url = f"http://{ports.LOOPBACK}:{client_port}"
    peer_url = f"http://{ports.LOOPBACK}:{peer_port}"
    etcd = processes.ServerProcess(
        name="etcd",
        argv=[
            str(binaries.path("etcd")),
            "--name=dtpoc-test",
            f"--data-dir={workdir / 'etcd-data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=dtpoc-test={peer_url}",
            f"--unsafe-no-fsync={str(not options.etcd_fsync).lower()}",
            "--log-level=warn",
        ],
        log_path=workdir / "etcd.log",
    ).start()
    etcd.wait_ready(
        lambda: probes.http_ok(f"{client_url}/health"),
        timeout=ETCD_READY_TIMEOUT,
        what=f"{client_url}/health",
    )
    return etcd, client_url


def _start_apiserver(
    workdir: Path, *, pki: ControlPlanePki, etcd_url: str, options: ControlPlaneOptions
) -> tuple[processes.ServerProcess, str]:
    port = options.apiserver_port or ports.free_port()
    server = f"https://{options.address}:{port}"
    apiserver = processes.ServerProcess(
        name="kube-apiserver",
        argv=[
            str(binaries.path("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={options.address}",
            f"--advertise-address={options.address}",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.apiserver.cert_path}",
            f"--tls-private-key-file={pki.apiserver.key_path}",
            f"--client-ca-file={pki.ca.cert_path}",
            f"--authorization-mode={','.join(options.authorization_modes)}",
            "--anonymous-auth=false",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_pub_path}",
            f"--service-account-signing-key-file={pki.service_account_key_path}",
            f"--service-cluster-ip-range={options.service_cidr}",
            "--allow-privileged=true",
            f"--endpoint-reconciler-type={options.endpoint_reconciler}",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=1",
            *_kubelet_client_args(workdir, pki=pki, options=options),
            *options.extra_apiserver_args,
        ],
        log_path=workdir / "kube-apiserver.log",
    ).start()
    context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    context.load_cert_chain(str(pki.admin.cert_path), str(pki.admin.key_path))
    apiserver.wait_ready(
        lambda: probes.http_ok(f"{server}/readyz", context=context),
        timeout=APISERVER_READY_TIMEOUT,
        what=f"{server}/readyz",
    )
    return apiserver, server


def _kubelet_client_args(
    workdir: Path, *, pki: ControlPlanePki, options: ControlPlaneOptions
) -> list[str]:
    if not options.kubelet_client:
        return []
    client = issue_client_certificate(
        pki.ca,
        directory=workdir / "pki",
        stem="apiserver-kubelet-client",
        common_name="kube-apiserver-kubelet-client",
        organization="system:masters",
    )
    return [
        f"--kubelet-client-certificate={client.cert_path}",
        f"--kubelet-client-key={client.key_path}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def _insecure_https_ok(url: str) -> bool:
    """For a component's /healthz on its self-signed serving certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return probes.http_ok(url, context=context)


def _start_component(
    workdir: Path,
    *,
    name: str,
    pki: ControlPlanePki,
    server: str,
    client: CertPair,
    args: list[str],
) -> processes.ServerProcess:
    """Start the kube-scheduler or kube-controller-manager binary ``name`` as ``client``
    (user ``system:<name>`` of ``<name less kube->.kubeconfig`` in ``workdir``), serving
    /healthz on a free loopback port, and wait for it.

    Its serving certificate is self-signed; /healthz is all that is read here."""
    short = name.removeprefix("kube-")
    kubeconfig = write_kubeconfig(
        workdir / f"{short}.kubeconfig",
        server=server,
        ca=pki.ca.cert_path,
        client=client,
        user=f"system:{name}",
    )
    port = ports.free_port()
    component = processes.ServerProcess(
        name=name,
        argv=[
            str(binaries.path(name)),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={ports.LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={workdir / f'{short}-certs'}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
            *args,
        ],
        log_path=workdir / f"{name}.log",
    ).start()
    component.wait_ready(
        lambda: _insecure_https_ok(f"https://{ports.LOOPBACK}:{port}/healthz"),
        timeout=CONTROLLER_MANAGER_READY_TIMEOUT,
        what="/healthz",
    )
    return component


def _start_scheduler(
    workdir: Path, *, pki: ControlPlanePki, server: str
) -> processes.ServerProcess:
    client = issue_client_certificate(
        pki.ca, directory=workdir / "pki", stem="scheduler", common_name="system:kube-scheduler"
    )
    return _start_component(
        workdir, name="kube-scheduler", pki=pki, server=server, client=client, args=[]
    )


def _start_controller_manager(
    workdir: Path, *, pki: ControlPlanePki, server: str, options: ControlPlaneOptions
) -> processes.ServerProcess:
    return _start_component(
        workdir,
        name="kube-controller-manager",
        pki=pki,
        server=server,
        client=pki.controller_manager,
        args=[
            f"--controllers={','.join(options.controllers)}",
            f"--service-account-private-key-file={pki.service_account_key_path}",
            f"--root-ca-file={pki.ca.cert_path}",
            "--use-service-account-credentials=true",
            *options.extra_controller_manager_args,
        ],
    )


def start_control_plane(workdir: Path, options: ControlPlaneOptions | None = None) -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager under ``workdir``.

    Returns once the apiserver's /readyz and the controller-manager's /healthz
    answer 200. Logs, certificates and kubeconfigs stay in ``workdir``; the
    admin kubeconfig (``admin.kubeconfig``) authenticates as a member of
    ``system:masters``.
    """
    options = options or ControlPlaneOptions()
    workdir.mkdir(parents=True, exist_ok=True)
    pki = generate_control_plane_pki(
        workdir / "pki", service_ip=options.first_service_ip, host_ip=options.address
    )
    started: list[processes.ServerProcess] = []
    try:
        etcd, etcd_url = _start_etcd(workdir, options)
        started.append(etcd)
        apiserver, server = _start_apiserver(workdir, pki=pki, etcd_url=etcd_url, options=options)
        started.append(apiserver)
        admin_kubeconfig = write_kubeconfig(
            workdir / "admin.kubeconfig",
            server=server,
            ca=pki.ca.cert_path,
            client=pki.admin,
            user="dtpoc-test-admin",
        )
        controller_manager = _start_controller_manager(
            workdir, pki=pki, server=server, options=options
        )
        started.append(controller_manager)
        scheduler = None
        if options.scheduler:
            scheduler = _start_scheduler(workdir, pki=pki, server=server)
            started.append(scheduler)
    except BaseException:
        for process in reversed(started):
            process.stop()
        raise
    return ControlPlane(
        server=server,
        admin_kubeconfig=admin_kubeconfig,
        pki=pki,
        etcd=etcd,
        apiserver=apiserver,
        controller_manager=controller_manager,
        scheduler=scheduler,
    )
