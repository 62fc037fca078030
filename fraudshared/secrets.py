"""Secrets port and its adapters: HashiCorp Vault (KV v2) and a development JSON file.

Services depend on `SecretStore` only; `secret_store_from_env` picks the adapter. Error messages name the
path and key, never a secret value.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets as _random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import hvac
import hvac.exceptions
import requests

from fraudshared.config import env_float, env_str

log = logging.getLogger(__name__)

DEV_SECRETS_FILENAME = "secrets.dev.json"
GENERATED_KEY_SUFFIX = "_key"


class SecretsError(Exception):
    """A secret could not be read or written (the message never contains secret values)."""


class SecretStore(Protocol):
    """Read access to versioned secrets addressed by ``path`` (e.g. ``pan-tokenization``) and ``key``."""

    def get(self, path: str, key: str) -> str:
        """Returns the latest value of ``key`` in the secret at ``path``."""
        ...

    def get_version(self, path: str, key: str, version: int | None = None) -> tuple[str, int]:
        """Returns ``(value, version)``; ``version=None`` means the latest (for key rotation)."""
        ...


class VaultSecretStore:
    """Reads secrets from a Vault KV v2 mount with token or AppRole auth, renewing the token as it ages.

    Latest versions are cached for ``cache_ttl_s`` so repeated reads do not call Vault each time. Calls are
    blocking (hvac uses requests): read secrets at startup, or through ``asyncio.to_thread`` in async code.
    """

    def __init__(
        self,
        addr: str,
        *,
        token: str = "",
        role_id: str = "",
        secret_id: str = "",
        mount_point: str = "secret",
        approle_mount: str = "approle",
        cache_ttl_s: float = 60.0,
        renew_margin_s: float = 300.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token and not role_id:
            raise SecretsError("Vault needs a token or an AppRole role_id/secret_id")
        self._addr = addr
        self._mount = mount_point
        self._approle = (role_id, secret_id, approle_mount) if role_id else None
        self._cache_ttl_s = cache_ttl_s
        self._renew_margin_s = renew_margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any], int]] = {}
        self._expires_at: float | None = None  # None: the token never expires (or its TTL is unknown).
        self._renewable = False
        self._client = hvac.Client(url=addr, token=token or None, timeout=timeout_s)
        with self._lock:
            if self._approle:
                self._login()
            else:
                self._call("look up the Vault token", lambda: self._track_ttl(self._client.auth.token.lookup_self()))

    def get(self, path: str, key: str) -> str:
        return self.get_version(path, key)[0]

    def get_version(self, path: str, key: str, version: int | None = None) -> tuple[str, int]:
        with self._lock:
            data, current = self._read(path, version)
        if key not in data:
            raise SecretsError(f"Vault secret {self._mount}/{path} (version {current}) has no key {key!r}")
        return str(data[key]), current

    @property
    def client(self) -> hvac.Client:
        """The authenticated hvac client, for other Vault-backed ports (call `ensure_token` before using it)."""
        return self._client

    @property
    def mount_point(self) -> str:
        return self._mount

    def ensure_token(self) -> None:
        """Log in again or renew the token when it is about to expire (what every read here does first)."""
        with self._lock:
            self._ensure_token()

    def put(self, path: str, values: Mapping[str, str]) -> int:
        """Writes a new version of the secret at ``path`` and returns its version number."""
        with self._lock:
            self._ensure_token()
            response = self._call(
                f"write {self._mount}/{path}",
                lambda: self._client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret=dict(values), mount_point=self._mount
                ),
            )
            self._cache.pop(path, None)
        return int(response["data"]["version"])

    def _read(self, path: str, version: int | None) -> tuple[dict[str, Any], int]:
        now = self._clock()
        cached = self._cache.get(path)
        if version is None and cached and now - cached[0] < self._cache_ttl_s:
            return cached[1], cached[2]
        self._ensure_token()
        response = self._call(
            f"read {self._mount}/{path}",
            lambda: self._client.secrets.kv.v2.read_secret_version(
                path=path, version=version, mount_point=self._mount, raise_on_deleted_version=True
            ),
        )
        data, current = dict(response["data"]["data"] or {}), int(response["data"]["metadata"]["version"])
        if version is None:
            self._cache[path] = (now, data, current)
        return data, current

    def _ensure_token(self) -> None:
        if self._expires_at is None or self._clock() < self._expires_at - self._renew_margin_s:
            return
        if self._renewable:
            try:
                self._track_ttl(self._client.auth.token.renew_self())
                log.info("secrets: renewed Vault token")
                return
            except (hvac.exceptions.VaultError, requests.RequestException) as exc:
                if not self._approle:
                    raise SecretsError(f"could not renew the Vault token: {type(exc).__name__}") from None
                log.warning("secrets: Vault token renewal failed (%s); logging in again", type(exc).__name__)
        if self._approle:
            self._login()

    def _login(self) -> None:
        assert self._approle is not None
        role_id, secret_id, mount = self._approle
        response = self._call(
            "log in to Vault with AppRole",
            lambda: self._client.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point=mount),
        )
        self._track_ttl(response)

    def _track_ttl(self, response: Any) -> None:
        # login and renew-self answer {"auth": {...lease_duration...}}; lookup-self answers {"data": {...ttl...}}.
        auth = response.get("auth") or {}
        if auth:
            ttl, renewable = int(auth.get("lease_duration") or 0), bool(auth.get("renewable"))
        else:
            data = response.get("data") or {}
            ttl, renewable = int(data.get("ttl") or 0), bool(data.get("renewable"))
        self._renewable = renewable
        self._expires_at = self._clock() + ttl if ttl > 0 else None

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except hvac.exceptions.Forbidden:
            raise SecretsError(f"could not {what}: permission denied by Vault at {self._addr}") from None
        except hvac.exceptions.InvalidPath:
            raise SecretsError(f"could not {what}: not found in Vault at {self._addr}") from None
        except hvac.exceptions.VaultError as exc:
            raise SecretsError(f"could not {what}: Vault answered {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise SecretsError(f"could not {what}: Vault unreachable at {self._addr} ({type(exc).__name__})") from None


class DevSecretStore:
    """Development secrets from a JSON file; missing ``*_key`` keys are generated and persisted (mode 0600).

    File shape: ``{"<path>": {"<key>": "<value>"}}`` (one version) or ``{"<path>": [{...v1}, {...v2}]}``.
    """

    def __init__(self, file: Path | str = Path("var") / DEV_SECRETS_FILENAME, *, key_bytes: int = 32) -> None:
        self._file = Path(file)
        self._key_bytes = key_bytes
        self._lock = threading.Lock()
        self._data = self._load()
        log.warning("secrets: DEVELOPMENT MODE, reading %s (set VAULT_ADDR to use Vault)", self._file)

    def get(self, path: str, key: str) -> str:
        return self.get_version(path, key)[0]

    def get_version(self, path: str, key: str, version: int | None = None) -> tuple[str, int]:
        with self._lock:
            versions = self._data.get(path) or [{}]
            number = len(versions) if version is None else version
            if not 1 <= number <= len(versions):
                raise SecretsError(f"dev secret {path!r} has no version {number} (file {self._file})")
            values = versions[number - 1]
            if key not in values:
                if version is not None or not key.endswith(GENERATED_KEY_SUFFIX):
                    raise SecretsError(f"dev secret {path!r} has no key {key!r}; add it to {self._file}")
                return self._generate(path, key)
            return str(values[key]), number

    def _generate(self, path: str, key: str) -> tuple[str, int]:
        # Several services share the file: under an inter-process lock, re-read it and generate only if no
        # other process did meanwhile, so a key is never overwritten by another process's older copy.
        with self._file_locked():
            self._data = self._load()
            versions = self._data.get(path) or [{}]
            if key not in versions[-1]:
                versions[-1][key] = _random.token_hex(self._key_bytes)
                self._data[path] = versions
                self._save()
                log.warning("secrets: generated development key %s/%s in %s", path, key, self._file)
            return str(versions[-1][key]), len(versions)

    @contextlib.contextmanager
    def _file_locked(self) -> Iterator[None]:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._file.with_name(self._file.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def put(self, path: str, values: Mapping[str, str]) -> int:
        """Appends a new version of the secret at ``path`` and returns its version number."""
        with self._lock, self._file_locked():
            self._data = self._load()
            versions = self._data.setdefault(path, [])
            versions.append(dict(values))
            self._save()
            return len(versions)

    def _load(self) -> dict[str, list[dict[str, str]]]:
        if not self._file.exists():
            return {}
        try:
            raw = json.loads(self._file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SecretsError(f"cannot read dev secrets file {self._file}: {type(exc).__name__}") from None
        if not isinstance(raw, dict):
            raise SecretsError(f"dev secrets file {self._file} must hold a JSON object")
        return {path: entry if isinstance(entry, list) else [entry] for path, entry in raw.items()}

    def _save(self) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_name(self._file.name + ".tmp")
        payload = {path: versions[0] if len(versions) == 1 else versions for path, versions in self._data.items()}
        # Created 0600 from the start (no window where another user could read it), then renamed atomically.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._file)


def secret_store_from_env(env: Mapping[str, str] | None = None) -> VaultSecretStore | DevSecretStore:
    """Returns a Vault store when ``VAULT_ADDR`` is set, else the development file store.

    Raises:
        SecretsError: If Vault is configured without credentials or cannot be reached.
    """
    addr = env_str("VAULT_ADDR", env=env)
    if not addr:
        var_dir = env_str("FRAUD_VAR_DIR", "var", env=env)
        return DevSecretStore(env_str("FRAUD_SECRETS_FILE", str(Path(var_dir) / DEV_SECRETS_FILENAME), env=env))
    token, role_id = env_str("VAULT_TOKEN", env=env), env_str("VAULT_ROLE_ID", env=env)
    if not token and not role_id:
        raise SecretsError("VAULT_ADDR is set but neither VAULT_TOKEN nor VAULT_ROLE_ID/VAULT_SECRET_ID is")
    return VaultSecretStore(
        addr,
        token=token,
        role_id=role_id,
        secret_id=env_str("VAULT_SECRET_ID", env=env),
        mount_point=env_str("VAULT_KV_MOUNT", "secret", env=env),
        cache_ttl_s=env_float("FRAUD_SECRETS_CACHE_TTL_S", 60.0, minimum=0.0, env=env),
    )
