"""Vault adapter of the secrets port: KV v2 with token or AppRole auth, renewing the token as it ages.

Errors name the Vault address, the auth method and the path, never a token, SecretID or secret value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import hvac
import hvac.exceptions
import requests

from fraudshared.secrets.port import SecretsError

log = logging.getLogger("fraudshared.secrets")


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
        self.auth_method = f"AppRole at auth/{approle_mount}" if role_id else "token"
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
            raise SecretsError(f"could not {what}: permission denied by Vault at {self._where()}") from None
        except hvac.exceptions.InvalidPath:
            raise SecretsError(f"could not {what}: not found in Vault at {self._where()}") from None
        except hvac.exceptions.InvalidRequest:
            raise SecretsError(f"could not {what}: Vault at {self._where()} refused the request") from None
        except hvac.exceptions.VaultError as exc:
            raise SecretsError(f"could not {what}: Vault at {self._where()} answered {type(exc).__name__}") from None
        except requests.RequestException as exc:
            reason = type(exc).__name__
            raise SecretsError(f"could not {what}: Vault unreachable at {self._where()} ({reason})") from None

    def _where(self) -> str:
        return f"{self._addr} (auth: {self.auth_method})"
