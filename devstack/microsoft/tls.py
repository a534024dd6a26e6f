"""A throw-away certificate authority so the emulator can serve https on loopback.

MSAL for Python refuses an authority that is not https, so the identity endpoints must be
served over TLS; a client trusts them by passing :attr:`LocalCA.ca_bundle` as ``verify=``.
Keys live in memory (the server key touches disk only as long as the server runs, mode 0600,
because :mod:`ssl` loads chains from files) and the certificates are valid for one day.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Short-lived on purpose: nothing signed by a CA from an old run should still be trusted.
VALIDITY = datetime.timedelta(days=1)
#: The names the server certificate covers: the loopback addresses a test or `make dev` uses.
SERVER_DNS_NAMES = ("localhost",)
SERVER_IP_ADDRESSES = ("127.0.0.1", "::1")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class LocalCA:
    """A CA and one server certificate it signed for ``localhost``, 127.0.0.1 and ::1.

    ``files()`` writes the CA bundle and the server chain into a private temporary folder;
    ``cleanup()`` removes it. The CA's own key is never written anywhere.
    """

    def __init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("devstack Microsoft emulator local CA")
        self.ca_certificate = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key()), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        self._server_key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_DNS_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_IP_ADDRESSES]
        self.server_certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(ca_name)
            .public_key(self._server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self._folder: Path | None = None

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM: what a client trusts."""
        return self.ca_certificate.public_bytes(serialization.Encoding.PEM)

    def files(self) -> tuple[Path, Path, Path]:
        """``(ca_bundle, server_chain, server_key)`` paths, written once into a 0700 folder."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="devstack-microsoft-tls-"))
            (self._folder / "ca.pem").write_bytes(self.ca_pem)
            chain = self.server_certificate.public_bytes(serialization.Encoding.PEM) + self.ca_pem
            (self._folder / "server.pem").write_bytes(chain)
            key_path = self._folder / "server-key.pem"
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as key_file:
                key_file.write(_pem_key(self._server_key))
        folder = self._folder
        return folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"

    def trust_bundle(self, base: Path) -> Path:
        """``base`` (a PEM bundle of public CAs) plus this CA, written beside the CA bundle."""
        path = self.files()[0].parent / "trust.pem"
        if not path.exists():
            path.write_bytes(base.read_bytes().rstrip(b"\n") + b"\n" + self.ca_pem)
        return path

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context (TLS 1.2 or later) presenting the server certificate."""
        _, chain, key = self.files()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(chain, key)
        return context

    def cleanup(self) -> None:
        """Remove the written files (the CA bundle included: clients of this run are done)."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
