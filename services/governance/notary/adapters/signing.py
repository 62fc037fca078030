"""The checkpoint signing key from the secrets port (Vault KV v2, or the development file)."""

from __future__ import annotations

import asyncio

from fraudshared.audit.keys import SigningKey, load_signing_key
from fraudshared.secrets import SecretStore


class SecretsSigningKeys:
    """Reads the latest signing key version for every seal, so a rotation takes effect at the next checkpoint."""

    def __init__(self, secrets: SecretStore) -> None:
        self._secrets = secrets

    async def current(self) -> SigningKey:
        """Raises `fraudshared.audit.keys.AuditKeyError` when the key is missing or malformed."""
        # Vault calls block (hvac); the store caches the latest version, so this is cheap between rotations.
        return await asyncio.to_thread(load_signing_key, self._secrets)
