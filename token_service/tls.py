"""TLS for the token service: TLS 1.2 or newer, a local CA for development.

Production passes a certificate and key (``token_service_tls_cert/key``). Without
them, a development CA and a server certificate signed by it are made once in
``<data_dir>/tls/``; lockers trust ``ca.pem`` from there. Private keys are written
with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lockerlink.errors import ConfigError
from lockerlink.settings import Settings

_CA_DAYS = 3650
_SERVER_DAYS = 825


@dataclass(frozen=True)
class TlsFiles:
    """Where the server's certificate and key are, and the CA lockers should trust."""

    cert: Path
    key: Path
    ca: Path | None


def tls_files(settings: Settings) -> TlsFiles:
    """The configured certificate, or the development one (made when missing)."""
    cert, key = settings.token_service_tls_cert, settings.token_service_tls_key
    if cert is not None or key is not None:
        if cert is None or key is None:
            raise ConfigError(
                "LOCKERLINK_TOKEN_SERVICE_TLS_CERT and _KEY must be set together",
                setting="token_service_tls_cert",
            )
        return TlsFiles(cert, key, None)
    return ensure_dev_certificate(
        settings.data_dir / "tls", settings.token_service_host
    )


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context that refuses anything older than TLS 1.2."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load TLS certificate {files.cert}: {exc}",
            setting="token_service_tls_cert",
        ) from exc
    return context


def client_context(ca: Path) -> ssl.SSLContext:
    """A client context trusting ``ca`` (what a locker uses)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def ensure_dev_certificate(directory: Path, host: str) -> TlsFiles:
    """A development CA and a server certificate for ``host``, made once."""
    files = TlsFiles(
        directory / "server.pem", directory / "server.key", directory / "ca.pem"
    )
    if files.cert.exists() and files.key.exists() and files.ca and files.ca.exists():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lockerlink dev CA")])
    ca_cert = _ca_certificate(ca_key, ca_name)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _server_certificate(server_key, ca_key, ca_name, host)
    _write_private(directory / "ca.key", _key_pem(ca_key))
    _write_private(files.key, _key_pem(server_key))
    files.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    assert files.ca is not None
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def _ca_certificate(
    key: ec.EllipticCurvePrivateKey, name: x509.Name
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    host: str,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    try:
        address = ipaddress.ip_address(host)
        if address != ipaddress.ip_address("127.0.0.1"):
            names.append(x509.IPAddress(address))
    except ValueError:
        if host != "localhost":
            names.append(x509.DNSName(host))
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "lockerlink token service")]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
