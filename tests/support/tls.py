"""A throwaway CA, server and client certificates for TLS tests (made with `cryptography`)."""

from __future__ import annotations

import datetime
import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    def query(self, client_cert: bool = False) -> str:
        """The `ssl_*` query string of a rediss:// URL (the client certificate only when asked)."""
        parts = [f"ssl_ca_certs={self.ca}", "ssl_cert_reqs=required"]
        if client_cert:
            parts += [f"ssl_certfile={self.client_cert}", f"ssl_keyfile={self.client_key}"]
        return "&".join(parts)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def make_tls(directory: Path | None = None) -> TlsFiles:
    """A CA and, signed by it, a server certificate for 127.0.0.1/localhost and a client certificate."""
    root = Path(directory or tempfile.mkdtemp(prefix="qw-tls-"))
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("queueworker test CA"))
        .issuer_name(_name("queueworker test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        common: str, *usage: x509.ObjectIdentifier
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert, key

    files = TlsFiles(
        ca=root / "ca.crt",
        cert=root / "tls.crt",
        key=root / "tls.key",
        client_cert=root / "client.crt",
        client_key=root / "client.key",
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    # Redis uses one certificate as server and as client (replication, sentinels): both usages.
    server, server_key = leaf("redis", ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_key(files.key, server_key)
    client, client_key = leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH)
    files.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    _write_key(files.client_key, client_key)
    return files
