"""How a client (fraudctl, a service, a test) finds its credential and opens a secure channel."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from fraudshared.config import ConfigError
from fraudshared.identity.pki import CredentialFiles
from fraudshared.identity.tls import channel_credentials

ChannelOptions = Sequence[tuple[str, Any]]


@dataclass(frozen=True)
class ClientCredential:
    """What a client presents: a certificate (mTLS) when ``files``, else a bearer ``token``.

    Attributes:
        ca: The CA that signs the servers' certificates.
        files: Client certificate files (mTLS).
        token: An OIDC JWT, sent as ``authorization: Bearer``; never logged.
    """

    ca: Path
    files: CredentialFiles | None = None
    token: str | None = None

    def __repr__(self) -> str:
        return f"ClientCredential(ca={self.ca!s}, files={self.files!r}, token={'<set>' if self.token else None})"

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The gRPC channel credentials for this credential."""
        if self.files is not None:
            return channel_credentials(self.files)
        if self.token is None:
            raise ConfigError("credential has neither certificate files nor a token")
        tls = grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes())
        return grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(self.token))


def _complete_dir(directory: Path, what: str) -> CredentialFiles:
    files = CredentialFiles.in_dir(directory)
    missing = [p.name for p in (files.ca, files.cert, files.key) if not p.is_file()]
    if missing:
        raise ConfigError(f"{what} {directory} lacks {', '.join(missing)}")
    return files


def resolve_credential(as_name: str | None, var_dir: Path, env: Mapping[str, str] | None = None) -> ClientCredential:
    """Finds the client's credential.

    Order: ``as_name`` (a directory under ``<var_dir>/credentials/``); else FRAUD_CREDENTIAL (a directory
    with ca.pem, cert.pem, key.pem); else FRAUD_TOKEN_FILE (a JWT) with FRAUD_TLS_CA_FILE.

    Raises:
        ConfigError: When none is available or the named one is incomplete.
    """
    source = os.environ if env is None else env
    credentials_dir = Path(var_dir) / "credentials"
    if as_name:
        directory = credentials_dir / as_name
        if not directory.is_dir():
            known = sorted(p.name for p in credentials_dir.iterdir()) if credentials_dir.is_dir() else []
            have = ", ".join(known) or "none"
            raise ConfigError(f"no credential named {as_name!r} in {credentials_dir} (have: {have})")
        files = _complete_dir(directory, "credential directory")
        return ClientCredential(ca=files.ca, files=files)
    credential_dir = source.get("FRAUD_CREDENTIAL", "").strip()
    if credential_dir:
        files = _complete_dir(Path(credential_dir), "FRAUD_CREDENTIAL directory")
        return ClientCredential(ca=files.ca, files=files)
    token_file = source.get("FRAUD_TOKEN_FILE", "").strip()
    if token_file:
        ca_file = source.get("FRAUD_TLS_CA_FILE", "").strip()
        if not ca_file:
            raise ConfigError("FRAUD_TOKEN_FILE is set but FRAUD_TLS_CA_FILE (the servers' CA) is not")
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"FRAUD_TOKEN_FILE {token_file} is not readable ({exc.strerror})") from None
        if not token:
            raise ConfigError(f"FRAUD_TOKEN_FILE {token_file} is empty")
        return ClientCredential(ca=Path(ca_file), token=token)
    raise ConfigError(f"no credential: pass --as <name> (see {credentials_dir}/) or set FRAUD_CREDENTIAL")


def secure_channel(
    address: str,
    credential: ClientCredential,
    *,
    options: ChannelOptions = (),
    interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] | None = None,
) -> grpc.Channel:
    """A blocking gRPC channel authenticated with ``credential``."""
    channel = grpc.secure_channel(address, credential.channel_credentials(), options=list(options))
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


def secure_aio_channel(
    address: str,
    credential: ClientCredential,
    *,
    options: ChannelOptions = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    """An asyncio gRPC channel authenticated with ``credential``."""
    return grpc.aio.secure_channel(
        address, credential.channel_credentials(), options=list(options), interceptors=interceptors
    )
