import json
import logging
import stat
from pathlib import Path

import pytest

from fraudshared.secrets import (
    DevSecretStore,
    ScopedSecretStore,
    SecretsError,
    VaultSecretStore,
    secret_store_from_env,
)
from tests.fixtures.fake_vault import ROOT_TOKEN, FakeVault


@pytest.fixture
def vault():
    with FakeVault() as fake:
        yield fake


# ---- development store ------------------------------------------------------------------------------------


def test_dev_store_generates_persists_and_reloads_a_missing_key(tmp_path: Path) -> None:
    file = tmp_path / "var" / "secrets.dev.json"
    store = DevSecretStore(file)

    key, version = store.get_version("pan-tokenization", "hmac_key")

    assert version == 1
    assert len(key) == 64 and int(key, 16) >= 0  # 32 random bytes, hex
    assert store.get("pan-tokenization", "hmac_key") == key  # stable within the process
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert json.loads(file.read_text()) == {"pan-tokenization": {"hmac_key": key}}
    assert DevSecretStore(file).get("pan-tokenization", "hmac_key") == key  # and across restarts


def test_dev_store_does_not_invent_values_that_are_not_keys(tmp_path: Path) -> None:
    store = DevSecretStore(tmp_path / "s.json")

    with pytest.raises(SecretsError, match="has no key 'database_url'"):
        store.get("governance", "database_url")
    assert not (tmp_path / "s.json").exists()


def test_dev_store_reads_hand_written_file_and_versions(tmp_path: Path) -> None:
    file = tmp_path / "s.json"
    file.write_text(json.dumps({"governance": {"database_url": "sqlite:///x.db"}}))
    store = DevSecretStore(file)

    assert store.get_version("governance", "database_url") == ("sqlite:///x.db", 1)
    assert store.put("audit", {"signing_key": "aa"}) == 1
    assert store.put("audit", {"signing_key": "bb"}) == 2

    reloaded = DevSecretStore(file)
    assert reloaded.get_version("audit", "signing_key") == ("bb", 2)
    assert reloaded.get_version("audit", "signing_key", version=1) == ("aa", 1)
    with pytest.raises(SecretsError, match="no version 3"):
        reloaded.get_version("audit", "signing_key", version=3)


def test_dev_store_logs_development_mode_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fraudshared.secrets"):
        DevSecretStore(tmp_path / "s.json")
    assert [r.message for r in caplog.records if "DEVELOPMENT MODE" in r.message]


def test_dev_store_rejects_a_corrupt_file_without_echoing_it(tmp_path: Path) -> None:
    file = tmp_path / "s.json"
    file.write_text("{not json hunter2")
    with pytest.raises(SecretsError) as err:
        DevSecretStore(file)
    assert "hunter2" not in str(err.value)


# ---- Vault adapter against the fake server ----------------------------------------------------------------


def test_vault_store_reads_latest_and_older_versions(vault: FakeVault) -> None:
    vault.put("secret", "pan-tokenization", {"hmac_key": "k1"})
    vault.put("secret", "pan-tokenization", {"hmac_key": "k2"})
    store = VaultSecretStore(vault.addr, token=ROOT_TOKEN)

    assert store.get_version("pan-tokenization", "hmac_key") == ("k2", 2)
    assert store.get_version("pan-tokenization", "hmac_key", version=1) == ("k1", 1)
    assert store.get("pan-tokenization", "hmac_key") == "k2"


def test_vault_store_caches_latest_reads(vault: FakeVault) -> None:
    vault.put("secret", "audit", {"signing_key": "s"})
    store = VaultSecretStore(vault.addr, token=ROOT_TOKEN, cache_ttl_s=60)

    for _ in range(5):
        store.get("audit", "signing_key")

    assert vault.count("GET", "/v1/secret/data/audit") == 1


def test_vault_store_writes_new_versions_and_drops_its_cache(vault: FakeVault) -> None:
    store = VaultSecretStore(vault.addr, token=ROOT_TOKEN, mount_point="secret")

    assert store.put("audit", {"signing_key": "a"}) == 1
    assert store.get("audit", "signing_key") == "a"
    assert store.put("audit", {"signing_key": "b"}) == 2
    assert store.get_version("audit", "signing_key") == ("b", 2)


def test_vault_store_wrong_token_is_a_secrets_error(vault: FakeVault) -> None:
    with pytest.raises(SecretsError, match="permission denied") as err:
        VaultSecretStore(vault.addr, token="not-a-real-token")
    assert "not-a-real-token" not in str(err.value)


def test_vault_store_missing_secret_and_key(vault: FakeVault) -> None:
    vault.put("secret", "audit", {"signing_key": "topsecret"})
    store = VaultSecretStore(vault.addr, token=ROOT_TOKEN)

    with pytest.raises(SecretsError, match="not found"):
        store.get("nope", "x")
    with pytest.raises(SecretsError, match="has no key 'other'") as err:
        store.get("audit", "other")
    assert "topsecret" not in str(err.value)


def test_vault_store_unreachable_is_a_secrets_error() -> None:
    with pytest.raises(SecretsError, match="unreachable"):
        VaultSecretStore("http://127.0.0.1:9", token="t", timeout_s=1)


def test_vault_store_logs_in_with_approle(vault: FakeVault) -> None:
    vault.add_approle("role-1", "secret-1")
    vault.put("secret", "pan-tokenization", {"hmac_key": "k"})

    store = VaultSecretStore(vault.addr, role_id="role-1", secret_id="secret-1")

    assert store.get("pan-tokenization", "hmac_key") == "k"
    assert vault.count("POST", "/v1/auth/approle/login") == 1


def test_vault_store_bad_approle_credentials(vault: FakeVault) -> None:
    vault.add_approle("role-1", "secret-1")
    with pytest.raises(SecretsError, match="AppRole") as err:
        VaultSecretStore(vault.addr, role_id="role-1", secret_id="wrong")
    assert "wrong" not in str(err.value)


def test_vault_store_renews_its_token_near_expiry(vault: FakeVault) -> None:
    vault.add_approle("role-1", "secret-1")
    vault.put("secret", "audit", {"signing_key": "s"})
    now = [1000.0]
    store = VaultSecretStore(
        vault.addr, role_id="role-1", secret_id="secret-1", cache_ttl_s=0, renew_margin_s=300, clock=lambda: now[0]
    )

    store.get("audit", "signing_key")
    assert vault.count("POST", "/v1/auth/token/renew-self") == 0

    now[0] += vault.token_ttl_s - 200  # inside the renewal margin
    assert store.get("audit", "signing_key") == "s"
    assert vault.count("POST", "/v1/auth/token/renew-self") == 1
    assert vault.count("POST", "/v1/auth/approle/login") == 1


def test_vault_store_logs_in_again_when_renewal_fails(vault: FakeVault) -> None:
    vault.add_approle("role-1", "secret-1")
    vault.put("secret", "audit", {"signing_key": "s"})
    now = [0.0]
    store = VaultSecretStore(vault.addr, role_id="role-1", secret_id="secret-1", cache_ttl_s=0, clock=lambda: now[0])
    for token in vault.tokens.values():
        token.renewable = False  # renew-self now answers 400

    now[0] += vault.token_ttl_s
    assert store.get("audit", "signing_key") == "s"
    assert vault.count("POST", "/v1/auth/approle/login") == 2


def test_factory_picks_the_services_own_dev_file_without_vault_addr(tmp_path: Path) -> None:
    store = secret_store_from_env({"FRAUD_VAR_DIR": str(tmp_path)}, service="ingest")
    assert isinstance(store, ScopedSecretStore) and isinstance(store.backend, DevSecretStore)
    store.get("pan-tokenization", "hmac_key")
    assert (tmp_path / "secrets" / "ingest.json").exists()
    assert not (tmp_path / "secrets.dev.json").exists()


def test_factory_picks_vault_with_token_or_approle(vault: FakeVault) -> None:
    vault.add_approle("r", "s")
    vault.put("kv", "fraud/ingest/pan-tokenization", {"hmac_key": "z"})
    vault.mounts.add("kv")

    by_token = secret_store_from_env(
        {"VAULT_ADDR": vault.addr, "VAULT_TOKEN": ROOT_TOKEN, "VAULT_KV_MOUNT": "kv"}, service="ingest"
    )
    by_role = secret_store_from_env(
        {"VAULT_ADDR": vault.addr, "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s", "VAULT_KV_MOUNT": "kv"},
        service="ingest",
    )

    for store in (by_token, by_role):
        assert isinstance(store, ScopedSecretStore) and isinstance(store.backend, VaultSecretStore)
        assert store.get("pan-tokenization", "hmac_key") == "z"


def test_factory_requires_credentials_with_vault_addr() -> None:
    with pytest.raises(SecretsError, match="VAULT_TOKEN"):
        secret_store_from_env({"VAULT_ADDR": "http://127.0.0.1:8200"})


def test_dev_store_processes_generating_keys_at_once_keep_every_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import multiprocessing

    file = tmp_path / "secrets.dev.json"
    names = [f"k{i}_key" for i in range(8)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_generate_one, args=(str(file), name)) for name in names]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    import json

    stored = json.loads(file.read_text())["shared"]
    handed_out = {name: (tmp_path / f"{name}.seen").read_text() for name in names}
    assert stored == handed_out  # every key a process was given is the one on disk: none lost or replaced


def _generate_one(file: str, name: str) -> None:
    from pathlib import Path

    from fraudshared.secrets import DevSecretStore

    value = DevSecretStore(file).get("shared", name)
    (Path(file).parent / f"{name}.seen").write_text(value)
