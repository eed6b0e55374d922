"""Throw-away certificates and keys for the local Kubernetes control plane.

One CA signs the apiserver's serving certificate and every client
certificate (admin, controller-manager); a separate RSA key signs service
account tokens. Everything is generated per test session, written with mode
0600, and valid for one day: nothing here is a credential worth keeping.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=1)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertPair:
    """PEM files of one certificate and its private key."""

    cert_path: Path
    key_path: Path

    def cert_pem(self) -> bytes:
        return self.cert_path.read_bytes()

    def key_pem(self) -> bytes:
        return self.key_path.read_bytes()


@dataclass(frozen=True)
class ControlPlanePki:
    """Every file the control plane and its clients need."""

    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    service_account_key_path: Path
    service_account_pub_path: Path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _make_ca(directory: Path) -> tuple[CertPair, _Signer]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("dtpoc-test-ca")
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = CertPair(
        cert_path=_write(directory / "ca.crt", cert.public_bytes(serialization.Encoding.PEM)),
        key_path=_write(directory / "ca.key", _key_pem(key)),
    )
    return pair, _Signer(key=key, cert=cert, directory=directory)


@dataclass(frozen=True)
class _Signer:
    """The CA's key and certificate, issuing certificates into ``directory``."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    directory: Path

    def issue(
        self,
        *,
        stem: str,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
    ) -> CertPair:
        """A certificate for ``usage`` (server or client auth), valid for the names given."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(subject, self.cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if dns_names or ip_addresses:
            names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
            names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert_pem = builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        return CertPair(
            cert_path=_write(self.directory / f"{stem}.crt", cert_pem),
            key_path=_write(self.directory / f"{stem}.key", _key_pem(key)),
        )

    def client(self, *, stem: str, subject: x509.Name) -> CertPair:
        """A client certificate: the apiserver reads the user and group from ``subject``."""
        return self.issue(stem=stem, subject=subject, usage=ExtendedKeyUsageOID.CLIENT_AUTH)


def generate_control_plane_pki(
    directory: Path, *, service_ip: str, host_ip: str
) -> ControlPlanePki:
    """Create the CA, serving and client certificates and the service account key.

    ``host_ip`` is where the apiserver listens (loopback); ``service_ip`` is
    the first address of the service cluster IP range, the in-cluster address
    of ``kubernetes.default`` (a name in the certificate, never contacted).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca, signer = _make_ca(directory)
    apiserver = signer.issue(
        stem="apiserver",
        subject=_name("kube-apiserver"),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        dns_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ip_addresses=(host_ip, service_ip),
    )
    admin = signer.client(stem="admin", subject=_name("dtpoc-test-admin", "system:masters"))
    controller_manager = signer.client(
        stem="controller-manager", subject=_name("system:kube-controller-manager")
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ControlPlanePki(
        ca=ca,
        apiserver=apiserver,
        admin=admin,
        controller_manager=controller_manager,
        service_account_key_path=_write(directory / "sa.key", _key_pem(sa_key)),
        service_account_pub_path=_write(directory / "sa.pub", sa_pub),
    )


def issue_client_certificate(
    ca: CertPair, *, directory: Path, stem: str, common_name: str, organization: str | None = None
) -> CertPair:
    """Another client certificate from the plane's CA (a node's kubelet, proxy, scheduler).

    The apiserver maps ``common_name`` to the user and ``organization`` to its
    group, e.g. ``system:node:<name>`` in ``system:nodes`` for a kubelet.
    """
    ca_key = serialization.load_pem_private_key(ca.key_pem(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"the CA key {ca.key_path} is not the EC key this module writes")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem())
    directory.mkdir(parents=True, exist_ok=True)
    signer = _Signer(key=ca_key, cert=ca_cert, directory=directory)
    return signer.client(stem=stem, subject=_name(common_name, organization))
