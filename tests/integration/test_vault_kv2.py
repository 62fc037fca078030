"""Against a real Vault server (none can be installed on the dev machines, so this skips there).

Run with ``VAULT_ADDR`` and ``VAULT_TOKEN`` (a token that may write under ``fraud-platform-tests/`` and
``fraud/ingest/``), e.g. a ``vault server -dev``; the per-service policies themselves are tested against the
fake Vault (tests/unit/test_secrets_scope.py), which enforces the rules the vault-policy module renders.
"""

import os
import uuid

import pytest

from fraudshared.secrets import ScopedSecretStore, SecretsError, VaultSecretStore, secret_store_from_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("VAULT_ADDR"),
        reason="no Vault server here; set VAULT_ADDR and VAULT_TOKEN to run against a real one",
    ),
]


def test_write_then_read_a_kv2_secret_with_versions() -> None:
    store = secret_store_from_env(service="ingest")
    assert isinstance(store, ScopedSecretStore) and isinstance(store.backend, VaultSecretStore)
    path = f"fraud-platform-tests/{uuid.uuid4().hex}"

    first = store.backend.put(path, {"hmac_key": "one"})
    second = store.backend.put(path, {"hmac_key": "two"})

    assert second == first + 1
    assert store.backend.get_version(path, "hmac_key") == ("two", second)
    assert store.backend.get_version(path, "hmac_key", version=first) == ("one", first)


def test_a_service_reads_under_its_own_prefix_and_not_another_services_path() -> None:
    prefix = f"fraud-platform-tests/{uuid.uuid4().hex}/{{service}}"
    store = secret_store_from_env({**os.environ, "FRAUD_VAULT_PATH_PREFIX": prefix}, service="ingest")
    assert isinstance(store, ScopedSecretStore)

    version = store.put("pan-tokenization", {"hmac_key": "ab" * 32})

    assert store.get_version("pan-tokenization", "hmac_key") == ("ab" * 32, version)
    assert store.full_path("pan-tokenization") == prefix.replace("{service}", "ingest") + "/pan-tokenization"
    with pytest.raises(SecretsError, match="ingest may not read secret 'audit-signing'"):
        store.get("audit-signing", "ed25519_private_key")
