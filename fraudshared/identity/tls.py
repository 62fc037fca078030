"""TLS credentials for gRPC servers and clients and for NATS, from `CredentialFiles`.

grpc python cannot "request but not require" a client certificate: with ``require_client_auth=False`` it
does not even ask for one. So the main port REQUIRES a certificate (mTLS) and callers holding an OIDC
bearer token use a second, token port (`token_server_credentials`).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import grpc

from fraudshared.config import ConfigError
from fraudshared.identity.pki import CredentialFiles


def server_credentials(files: CredentialFiles) -> grpc.ServerCredentials:
    """Server TLS that requires a client certificate signed by ``files.ca``."""
    ca, cert, key = files.read()
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def token_server_credentials(files: CredentialFiles) -> grpc.ServerCredentials:
    """Server TLS without client certificates: the port for bearer-token (OIDC) callers."""
    _, cert, key = files.read()
    return grpc.ssl_server_credentials([(key, cert)], require_client_auth=False)


def channel_credentials(files: CredentialFiles) -> grpc.ChannelCredentials:
    """Client mTLS: presents ``files.cert`` and verifies the server against ``files.ca``."""
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def ssl_context(files: CredentialFiles) -> ssl.SSLContext:
    """A client `ssl.SSLContext` presenting our certificate and verifying the server (for NATS)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def _readable(variable: str, env: Mapping[str, str]) -> Path:
    value = env.get(variable, "").strip()
    if not value:
        raise ConfigError(f"{variable} is required but not set (TLS is mandatory; fraudctl up writes it)")
    path = Path(value)
    if not os.access(path, os.R_OK) or not path.is_file():
        raise ConfigError(f"{variable} points at {path}, which is not a readable file")
    return path


def service_credential_files(service: str, env: Mapping[str, str] | None = None) -> CredentialFiles:
    """The credential files of ``service`` from the environment.

    Reads FRAUD_TLS_CA_FILE, FRAUD_<SERVICE>_TLS_CERT_FILE and FRAUD_<SERVICE>_TLS_KEY_FILE.

    Raises:
        ConfigError: Naming the missing variable or the unreadable file.
    """
    source = os.environ if env is None else env
    prefix = f"FRAUD_{service.upper().replace('-', '_')}_TLS"
    return CredentialFiles(
        ca=_readable("FRAUD_TLS_CA_FILE", source),
        cert=_readable(f"{prefix}_CERT_FILE", source),
        key=_readable(f"{prefix}_KEY_FILE", source),
    )
