"""Each service reads only its own secrets: per-service development files, per-service Vault paths and policies.

The fake Vault enforces the policy the vault-policy Terraform module grants (`module_policy`, from the
module's defaults, in the shape tests/unit/test_terraform_identity.py checks), so a refusal here is Vault's own 403.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest

from fraudshared.audit.keys import SIGNING_SECRET_KEY, SIGNING_SECRET_OWNER, SIGNING_SECRET_PATH, load_signing_key
from fraudshared.pan_token import TOKEN_KEY_NAME, TOKEN_KEY_PATH
from fraudshared.privacy import PrivacyError, VaultSubjectKeyStore, subject_key_store_from_env
from fraudshared.secrets import (
    OwnerRoutedSecretStore,
    ScopedSecretStore,
    SecretsError,
    VaultSecretStore,
    owner_of,
    secret_store_from_env,
)
from services.governance.notary.adapters.signing import SecretsSigningKeys
from tests.fixtures.fake_vault import FakeVault, module_policy

CARD = "ct_0123456789abcdef0123456789abcdef"


@pytest.fixture
def vault():
    with FakeVault() as fake:
        for service in ("ingest", "governance"):
            fake.add_approle(f"{service}-role", f"{service}-secret", policy=module_policy(service))
        fake.put("secret", "fraud/ingest/pan-tokenization", {"hmac_key": "aa" * 32})
        fake.put("secret", "fraud/governance/audit-signing", {"ed25519_private_key": "bb" * 32})
        yield fake


def vault_env(vault: FakeVault, service: str) -> dict[str, str]:
    return {"VAULT_ADDR": vault.addr, "VAULT_ROLE_ID": f"{service}-role", "VAULT_SECRET_ID": f"{service}-secret"}


# ---- development files ------------------------------------------------------------------------------------


def test_each_service_has_its_own_file_readable_only_by_its_owner(tmp_path: Path) -> None:
    env = {"FRAUD_VAR_DIR": str(tmp_path)}
    ingest = secret_store_from_env(env, service="ingest")
    governance = secret_store_from_env(env, service="governance")

    hmac_key = ingest.get(TOKEN_KEY_PATH, TOKEN_KEY_NAME)
    signing = load_signing_key(governance)

    files = tmp_path / "secrets"
    assert json.loads((files / "ingest.json").read_text()) == {TOKEN_KEY_PATH: {TOKEN_KEY_NAME: hmac_key}}
    assert set(json.loads((files / "governance.json").read_text())) == {SIGNING_SECRET_PATH}
    assert signing.version == 1
    assert stat.S_IMODE(files.stat().st_mode) == 0o700
    for name in ("ingest.json", "governance.json"):
        assert stat.S_IMODE((files / name).stat().st_mode) == 0o600


def test_a_service_asking_for_another_services_secret_gets_an_error_naming_the_path(tmp_path: Path) -> None:
    env = {"FRAUD_VAR_DIR": str(tmp_path)}
    load_signing_key(secret_store_from_env(env, service="governance"))  # governance's key exists...
    ingest = secret_store_from_env(env, service="ingest")
    ingest.get(TOKEN_KEY_PATH, TOKEN_KEY_NAME)

    with pytest.raises(SecretsError) as err:  # ...but ingest cannot ask for it
        ingest.get(SIGNING_SECRET_PATH, SIGNING_SECRET_KEY)

    message = str(err.value)
    assert "ingest may not read secret 'audit-signing'" in message and "belongs to governance" in message
    assert set(json.loads((tmp_path / "secrets" / "ingest.json").read_text())) == {TOKEN_KEY_PATH}
    with pytest.raises(SecretsError, match="scoring may not read secret 'pan-tokenization'"):
        secret_store_from_env(env, service="scoring").get(TOKEN_KEY_PATH, TOKEN_KEY_NAME)
    with pytest.raises(SecretsError, match="unknown service 'billing'"):
        secret_store_from_env(env, service="billing")


def test_a_file_made_readable_by_others_is_set_back_to_0600(tmp_path: Path) -> None:
    env = {"FRAUD_VAR_DIR": str(tmp_path)}
    secret_store_from_env(env, service="ingest").get(TOKEN_KEY_PATH, TOKEN_KEY_NAME)
    file = tmp_path / "secrets" / "ingest.json"
    file.chmod(0o644)

    secret_store_from_env(env, service="ingest")

    assert stat.S_IMODE(file.stat().st_mode) == 0o600


def test_the_service_name_can_come_from_the_environment(tmp_path: Path) -> None:
    store = secret_store_from_env({"FRAUD_VAR_DIR": str(tmp_path), "FRAUD_SERVICE_NAME": "ingest"})
    assert isinstance(store, ScopedSecretStore) and store.service == "ingest"


def test_operator_tools_read_each_path_from_its_owners_file(tmp_path: Path) -> None:
    env = {"FRAUD_VAR_DIR": str(tmp_path)}
    hmac_key = secret_store_from_env(env, service="ingest").get(TOKEN_KEY_PATH, TOKEN_KEY_NAME)
    operator = secret_store_from_env(env)

    assert isinstance(operator, OwnerRoutedSecretStore)
    assert operator.get(TOKEN_KEY_PATH, TOKEN_KEY_NAME) == hmac_key
    assert operator.put(SIGNING_SECRET_PATH, {SIGNING_SECRET_KEY: "cc" * 32}) == 1  # a rotation by an operator
    assert set(json.loads((tmp_path / "secrets" / "governance.json").read_text())) == {SIGNING_SECRET_PATH}
    with pytest.raises(SecretsError, match="no service owns secret 'elsewhere'"):
        operator.get("elsewhere", "x_key")


# ---- Vault: per-service paths and AppRole policies ---------------------------------------------------------


def test_each_role_reads_its_own_secrets_under_its_own_prefix(vault: FakeVault) -> None:
    ingest = secret_store_from_env(vault_env(vault, "ingest"), service="ingest")
    governance = secret_store_from_env(vault_env(vault, "governance"), service="governance")

    assert ingest.get_version(TOKEN_KEY_PATH, TOKEN_KEY_NAME) == ("aa" * 32, 1)
    assert load_signing_key(governance).version == 1
    assert vault.count("GET", "/v1/secret/data/fraud/ingest/pan-tokenization") == 1


def test_ingests_role_cannot_read_governances_signing_key(vault: FakeVault) -> None:
    ingest = secret_store_from_env(vault_env(vault, "ingest"), service="ingest")
    assert isinstance(ingest, ScopedSecretStore) and isinstance(ingest.backend, VaultSecretStore)

    # Our code refuses first, naming the path and owner...
    with pytest.raises(SecretsError, match="ingest may not read secret 'audit-signing'"):
        ingest.get(SIGNING_SECRET_PATH, SIGNING_SECRET_KEY)
    # ...and Vault itself refuses ingest's token on governance's path (403, as the policy says).
    with pytest.raises(SecretsError) as err:
        ingest.backend.get("fraud/governance/audit-signing", SIGNING_SECRET_KEY)
    assert "secret/fraud/governance/audit-signing" in str(err.value) and "permission denied" in str(err.value)
    assert "bb" * 32 not in str(err.value)
    # An operator tool running with ingest's credentials is refused by Vault in the same way.
    operator = secret_store_from_env(vault_env(vault, "ingest"))
    with pytest.raises(SecretsError, match="permission denied"):
        operator.get(SIGNING_SECRET_PATH, SIGNING_SECRET_KEY)


def test_a_custom_path_prefix_is_used_and_still_policed(vault: FakeVault) -> None:
    vault.put("secret", "team-a/ingest/pan-tokenization", {"hmac_key": "dd" * 32})
    env = {**vault_env(vault, "ingest"), "FRAUD_VAULT_PATH_PREFIX": "team-a/{service}"}
    store = secret_store_from_env(env, service="ingest")
    with pytest.raises(SecretsError, match="secret/team-a/ingest/pan-tokenization: permission denied"):
        store.get(TOKEN_KEY_PATH, TOKEN_KEY_NAME)  # the module's policy grants fraud/ingest only
    with pytest.raises(SecretsError, match="FRAUD_VAULT_PATH_PREFIX must be a plain Vault path"):
        secret_store_from_env({**env, "FRAUD_VAULT_PATH_PREFIX": "fraud/../governance"}, service="ingest")


def test_subject_keys_live_under_ingests_prefix_and_only_ingest_reaches_them(vault: FakeVault) -> None:
    store = subject_key_store_from_env(vault_env(vault, "ingest"))
    assert isinstance(store, VaultSubjectKeyStore)
    subject = store.get_or_create(CARD)
    assert ("secret", f"fraud/ingest/subject-keys/subjects/{CARD}") in vault.kv
    assert store.forget(CARD) == subject.subject_id and store.is_forgotten(subject.subject_id)

    governance = secret_store_from_env(vault_env(vault, "governance"), service="governance")
    assert isinstance(governance, ScopedSecretStore) and isinstance(governance.backend, VaultSecretStore)
    intruder = VaultSubjectKeyStore.from_secret_store(governance.backend)
    with pytest.raises(PrivacyError, match="denied") as err:
        intruder.get_or_create("ct_ffffffffffffffffffffffffffffffff")
    assert "ct_ffff" not in str(err.value)


def test_vault_unreachable_at_start_names_address_and_auth_method() -> None:
    env = {"VAULT_ADDR": "http://127.0.0.1:9", "VAULT_ROLE_ID": "ingest-role", "VAULT_SECRET_ID": "s3cr3t-id"}
    with pytest.raises(SecretsError) as err:
        secret_store_from_env(env, service="ingest")
    message = str(err.value)
    assert "unreachable at http://127.0.0.1:9" in message and "AppRole at auth/approle" in message
    assert "s3cr3t-id" not in message


def test_vault_refusing_the_login_names_address_and_auth_method(vault: FakeVault) -> None:
    env = {**vault_env(vault, "ingest"), "VAULT_SECRET_ID": "wrong-s3cr3t"}
    with pytest.raises(SecretsError) as err:
        secret_store_from_env(env, service="ingest")
    message = str(err.value)
    assert vault.addr in message and "AppRole" in message and "wrong-s3cr3t" not in message
    with pytest.raises(SecretsError, match=r"permission denied by Vault at .* \(auth: token\)"):
        secret_store_from_env({"VAULT_ADDR": vault.addr, "VAULT_TOKEN": "hvs.not-valid"}, service="ingest")


def test_the_ownership_table_names_the_secrets_the_code_reads() -> None:
    assert owner_of(TOKEN_KEY_PATH) == "ingest"
    assert owner_of(SIGNING_SECRET_PATH) == SIGNING_SECRET_OWNER == "governance"


def test_the_notary_signs_with_governances_own_key(tmp_path: Path) -> None:
    keys = SecretsSigningKeys.from_env({"FRAUD_VAR_DIR": str(tmp_path)})
    key = asyncio.run(keys.current())
    assert key.version == 1
    assert set(json.loads((tmp_path / "secrets" / "governance.json").read_text())) == {SIGNING_SECRET_PATH}
    assert not (tmp_path / "secrets" / "ingest.json").exists()
