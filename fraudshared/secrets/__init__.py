"""Secrets port and its adapters: HashiCorp Vault (KV v2) and development files, one per service.

Services depend on `SecretStore` only and get it from `secret_store_from_env(service=...)`, which keeps each
service inside its own secrets (`scope.SERVICE_SECRETS`). Error messages name paths, keys, the Vault address
and auth method, never a secret value. See docs/secrets.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fraudshared.config import env_float, env_str
from fraudshared.secrets.dev import (
    DEV_SECRETS_DIRNAME,
    DEV_SECRETS_FILENAME,
    GENERATED_KEY_SUFFIX,
    DevSecretStore,
    migrate_shared_file,
)
from fraudshared.secrets.port import SecretsError, SecretStore, all_versions
from fraudshared.secrets.scope import (
    SERVICE_PREFIXES,
    SERVICE_SECRETS,
    VAULT_ROOT,
    OwnerRoutedSecretStore,
    ScopedSecretStore,
    owner_of,
    vault_prefix,
)
from fraudshared.secrets.vault import VaultSecretStore

__all__ = [
    "DEV_SECRETS_DIRNAME",
    "DEV_SECRETS_FILENAME",
    "GENERATED_KEY_SUFFIX",
    "SERVICE_PREFIXES",
    "SERVICE_SECRETS",
    "VAULT_ROOT",
    "DevSecretStore",
    "OwnerRoutedSecretStore",
    "ScopedSecretStore",
    "SecretStore",
    "SecretsError",
    "VaultSecretStore",
    "all_versions",
    "dev_secrets_file",
    "owner_of",
    "secret_store_from_env",
    "vault_prefix",
]

PATH_PREFIX_VAR = "FRAUD_VAULT_PATH_PREFIX"
SERVICE_VAR = "FRAUD_SERVICE_NAME"


def dev_secrets_file(var_dir: Path | str, service: str) -> Path:
    """The development secrets file of ``service``: ``<var_dir>/secrets/<service>.json``."""
    return Path(var_dir) / DEV_SECRETS_DIRNAME / f"{service}.json"


def secret_store_from_env(
    env: Mapping[str, str] | None = None, *, service: str | None = None
) -> ScopedSecretStore | OwnerRoutedSecretStore:
    """The secrets of ``service`` (default ``FRAUD_SERVICE_NAME``): Vault when ``VAULT_ADDR`` is set, else its file.

    With a service, Vault is logged in to at once (a bad address or credential fails here, at start) and
    only that service's paths can be asked for. With none (operator tools), each path is read from its
    owner's file or Vault prefix, with whatever the caller's token or file access allows. In development the
    former shared ``var/secrets.dev.json`` is split into per-service files first (see `migrate_shared_file`).

    Raises:
        SecretsError: Vault configured without credentials, unreachable or refusing the login; an unknown
            service; an unreadable development file.
    """
    service = service or env_str(SERVICE_VAR, env=env) or None
    addr = env_str("VAULT_ADDR", env=env)
    if not addr:
        var_dir = Path(env_str("FRAUD_VAR_DIR", "var", env=env))
        explicit = env_str("FRAUD_SECRETS_FILE", env=env)
        if not explicit:
            migrate_shared_file(var_dir, owner_of)

        def open_dev(owner: str) -> ScopedSecretStore:
            return ScopedSecretStore(DevSecretStore(explicit or dev_secrets_file(var_dir, owner)), owner)

        return open_dev(service) if service else OwnerRoutedSecretStore(open_dev)
    token, role_id = env_str("VAULT_TOKEN", env=env), env_str("VAULT_ROLE_ID", env=env)
    if not token and not role_id:
        raise SecretsError(f"VAULT_ADDR is set ({addr}) but neither VAULT_TOKEN nor VAULT_ROLE_ID/VAULT_SECRET_ID is")
    template = env_str(PATH_PREFIX_VAR, f"{vault_prefix('{service}')}", env=env)
    shared: list[VaultSecretStore] = []  # one login, shared by every owner an operator tool reads from

    def open_vault(owner: str) -> ScopedSecretStore:
        if not shared:
            shared.append(
                VaultSecretStore(
                    addr,
                    token=token,
                    role_id=role_id,
                    secret_id=env_str("VAULT_SECRET_ID", env=env),
                    mount_point=env_str("VAULT_KV_MOUNT", "secret", env=env),
                    approle_mount=env_str("VAULT_APPROLE_MOUNT", "approle", env=env),
                    cache_ttl_s=env_float("FRAUD_SECRETS_CACHE_TTL_S", 60.0, minimum=0.0, env=env),
                )
            )
        return ScopedSecretStore(shared[0], owner, prefix=_prefix(template, owner))

    return open_vault(service) if service else OwnerRoutedSecretStore(open_vault)


def _prefix(template: str, service: str) -> str:
    prefix = template.replace("{service}", service).strip("/")
    if ".." in prefix.split("/") or "*" in prefix or "+" in prefix:
        raise SecretsError(f"{PATH_PREFIX_VAR} must be a plain Vault path such as fraud/{{service}}, got {template!r}")
    return prefix
