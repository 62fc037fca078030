"""Identity and access: principals, the development CA, TLS credentials and client credentials.

See docs/security.md for how callers authenticate and which roles may call which method.
"""

from fraudshared.identity.client import ClientCredential, resolve_credential, secure_aio_channel, secure_channel
from fraudshared.identity.pki import CredentialFiles, DevCA
from fraudshared.identity.principal import (
    DEFAULT_TRUST_DOMAIN,
    AuthError,
    NoPrincipal,
    Principal,
    acting_as,
    current_principal,
)
from fraudshared.identity.tls import (
    channel_credentials,
    server_credentials,
    service_credential_files,
    ssl_context,
    token_server_credentials,
)

__all__ = [
    "DEFAULT_TRUST_DOMAIN",
    "AuthError",
    "ClientCredential",
    "CredentialFiles",
    "DevCA",
    "NoPrincipal",
    "Principal",
    "acting_as",
    "channel_credentials",
    "current_principal",
    "resolve_credential",
    "secure_aio_channel",
    "secure_channel",
    "server_credentials",
    "service_credential_files",
    "ssl_context",
    "token_server_credentials",
]
