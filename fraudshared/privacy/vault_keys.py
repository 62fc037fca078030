"""Vault KV v2 adapter of the subject key store, and the factory that picks Vault or the SQLite file.

Layout under the KV v2 mount; ``prefix`` is ingest's own Vault prefix + ``/subject-keys`` (by default
``fraud/ingest/subject-keys``, a prefix only ingest's AppRole policy grants)::

    <prefix>/subjects/<card_token>     {subject_id, key (base64)}   the mapping, and the key by card
    <prefix>/subject-ids/<subject_id>  {key (base64)}               the key by id, to decrypt events
    <prefix>/forgotten/<subject_id>    {forgotten_at}               what forget leaves behind

`forget` deletes the metadata and all versions of the first two (KV v2's permanent destroy).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from fraudshared.config import env_str
from fraudshared.privacy.keys import (
    SUBJECT_KEYS_FILENAME,
    KeyCache,
    PrivacyError,
    SqliteSubjectKeyStore,
    SubjectKey,
    SubjectKeyStore,
    new_subject,
    now_iso,
)
from fraudshared.secrets import ScopedSecretStore, VaultSecretStore, secret_store_from_env

SUBJECT_KEYS_OWNER = "ingest"  # the only service that creates and reads subject keys
SUBJECT_KEYS_PREFIX = "subject-keys"  # under the owner's Vault prefix (fraudshared.secrets.SERVICE_PREFIXES)

_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # what may stand as one segment of a Vault path


class VaultSubjectKeyStore:
    """Subject keys in Vault KV v2 through an authenticated ``hvac.Client``.

    ``before_call`` runs before each Vault request (the factory passes the secrets store's token renewal).
    Calls are blocking: use ``asyncio.to_thread`` in async code.
    """

    def __init__(
        self,
        client: hvac.Client,
        *,
        mount_point: str = "secret",
        prefix: str = f"fraud/{SUBJECT_KEYS_OWNER}/{SUBJECT_KEYS_PREFIX}",
        before_call: Callable[[], None] | None = None,
        cache_entries: int = 100_000,
        cache_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client, self._mount, self._prefix = client, mount_point, prefix.strip("/")
        self._before_call = before_call
        self._cache = KeyCache(cache_entries, cache_ttl_s, clock)

    @classmethod
    def from_secret_store(cls, secrets: VaultSecretStore, **options: Any) -> VaultSubjectKeyStore:
        """Shares the client (address, AppRole or token login, renewal) of the secrets port's Vault adapter."""
        return cls(secrets.client, mount_point=secrets.mount_point, before_call=secrets.ensure_token, **options)

    def drop_cached(self, subject_id: str) -> None:
        self._cache.evict_subject(subject_id)

    def peek(self, card_token: str) -> SubjectKey | None:
        return self._cache.get(f"t:{card_token}")

    def get_or_create_many(self, card_tokens: Sequence[str]) -> dict[str, SubjectKey]:
        return {token: self.get_or_create(token) for token in dict.fromkeys(card_tokens)}

    def get_or_create(self, card_token: str) -> SubjectKey:
        found = self.find(card_token)
        if found:
            return found
        epoch, new = self._cache.epoch, new_subject()
        encoded = base64.b64encode(new.key).decode()
        self._write(self._path("subject-ids", new.subject_id), {"key": encoded})
        # cas=0: written only if the card has no subject yet; a racing writer's subject wins and ours goes.
        if not self._write(self._path("subjects", card_token), {"subject_id": new.subject_id, "key": encoded}, cas=0):
            self._destroy(self._path("subject-ids", new.subject_id))
            winner = self._read(self._path("subjects", card_token))
            if winner is None:
                raise PrivacyError("could not create a subject key in Vault: lost a race, then found no subject")
            return self._cache_subject(epoch, self._subject(winner, None), card_token)
        return self._cache_subject(epoch, new, card_token)

    def find(self, card_token: str) -> SubjectKey | None:
        cached = self._cache.get(f"t:{card_token}")
        if cached:
            return cached
        epoch, data = self._cache.epoch, self._read(self._path("subjects", card_token))
        return self._cache_subject(epoch, self._subject(data, None), card_token) if data else None

    def by_subject_id(self, subject_id: str) -> SubjectKey | None:
        cached = self._cache.get(f"s:{subject_id}")
        if cached:
            return cached
        epoch, data = self._cache.epoch, self._read(self._path("subject-ids", subject_id))
        return self._cache_subject(epoch, self._subject(data, subject_id), None) if data else None

    def forget(self, card_token: str) -> str | None:
        data = self._read(self._path("subjects", card_token))
        if data is None:
            self._cache.evict(card_token, None)
            return None
        subject_id = str(data.get("subject_id", ""))
        # Recorded first and the mapping destroyed last, so a forget cut short is completed by running it again.
        self._write(self._path("forgotten", subject_id), {"forgotten_at": now_iso()})
        self._destroy(self._path("subject-ids", subject_id))
        self._destroy(self._path("subjects", card_token))
        self._cache.evict(card_token, subject_id)
        return subject_id

    def is_forgotten(self, subject_id: str) -> bool:
        return self._read(self._path("forgotten", subject_id)) is not None

    def _cache_subject(self, epoch: int, subject: SubjectKey, card_token: str | None) -> SubjectKey:
        self._cache.put(epoch, subject, card_token)
        return subject

    @staticmethod
    def _subject(data: Mapping[str, Any], subject_id: str | None) -> SubjectKey:
        try:
            return SubjectKey(subject_id or str(data["subject_id"]), base64.b64decode(data["key"], validate=True))
        except (KeyError, ValueError):
            raise PrivacyError("a subject key in Vault is malformed") from None

    def _path(self, kind: str, name: str) -> str:
        if not _SEGMENT.fullmatch(name):
            raise PrivacyError(f"a {kind} name must match {_SEGMENT.pattern}")  # the name is not echoed
        return f"{self._prefix}/{kind}/{name}"

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            response = self._call(
                lambda: self._client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self._mount, raise_on_deleted_version=True
                ),
                expected=hvac.exceptions.InvalidPath,
            )
        except hvac.exceptions.InvalidPath:
            return None
        return dict(response["data"]["data"] or {})

    def _write(self, path: str, data: Mapping[str, str], cas: int | None = None) -> bool:
        try:
            self._call(
                lambda: self._client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret=dict(data), cas=cas, mount_point=self._mount
                ),
                expected=hvac.exceptions.InvalidRequest,
            )
        except hvac.exceptions.InvalidRequest:
            if cas is None:
                raise PrivacyError(f"Vault refused a write under {self._mount}/{self._prefix}") from None
            return False  # check-and-set did not match: somebody else wrote first
        return True

    def _destroy(self, path: str) -> None:
        self._call(lambda: self._client.secrets.kv.v2.delete_metadata_and_all_versions(path, self._mount))

    def _call(self, fn: Callable[[], Any], expected: type[Exception] | tuple[()] = ()) -> Any:
        # Paths hold card tokens, so errors name the mount and prefix only.
        where = f"{self._mount}/{self._prefix} at {self._client.url}"
        try:
            if self._before_call:
                self._before_call()
            return fn()
        except expected:
            raise  # the caller handles it (not found, check-and-set lost)
        except hvac.exceptions.Forbidden:
            raise PrivacyError(f"Vault denied access to {where}") from None
        except hvac.exceptions.VaultError as exc:
            raise PrivacyError(f"Vault answered {type(exc).__name__} for {where}") from None
        except requests.RequestException as exc:
            raise PrivacyError(f"Vault unreachable for {where} ({type(exc).__name__})") from None


def subject_key_store_from_env(
    env: Mapping[str, str] | None = None, var_dir: Path | str | None = None
) -> SubjectKeyStore:
    """Returns the Vault store when ``VAULT_ADDR`` is set (same variables as the secrets port), else SQLite.

    In Vault the keys live under ingest's prefix (``FRAUD_VAULT_PATH_PREFIX``, default ``fraud/ingest``) +
    ``/subject-keys``, with ingest's credentials (or an operator's token for `fraudctl privacy`).

    The SQLite file is ``<var_dir>/subject-keys.db``; ``var_dir`` defaults to ``FRAUD_VAR_DIR`` or ``var``.

    Raises:
        SecretsError: If Vault is configured without credentials or cannot be reached.
    """
    if env_str("VAULT_ADDR", env=env):
        secrets = secret_store_from_env(env, service=SUBJECT_KEYS_OWNER)
        assert isinstance(secrets, ScopedSecretStore) and isinstance(secrets.backend, VaultSecretStore)
        prefix = f"{secrets.prefix}/{SUBJECT_KEYS_PREFIX}" if secrets.prefix else SUBJECT_KEYS_PREFIX
        return VaultSubjectKeyStore.from_secret_store(secrets.backend, prefix=prefix)
    directory = Path(var_dir) if var_dir is not None else Path(env_str("FRAUD_VAR_DIR", "var", env=env))
    return SqliteSubjectKeyStore(directory / SUBJECT_KEYS_FILENAME)
