"""A development certificate authority (EC P-256) that issues SPIFFE-style principal certificates.

For one machine and for tests only: production certificates come from the organisation's CA (or a SPIFFE
workload API); the services only ever read PEM files (see `tls.service_credential_files`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fraudshared.identity.principal import DEFAULT_TRUST_DOMAIN, Principal

_CA_DAYS = 3650
_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class CredentialFiles:
    """The three PEM files of one credential: the CA to trust, our certificate and our key."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, directory: Path | str) -> CredentialFiles:
        """The conventional layout: ``<d>/ca.pem``, ``<d>/cert.pem``, ``<d>/key.pem``."""
        d = Path(directory)
        return cls(d / "ca.pem", d / "cert.pem", d / "key.pem")

    def read(self) -> tuple[bytes, bytes, bytes]:
        """Returns (ca, cert, key) PEM bytes."""
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class DevCA:
    """A development CA kept as ``ca.pem`` + ``ca-key.pem`` (both 0600) in one directory."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, trust_domain: str) -> None:
        self.cert = cert
        self._key = key
        self.trust_domain = trust_domain

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load_or_create(cls, directory: Path | str, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> DevCA:
        """Loads the CA from ``directory`` or creates it there on first use.

        Args:
            directory: Holds ``ca.pem`` and ``ca-key.pem``.
            trust_domain: The SPIFFE trust domain the CA issues identities in.

        Returns:
            The CA.
        """
        d = Path(directory)
        cert_path, key_path = d / "ca.pem", d / "ca-key.pem"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} is not an EC private key")
            return cls(cert, key, trust_domain)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"fraud development CA ({trust_domain})")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        _write(key_path, _key_pem(key), 0o600)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o600)
        return cls(cert, key, trust_domain)

    def issue(
        self, principal: Principal, out_dir: Path | str, *, server_names: Sequence[str] = (), days: int = 30
    ) -> CredentialFiles:
        """Issues a certificate for ``principal`` into ``out_dir`` (ca.pem, cert.pem, key.pem 0600).

        Args:
            principal: Carried as the URI SAN ``spiffe://<trust domain>/<kind>/<name>``.
            out_dir: Directory to write the three files to.
            server_names: DNS names / IP addresses; when given the certificate also serves TLS.
            days: Validity.

        Returns:
            The written files.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(principal.spiffe_id(self.trust_domain))]
        for server_name in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(server_name)))
            except ValueError:
                sans.append(x509.DNSName(server_name))
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server_names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, principal.id)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        files = CredentialFiles.in_dir(out_dir)
        _write(files.key, _key_pem(key), 0o600)
        _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(files.ca, self.ca_pem, 0o644)
        return files
