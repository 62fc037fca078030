"""The checkpoint signing key from governance's own secrets (Vault KV v2, or var/secrets/governance.json)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from fraudshared.audit.keys import SIGNING_SECRET_OWNER, SigningKey, load_signing_key
from fraudshared.secrets import SecretStore, secret_store_from_env


class SecretsSigningKeys:
    """Reads the latest signing key version for every seal, so a rotation takes effect at the next checkpoint."""

    def __init__(self, secrets: SecretStore) -> None:
        self._secrets = secrets

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SecretsSigningKeys:
        """Governance's own secrets store (its AppRole or its file); blocking, so call it in a thread.

        Raises:
            fraudshared.secrets.SecretsError: Vault unreachable or refusing the login (the message names the
                address and auth method), or an unreadable development file.
        """
        return cls(secret_store_from_env(env, service=SIGNING_SECRET_OWNER))

    async def current(self) -> SigningKey:
        """Raises `fraudshared.audit.keys.AuditKeyError` when the key is missing or malformed."""
        # Vault calls block (hvac); the store caches the latest version, so this is cheap between rotations.
        return await asyncio.to_thread(load_signing_key, self._secrets)
