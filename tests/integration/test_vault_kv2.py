"""Against a real Vault server (none can be installed on the dev machines, so this skips there)."""

import os
import uuid

import pytest

from fraudshared.secrets import VaultSecretStore, secret_store_from_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("VAULT_ADDR"),
        reason="no Vault server here; set VAULT_ADDR and VAULT_TOKEN to run against a real one",
    ),
]


def test_write_then_read_a_kv2_secret_with_versions() -> None:
    store = secret_store_from_env()
    assert isinstance(store, VaultSecretStore)
    path = f"fraud-platform-tests/{uuid.uuid4().hex}"

    first = store.put(path, {"hmac_key": "one"})
    second = store.put(path, {"hmac_key": "two"})

    assert second == first + 1
    assert store.get_version(path, "hmac_key") == ("two", second)
    assert store.get_version(path, "hmac_key", version=first) == ("one", first)
