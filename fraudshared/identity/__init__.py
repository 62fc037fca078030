"""Identity and access: principals, the development CA, TLS credentials and client credentials.

See docs/security.md for how callers authenticate and which roles may call which method.
"""

from fraudshared.identity.client import ClientCredential, resolve_credential, secure_aio_channel, secure_channel
from fraudshared.identity.grants import GrantEntry, Grants, follow_grants, grant_role, revoke_role
from fraudshared.identity.interceptor import AuthInterceptor
from fraudshared.identity.oidc import OidcConfig, OidcVerifier
from fraudshared.identity.pki import CredentialFiles, DevCA
from fraudshared.identity.policy import ACCESS, ANY_PRINCIPAL, OPEN, ROLES, SERVICE_ROLE, allowed
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
    "ACCESS",
    "ANY_PRINCIPAL",
    "DEFAULT_TRUST_DOMAIN",
    "OPEN",
    "ROLES",
    "SERVICE_ROLE",
    "AuthError",
    "AuthInterceptor",
    "ClientCredential",
    "CredentialFiles",
    "DevCA",
    "GrantEntry",
    "Grants",
    "NoPrincipal",
    "OidcConfig",
    "OidcVerifier",
    "Principal",
    "acting_as",
    "allowed",
    "channel_credentials",
    "current_principal",
    "follow_grants",
    "grant_role",
    "resolve_credential",
    "revoke_role",
    "secure_aio_channel",
    "secure_channel",
    "server_credentials",
    "service_credential_files",
    "ssl_context",
    "token_server_credentials",
]
