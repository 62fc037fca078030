"""The secrets port: what services depend on, and the one error every adapter raises."""

from __future__ import annotations

from typing import Protocol


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


def all_versions(store: SecretStore, path: str, key: str) -> dict[int, str]:
    """Every readable version of ``key`` at ``path``, by version number (a destroyed version is left out).

    What rotation needs on the reading side: a card token or a signature made under key version N is
    checked with version N's key, while new ones use the latest.

    Raises:
        SecretsError: If not even the latest version can be read.
    """
    latest, number = store.get_version(path, key)
    found = {number: latest}
    for version in range(number - 1, 0, -1):
        try:
            found[version] = store.get_version(path, key, version)[0]
        except SecretsError:
            continue
    return found
