"""Which service owns which secret, and the stores that keep each service inside its own secrets.

A service's secrets live under its own prefix: in Vault ``<mount>/fraud/<service>/<path>`` (the per-service
AppRole's policy grants exactly those paths, infra/terraform/modules/vault-policy), in development its own
file ``var/secrets/<service>.json``. Callers keep asking for the short path (``pan-tokenization``); the
scoped store maps it, and refuses a path another service owns with an error naming the path and the owner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fraudshared.secrets.port import SecretsError, SecretStore

VAULT_ROOT = "fraud"  # Vault paths are <mount>/fraud/<service>/<path> unless FRAUD_VAULT_PATH_PREFIX says otherwise

# The one table of who reads what (docs/secrets.md; the vault-policy module's defaults say the same).
SERVICE_SECRETS: Mapping[str, frozenset[str]] = {
    "ingest": frozenset({"pan-tokenization"}),  # hmac_key: the card token's HMAC key, versioned
    "governance": frozenset({"audit-signing", "governance-db", "triton-admin"}),
    "features": frozenset(),
    "scoring": frozenset(),
    "monitor": frozenset(),
}
# Vault prefixes (not single secrets) a service manages: ingest's per-card subject keys (vault_keys).
SERVICE_PREFIXES: Mapping[str, frozenset[str]] = {"ingest": frozenset({"subject-keys"})}


def owner_of(path: str) -> str | None:
    """The service that owns the secret at ``path``, or None when no service does."""
    return next((service for service, paths in SERVICE_SECRETS.items() if path in paths), None)


def vault_prefix(service: str) -> str:
    """The default Vault path prefix of ``service``: ``fraud/<service>``."""
    return f"{VAULT_ROOT}/{service}"


class ScopedSecretStore:
    """One service's view of the secrets: only the paths it owns, read from its own backend.

    ``backend`` is the service's own store (its file, or Vault logged in with its AppRole); ``prefix`` is
    put before every path (``fraud/ingest`` in Vault, empty for a per-service file).
    """

    def __init__(self, backend: SecretStore, service: str, *, prefix: str = "") -> None:
        if service not in SERVICE_SECRETS:
            raise SecretsError(f"unknown service {service!r} for secrets; known: {', '.join(sorted(SERVICE_SECRETS))}")
        self.backend, self.service, self.prefix = backend, service, prefix.strip("/")

    def get(self, path: str, key: str) -> str:
        return self.get_version(path, key)[0]

    def get_version(self, path: str, key: str, version: int | None = None) -> tuple[str, int]:
        return self.backend.get_version(self.full_path(path), key, version)

    def put(self, path: str, values: Mapping[str, str]) -> int:
        """Writes a new version (a rotation) through the backend, when it can write."""
        put: Callable[[str, Mapping[str, str]], int] | None = getattr(self.backend, "put", None)
        if put is None:
            raise SecretsError(f"the secrets backend of {self.service} cannot write {path!r}")
        return put(self.full_path(path), values)

    def full_path(self, path: str) -> str:
        """The backend path of ``path``, refused when another service owns it.

        Raises:
            SecretsError: Naming the path, the asking service and the owner (never a value).
        """
        if path not in SERVICE_SECRETS[self.service]:
            owner = owner_of(path)
            whose = f"it belongs to {owner}" if owner else "no service owns it"
            raise SecretsError(
                f"service {self.service} may not read secret {path!r} ({whose}; {self.service} reads only "
                f"{', '.join(sorted(SERVICE_SECRETS[self.service])) or 'no secrets'})"
            )
        return f"{self.prefix}/{path}" if self.prefix else path


class OwnerRoutedSecretStore:
    """For operator tools that name no service (`fraudctl`): each path is read from its owner's store.

    ``open_store(service)`` returns that service's `ScopedSecretStore`; it is called once per owner, lazily.
    What an operator may actually read is still decided by the files' owner or the Vault token's policy.
    """

    def __init__(self, open_store: Callable[[str], ScopedSecretStore]) -> None:
        self._open, self._stores = open_store, dict[str, ScopedSecretStore]()

    def get(self, path: str, key: str) -> str:
        return self.get_version(path, key)[0]

    def get_version(self, path: str, key: str, version: int | None = None) -> tuple[str, int]:
        return self.store_for(path).get_version(path, key, version)

    def put(self, path: str, values: Mapping[str, str]) -> int:
        """Writes a new version at the owner's path (rotation by an operator)."""
        return self.store_for(path).put(path, values)

    def store_for(self, path: str) -> ScopedSecretStore:
        """The owning service's store.

        Raises:
            SecretsError: If no service owns ``path``.
        """
        owner = owner_of(path)
        if owner is None:
            raise SecretsError(f"no service owns secret {path!r}; owned paths: {', '.join(_owned())}")
        if owner not in self._stores:
            self._stores[owner] = self._open(owner)
        return self._stores[owner]


def _owned() -> list[str]:
    return sorted(path for paths in SERVICE_SECRETS.values() for path in paths)
