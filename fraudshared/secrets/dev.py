"""Development adapter of the secrets port: one JSON file per service, mode 0600, under ``var/secrets/``.

`migrate_shared_file` splits the former shared ``var/secrets.dev.json`` (every service's keys in one file)
into those per-service files on first start, by the ownership table in `fraudshared.secrets.scope`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets as _random
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fraudshared.secrets.port import SecretsError

log = logging.getLogger("fraudshared.secrets")

DEV_SECRETS_FILENAME = "secrets.dev.json"  # the former shared file, migrated away on first start
DEV_SECRETS_DIRNAME = "secrets"
UNASSIGNED = "unassigned"  # where a migrated path no service owns is kept (never dropped)
GENERATED_KEY_SUFFIX = "_key"


class DevSecretStore:
    """Development secrets from a JSON file; missing ``*_key`` keys are generated and persisted (mode 0600).

    File shape: ``{"<path>": {"<key>": "<value>"}}`` (one version) or ``{"<path>": [{...v1}, {...v2}]}``.
    """

    def __init__(self, file: Path | str = Path("var") / DEV_SECRETS_FILENAME, *, key_bytes: int = 32) -> None:
        self._file = Path(file)
        self._key_bytes = key_bytes
        self._lock = threading.Lock()
        self._data = self._load()
        if self._file.exists() and self._file.stat().st_mode & 0o077:
            os.chmod(self._file, 0o600)  # a copy or an editor left it readable by others: owner only again
            log.warning("secrets: %s was readable by other users; set it to 0600", self._file)
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

    def _file_locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self._file.with_name(self._file.name + ".lock"))

    def put(self, path: str, values: Mapping[str, str]) -> int:
        """Appends a new version of the secret at ``path`` and returns its version number."""
        with self._lock, self._file_locked():
            self._data = self._load()
            versions = self._data.setdefault(path, [])
            versions.append(dict(values))
            self._save()
            return len(versions)

    def _load(self) -> dict[str, list[dict[str, str]]]:
        return read_dev_file(self._file)

    def _save(self) -> None:
        write_dev_file(self._file, self._data)


@contextlib.contextmanager
def file_lock(lock_file: Path) -> Iterator[None]:
    """An exclusive inter-process lock held on ``lock_file`` (created 0600, its directory 0700)."""
    _private_dir(lock_file.parent)
    fd = os.open(lock_file, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_dev_file(file: Path) -> dict[str, list[dict[str, str]]]:
    """``{path: [version 1 values, version 2 values, ...]}`` from a development file ({} when absent)."""
    if not file.exists():
        return {}
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SecretsError(f"cannot read dev secrets file {file}: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise SecretsError(f"dev secrets file {file} must hold a JSON object")
    return {path: entry if isinstance(entry, list) else [entry] for path, entry in raw.items()}


def write_dev_file(file: Path, data: Mapping[str, list[dict[str, str]]]) -> None:
    """Writes atomically, mode 0600 from the start (no window where another user could read it)."""
    _private_dir(file.parent)
    tmp = file.with_name(file.name + ".tmp")
    payload = {path: versions[0] if len(versions) == 1 else versions for path, versions in data.items()}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(payload, out, indent=2, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, file)


def _private_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def migrate_shared_file(var_dir: Path, owner_of: Callable[[str], str | None]) -> list[str]:
    """Splits ``<var_dir>/secrets.dev.json`` into ``<var_dir>/secrets/<service>.json`` by owner, then removes it.

    Every path of the shared file lands in its owner's file (``owner_of(path)``), or in ``unassigned.json``
    when no service owns it; a path the owner's file already holds with other values is kept there and the
    shared file's copy goes to ``unassigned.json`` under ``<path>@secrets.dev.json``. The shared file is
    removed only after every path was written and read back. Safe when several services start at once.

    Returns:
        The paths moved (names only), [] when there was nothing to migrate.

    Raises:
        SecretsError: If the shared file cannot be read or a per-service file cannot be written.
    """
    shared = var_dir / DEV_SECRETS_FILENAME
    target_dir = var_dir / DEV_SECRETS_DIRNAME
    if not shared.exists():
        return []
    with file_lock(target_dir / ".migrate.lock"):
        legacy = read_dev_file(shared) if shared.exists() else {}
        if not legacy:
            shared.unlink(missing_ok=True)
            return []
        by_owner: dict[str, dict[str, list[dict[str, str]]]] = {}
        for path, versions in legacy.items():
            by_owner.setdefault(owner_of(path) or UNASSIGNED, {})[path] = versions
        conflicts: dict[str, list[dict[str, str]]] = {}
        for owner, moved in by_owner.items():
            if owner != UNASSIGNED:
                conflicts.update(_merge_into(target_dir / f"{owner}.json", moved))
        unassigned = target_dir / f"{UNASSIGNED}.json"
        leftovers = {**by_owner.get(UNASSIGNED, {}), **conflicts}
        clash = _merge_into(unassigned, leftovers) if leftovers else {}
        if clash:  # kept under a fresh name each time: nothing is ever overwritten or dropped
            _merge_into(unassigned, _fresh_names(clash, read_dev_file(unassigned)))
        _check_migrated(legacy, target_dir, owner_of)
        shared.unlink()
        shared.with_name(shared.name + ".lock").unlink(missing_ok=True)
    log.warning("secrets: split %s into %s/<service>.json (%s)", shared, target_dir, ", ".join(sorted(legacy)))
    return sorted(legacy)


def _merge_into(file: Path, moved: Mapping[str, list[dict[str, str]]]) -> dict[str, list[dict[str, str]]]:
    """Adds ``moved`` to ``file`` under its lock; returns what the file already held with other values."""
    conflicts: dict[str, list[dict[str, str]]] = {}
    with file_lock(file.with_name(file.name + ".lock")):
        current = read_dev_file(file)
        for path, versions in moved.items():
            if current.get(path, versions) == versions:
                current[path] = versions
            else:
                conflicts[path if path.endswith(f"@{DEV_SECRETS_FILENAME}") else f"{path}@{DEV_SECRETS_FILENAME}"] = (
                    versions
                )
                log.warning(
                    "secrets: %s already in %s with other values; kept both (the other in %s.json). Something "
                    "still writes %s: point it at %s/<service>.json",
                    path,
                    file.name,
                    UNASSIGNED,
                    DEV_SECRETS_FILENAME,
                    DEV_SECRETS_DIRNAME,
                )
        write_dev_file(file, current)
    return conflicts


def _fresh_names(
    entries: Mapping[str, list[dict[str, str]]], taken: Mapping[str, object]
) -> dict[str, list[dict[str, str]]]:
    renamed = {}
    for name, versions in entries.items():
        n = 2
        while f"{name}.{n}" in taken and taken[f"{name}.{n}"] != versions:
            n += 1
        renamed[f"{name}.{n}"] = versions
    return renamed


def _check_migrated(legacy: Mapping[str, Any], target_dir: Path, owner_of: Callable[[str], str | None]) -> None:
    unassigned = read_dev_file(target_dir / f"{UNASSIGNED}.json")
    for path, versions in legacy.items():
        in_owner = read_dev_file(target_dir / f"{(owner_of(path) or UNASSIGNED)}.json").get(path)
        copies = [v for name, v in unassigned.items() if name.startswith(f"{path}@{DEV_SECRETS_FILENAME}")]
        if versions != in_owner and versions not in copies:
            raise SecretsError(f"migrating dev secret {path!r} into {target_dir} did not read back; kept the old file")
