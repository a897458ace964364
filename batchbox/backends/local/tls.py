"""TLS for the local stack: a local certificate authority and one server certificate for ``127.0.0.1`` / ``localhost``.

``ensure_tls_files(directory)`` makes them once, with the ``cryptography`` package, and reuses them afterwards:

- ``ca.pem``: the CA's certificate, the bundle clients are told (``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``, node
  agents). The CA's private key is never written: it signs the server certificate once and is dropped, so nothing
  on this machine can mint another certificate this CA vouches for.
- ``server.pem`` / ``server-key.pem`` (mode 0600): what Azurite (``--cert/--key``) and the emulator (uvicorn's
  ``ssl_certfile`` / ``ssl_keyfile``) serve, valid for ``127.0.0.1``, ``::1`` and ``localhost``.

The three files appear together (made in a private directory, then renamed into place). When the server certificate
is about to expire (or the files are incomplete) a new CA and certificate are made; clients then need the new
``ca.pem``. Private keys are never logged or printed.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_FILE_NAME",
    "SERVER_CERT_NAME",
    "SERVER_KEY_NAME",
    "TlsFiles",
    "ensure_tls_files",
    "read_tls_files",
    "write_private_key",
]

CA_FILE_NAME = "ca.pem"
SERVER_CERT_NAME = "server.pem"
SERVER_KEY_NAME = "server-key.pem"

_CA_LIFETIME = timedelta(days=3650)
_SERVER_LIFETIME = timedelta(days=825)
"""At most 825 days: the longest validity some TLS clients accept for a server certificate."""
_RENEW_BEFORE = timedelta(days=30)
_BACKDATE = timedelta(minutes=5)
_SERVER_NAMES = ("localhost",)
_SERVER_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """Where the local stack's TLS material lives.

    Attributes:
        ca_bundle: the local CA's certificate (PEM): what clients and node agents trust.
        server_cert: the server certificate (PEM) for 127.0.0.1 / ::1 / localhost.
        server_key: its private key (PEM, mode 0600).
    """

    ca_bundle: Path
    server_cert: Path
    server_key: Path


def _files_in(directory: Path) -> TlsFiles:
    return TlsFiles(directory / CA_FILE_NAME, directory / SERVER_CERT_NAME, directory / SERVER_KEY_NAME)


def read_tls_files(directory: Path) -> TlsFiles | None:
    """The TLS files in ``directory`` when all three exist and the server certificate is not about to expire."""
    files = _files_in(directory)
    if not all(path.is_file() for path in (files.ca_bundle, files.server_cert, files.server_key)):
        return None
    try:
        cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    except (OSError, ValueError):
        return None
    if cert.not_valid_after_utc - _RENEW_BEFORE < datetime.now(timezone.utc):
        return None
    return files


def ensure_tls_files(directory: Path) -> TlsFiles:
    """The local CA and server certificate in ``directory``, made when missing or about to expire.

    Callers serialise this per state directory (``LocalStack.up`` holds its lock).

    Raises:
        OSError: the directory cannot be written.
    """
    existing = read_tls_files(directory)
    if existing is not None:
        return existing
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tls-", dir=directory.parent))
    try:
        _write_new_files(staging)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _files_in(directory)


def _write_new_files(directory: Path) -> None:
    os.chmod(directory, 0o755)
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batchbox local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_LIFETIME)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in _SERVER_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in _SERVER_ADDRESSES]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _SERVER_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = _files_in(directory)
    write_private_key(files.server_key, server_key)
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.ca_bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))


def write_private_key(path: Path, key: PrivateKeyTypes) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM to a new file readable by its owner only (0600)."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
