"""The local runtime's development PKI: a CA, a certificate per service, and the development principals'.

`fraudctl up` calls `ensure_credentials` before it plans anything. Everything is kept across restarts: the
CA under ``<var>/pki/`` (``ca.pem``, ``ca-key.pem``, 0600) is made once, and a certificate is issued again
only when it is missing, was issued by another CA, or expires within a day. Layout (file names are fixed:
tools and other languages' clients read ``ca.pem``, ``cert.pem``, ``key.pem``):

- ``<var>/pki/services/<service>/``: each service's certificate (``service:<service>``, also a server
  certificate for localhost and 127.0.0.1), NATS's server certificate (``service:nats``), and
  ``service:bootstrap`` (the stream and first-grant work of `up`, nothing else);
- ``<var>/credentials/<name>/``: the development principals ``user:dev-<name>``, granted `DEV_ROLES`;
- ``<var>/pki/triton-admin-key`` (0600): the header value Triton's model-management APIs require, read by
  governance only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from rich.console import Console

from fraudctl.procfile import SERVICES, Paths, Plan
from fraudshared import triton_admin
from fraudshared.config import ConfigError
from fraudshared.identity import DEFAULT_TRUST_DOMAIN, Principal
from fraudshared.identity.pki import CredentialFiles, DevCA

# Development principal (directory under <var>/credentials/, principal user:dev-<name>) -> the role `up` grants.
DEV_ROLES: dict[str, str] = {
    "scorer": "scorer",
    "labeler": "labeler",
    "analyst": "analyst",
    "model-owner": "model-owner",
    "approver": "approver",
    "approver-2": "approver",  # the second pair of eyes
    "auditor": "auditor",
    "privacy-officer": "privacy-officer",
    "admin": "admin",
}
BOOTSTRAP = "bootstrap"  # service:bootstrap: creates the streams and appends the first grants, during `up` only
NATS_SERVER = "nats"  # service:nats: nats-server's own (server) certificate
SERVER_NAMES = ("localhost", "127.0.0.1")
RENEW_BEFORE = timedelta(days=1)
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
VALID_DAYS = 30
GRANTED_BY = f"service:{BOOTSTRAP}"


def trust_domain(environ: Mapping[str, str] | None = None) -> str:
    """FRAUD_TRUST_DOMAIN (the services read the same variable), else ``fraud.local``."""
    return (os.environ if environ is None else environ).get("FRAUD_TRUST_DOMAIN", "").strip() or DEFAULT_TRUST_DOMAIN


def dev_principal(name: str) -> Principal:
    """The principal of development credential ``name`` (``user:dev-<name>``)."""
    return Principal(kind="user", name=f"dev-{name}")


@dataclass(frozen=True)
class IssuedCredentials:
    """What `ensure_credentials` made or found (every path absolute)."""

    ca: Path
    services: dict[str, CredentialFiles]
    users: dict[str, CredentialFiles]
    triton_admin_key: Path
    issued: tuple[str, ...]  # which certificates were (re)issued this time, for the progress line


def _still_good(files: CredentialFiles, ca_cert: x509.Certificate, uri: str, now: datetime) -> bool:
    """Whether a certificate can be kept: issued by the current CA for its key file, named ``uri``, a day left."""
    try:
        ca, cert, key = files.read()
    except OSError:
        return False
    if ca != ca_cert.public_bytes(serialization.Encoding.PEM):
        return False
    try:
        parsed = x509.load_pem_x509_certificate(cert)
        parsed.verify_directly_issued_by(ca_cert)
        private = serialization.load_pem_private_key(key, password=None)
        sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    if private.public_key().public_bytes(*_SPKI) != parsed.public_key().public_bytes(*_SPKI):
        return False
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    return uris == [uri] and parsed.not_valid_after_utc - now > RENEW_BEFORE


def _ensure(
    ca: DevCA, ca_cert: x509.Certificate, principal: Principal, out_dir: Path, issued: list[str], server: bool = False
) -> CredentialFiles:
    files = CredentialFiles.in_dir(out_dir)
    if _still_good(files, ca_cert, principal.spiffe_id(ca.trust_domain), datetime.now(UTC)):
        return files
    issued.append(principal.id)
    return ca.issue(principal, out_dir, server_names=SERVER_NAMES if server else (), days=VALID_DAYS)


def ensure_triton_admin_key(path: Path) -> Path:
    """Creates the Triton admin key file (random, 0600) unless it holds a key already; returns its path."""
    try:
        triton_admin.read_admin_key_file(path)
    except ConfigError:
        triton_admin.write_admin_key_file(path)
    return path


def ensure_credentials(paths: Paths, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> IssuedCredentials:
    """Makes (or keeps) the CA and every certificate of the local runtime under ``paths.var_dir``.

    Args:
        paths: The runtime's paths (``pki_dir``, ``credentials_dir``).
        trust_domain: The SPIFFE trust domain of every certificate.

    Returns:
        Where everything is, and which certificates were issued now.

    Raises:
        OSError: If the var dir cannot be written.
    """
    ca = DevCA.load_or_create(paths.pki_dir, trust_domain=trust_domain)
    ca_cert = x509.load_pem_x509_certificate((paths.pki_dir / "ca.pem").read_bytes())
    issued: list[str] = []
    services = {
        name: _ensure(ca, ca_cert, Principal(kind="service", name=name), paths.service_pki(name), issued, server=True)
        for name in (*SERVICES, NATS_SERVER, BOOTSTRAP)
    }
    users = {
        name: _ensure(ca, ca_cert, dev_principal(name), paths.credentials_dir / name, issued) for name in DEV_ROLES
    }
    key = ensure_triton_admin_key(paths.triton_admin_key)
    return IssuedCredentials(paths.pki_dir / "ca.pem", services, users, key, tuple(issued))


def print_usage(plan: Plan, console: Console) -> None:
    """Tells how to call the running platform as a development principal (after `fraudctl up`)."""
    paths = Paths(plan.var_dir)
    creds = paths.credentials_dir
    lines = [
        f"Credentials: {creds}/<name>/{{ca.pem,cert.pem,key.pem}} for user:dev-<name>, <name> one of "
        f"{', '.join(DEV_ROLES)} (each granted its role; CA: {paths.pki_dir / 'ca.pem'}).",
        "  fraudctl --as model-owner model register --from models/<run>",
        "  fraudctl --as approver model approve NAME VERSION   (and --as approver-2: four eyes)",
        f"  FRAUD_CREDENTIAL={creds / 'scorer'} fraudctl ...   (or FRAUD_TOKEN_FILE=<jwt> with FRAUD_TLS_CA_FILE)",
    ]
    if "ingest" in plan.components:
        scorer = creds / "scorer"
        lines.append(
            f"  grpcurl -cacert {scorer}/ca.pem -cert {scorer}/cert.pem -key {scorer}/key.pem "
            f"{plan.address('ingest')} list   (Node @grpc/grpc-js: credentials.createSsl(ca, key, cert))"
        )
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
