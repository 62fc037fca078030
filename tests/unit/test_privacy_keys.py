"""Subject key store: one contract suite for SQLite and Vault (fake server), then each adapter's own promises."""

import base64
import multiprocessing
import os
import stat
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import hvac
import pytest

from fraudshared.privacy import (
    PrivacyError,
    SqliteSubjectKeyStore,
    SubjectKey,
    SubjectKeyStore,
    VaultSubjectKeyStore,
    subject_key_store_from_env,
)
from tests.fixtures.fake_vault import ROOT_TOKEN, FakeVault

CARD = "ct_0123456789abcdef0123456789abcdef"
OTHER_CARD = "ct_fedcba9876543210fedcba9876543210"


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    with FakeVault() as fake:
        yield fake


def vault_store(vault: FakeVault, **options) -> VaultSubjectKeyStore:  # type: ignore[no-untyped-def]
    return VaultSubjectKeyStore(hvac.Client(url=vault.addr, token=ROOT_TOKEN), **options)


@pytest.fixture(params=["sqlite", "vault"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A factory of store instances over one shared backend (each call is like another process)."""
    if request.param == "sqlite":
        yield lambda **options: SqliteSubjectKeyStore(tmp_path / "subject-keys.db", **options)
    else:
        with FakeVault() as fake:
            yield lambda **options: vault_store(fake, **options)


# ---- contract: every adapter ------------------------------------------------------------------------------


def race_get_or_create(stores: Sequence[SubjectKeyStore]) -> list[SubjectKey]:
    """Every store asks for the same new card at the same moment, one thread each."""
    barrier = threading.Barrier(len(stores))
    results: list[SubjectKey] = []

    def create(store: SubjectKeyStore) -> None:
        barrier.wait()
        results.append(store.get_or_create(CARD))

    threads = [threading.Thread(target=create, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_first_use_creates_a_random_subject_with_a_256_bit_key(backend) -> None:  # type: ignore[no-untyped-def]
    store: SubjectKeyStore = backend()

    subject = store.get_or_create(CARD)

    assert len(subject.subject_id) == 32 and int(subject.subject_id, 16) >= 0
    assert CARD.removeprefix("ct_") not in subject.subject_id
    assert len(subject.key) == 32
    assert subject.key.hex() not in repr(subject)


def test_same_card_same_subject_other_card_other_subject(backend) -> None:  # type: ignore[no-untyped-def]
    store: SubjectKeyStore = backend()

    first = store.get_or_create(CARD)

    assert store.get_or_create(CARD) == first
    assert backend().get_or_create(CARD) == first  # another instance: read from the backend, not the cache
    other = store.get_or_create(OTHER_CARD)
    assert other.subject_id != first.subject_id and other.key != first.key


def test_find_and_lookup_by_subject_id(backend) -> None:  # type: ignore[no-untyped-def]
    store: SubjectKeyStore = backend()
    assert store.find(CARD) is None
    subject = store.get_or_create(CARD)

    fresh: SubjectKeyStore = backend()
    assert fresh.find(CARD) == subject
    assert fresh.by_subject_id(subject.subject_id) == subject
    assert fresh.by_subject_id(uuid.uuid4().hex) is None
    assert not fresh.is_forgotten(subject.subject_id)


def test_forget_destroys_the_key_and_the_mapping(backend) -> None:  # type: ignore[no-untyped-def]
    store: SubjectKeyStore = backend()
    subject = store.get_or_create(CARD)
    kept = store.get_or_create(OTHER_CARD)
    assert store.by_subject_id(subject.subject_id) == subject  # cached by id too: forget must evict it

    assert store.forget(CARD) == subject.subject_id

    for view in (store, backend()):
        assert view.find(CARD) is None
        assert view.by_subject_id(subject.subject_id) is None
        assert view.is_forgotten(subject.subject_id)
        assert view.find(OTHER_CARD) == kept and not view.is_forgotten(kept.subject_id)
    assert store.forget(CARD) is None  # already gone


def test_a_forgotten_card_used_again_is_a_new_subject(backend) -> None:  # type: ignore[no-untyped-def]
    store: SubjectKeyStore = backend()
    old = store.get_or_create(CARD)
    store.forget(CARD)

    new = store.get_or_create(CARD)

    assert new.subject_id != old.subject_id and new.key != old.key
    assert store.is_forgotten(old.subject_id) and not store.is_forgotten(new.subject_id)


def test_forget_of_an_unknown_card_is_none(backend) -> None:  # type: ignore[no-untyped-def]
    assert backend().forget(CARD) is None


def test_another_instance_sees_a_forget_once_its_cache_entry_expires(backend) -> None:  # type: ignore[no-untyped-def]
    now = [0.0]
    reader = backend(cache_ttl_s=60.0, clock=lambda: now[0])
    subject = reader.get_or_create(CARD)
    backend().forget(CARD)

    assert reader.find(CARD) == subject  # still cached in this "process"
    now[0] += 61
    assert reader.find(CARD) is None
    assert reader.by_subject_id(subject.subject_id) is None


# ---- SQLite -----------------------------------------------------------------------------------------------


def test_sqlite_file_is_private_to_its_owner(tmp_path: Path) -> None:
    store = SqliteSubjectKeyStore(tmp_path / "var" / "subject-keys.db")
    store.get_or_create(CARD)
    assert stat.S_IMODE((tmp_path / "var" / "subject-keys.db").stat().st_mode) == 0o600


def test_sqlite_forget_leaves_no_copy_of_the_key_or_card_in_the_files(tmp_path: Path) -> None:
    path = tmp_path / "subject-keys.db"
    store = SqliteSubjectKeyStore(path)
    subject = store.get_or_create(CARD)
    store.get_or_create(OTHER_CARD)
    assert subject.key in path.read_bytes() and CARD.encode() in path.read_bytes()  # the scan can see them

    store.forget(CARD)
    store.close()

    files = sorted(tmp_path.iterdir())
    assert files == [path]  # no journal or WAL file holding old pages
    raw = path.read_bytes()
    assert subject.key not in raw
    assert CARD.encode() not in raw
    assert subject.subject_id.encode() in raw  # recorded as forgotten: an id that links to nobody


def test_sqlite_instances_racing_on_a_new_card_agree(tmp_path: Path) -> None:
    path = tmp_path / "subject-keys.db"
    stores = [SqliteSubjectKeyStore(path) for _ in range(8)]
    results = race_get_or_create(stores)
    assert len(results) == len(stores) and len(set(results)) == 1


def test_sqlite_processes_racing_on_a_new_card_agree(tmp_path: Path) -> None:
    path = tmp_path / "subject-keys.db"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(6)
    procs = [ctx.Process(target=_create_in_child, args=(str(path), barrier, i)) for i in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0

    seen = {(tmp_path / f"seen-{i}").read_text() for i in range(6)}
    subject = SqliteSubjectKeyStore(path).find(CARD)
    assert subject is not None and seen == {f"{subject.subject_id}:{subject.key.hex()}"}


def _create_in_child(path: str, barrier, index: int) -> None:  # type: ignore[no-untyped-def]
    store = SqliteSubjectKeyStore(path)
    barrier.wait(30)
    subject = store.get_or_create(CARD)
    (Path(path).parent / f"seen-{index}").write_text(f"{subject.subject_id}:{subject.key.hex()}")


# ---- Vault (fake server) ----------------------------------------------------------------------------------


def test_vault_layout_and_permanent_destroy(vault: FakeVault) -> None:
    store = vault_store(vault)
    subject = store.get_or_create(CARD)
    by_card, by_id = (
        ("secret", f"fraud/ingest/subject-keys/subjects/{CARD}"),
        ("secret", f"fraud/ingest/subject-keys/subject-ids/{subject.subject_id}"),
    )

    encoded = base64.b64encode(subject.key).decode()
    assert vault.kv[by_card][-1].data == {"subject_id": subject.subject_id, "key": encoded}
    assert vault.kv[by_id][-1].data == {"key": encoded}

    store.forget(CARD)

    assert by_card not in vault.kv and by_id not in vault.kv
    assert vault.count("DELETE", f"/v1/secret/metadata/fraud/ingest/subject-keys/subjects/{CARD}") == 1
    assert vault.count("DELETE", f"/v1/secret/metadata/fraud/ingest/subject-keys/subject-ids/{subject.subject_id}") == 1
    assert set(vault.kv[("secret", f"fraud/ingest/subject-keys/forgotten/{subject.subject_id}")][-1].data) == {
        "forgotten_at"
    }
    assert not any(encoded in str(versions) for versions in vault.kv.values())  # no copy left anywhere


def test_vault_hot_path_reads_once(vault: FakeVault) -> None:
    store = vault_store(vault)
    for _ in range(5):
        store.get_or_create(CARD)
    assert vault.count("GET", f"/v1/secret/data/fraud/ingest/subject-keys/subjects/{CARD}") == 1


def test_vault_instances_racing_on_a_new_card_agree_and_leave_no_orphan_key(vault: FakeVault) -> None:
    stores = [vault_store(vault) for _ in range(6)]
    results = race_get_or_create(stores)
    assert len(results) == len(stores) and len(set(results)) == 1
    assert len([path for _, path in vault.kv if path.startswith("fraud/ingest/subject-keys/subject-ids/")]) == 1


def test_vault_rejects_a_card_token_that_is_not_one_path_segment(vault: FakeVault) -> None:
    with pytest.raises(PrivacyError, match="must match") as err:
        vault_store(vault).get_or_create("ct_x/../../other")
    assert "other" not in str(err.value)


def test_vault_denied_is_a_privacy_error_that_names_no_card(vault: FakeVault) -> None:
    store = VaultSubjectKeyStore(hvac.Client(url=vault.addr, token="not-a-token"))
    with pytest.raises(PrivacyError, match="denied") as err:
        store.get_or_create(CARD)
    assert CARD not in str(err.value) and "not-a-token" not in str(err.value)


def test_factory_picks_sqlite_without_vault(tmp_path: Path) -> None:
    store = subject_key_store_from_env({"FRAUD_VAR_DIR": str(tmp_path)})
    assert isinstance(store, SqliteSubjectKeyStore) and store.path == tmp_path / "subject-keys.db"
    explicit = subject_key_store_from_env({}, var_dir=tmp_path / "other")
    assert isinstance(explicit, SqliteSubjectKeyStore) and explicit.path == tmp_path / "other" / "subject-keys.db"


def test_factory_picks_vault_with_the_secrets_port_variables(vault: FakeVault) -> None:
    vault.add_approle("role-1", "secret-1")
    vault.mounts.add("kv")
    env = {"VAULT_ADDR": vault.addr, "VAULT_ROLE_ID": "role-1", "VAULT_SECRET_ID": "secret-1", "VAULT_KV_MOUNT": "kv"}

    store = subject_key_store_from_env(env)

    assert isinstance(store, VaultSubjectKeyStore)
    subject = store.get_or_create(CARD)
    assert ("kv", f"fraud/ingest/subject-keys/subjects/{CARD}") in vault.kv
    assert store.forget(CARD) == subject.subject_id and store.is_forgotten(subject.subject_id)


# ---- Vault (real server) ----------------------------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("VAULT_ADDR"),
    reason="no Vault server here; set VAULT_ADDR and VAULT_TOKEN to run against a real one",
)
def test_round_trip_against_a_real_vault() -> None:
    store = subject_key_store_from_env()
    assert isinstance(store, VaultSubjectKeyStore)
    card = f"ct_test{uuid.uuid4().hex}"

    subject = store.get_or_create(card)
    assert store.get_or_create(card) == subject
    assert subject_key_store_from_env().by_subject_id(subject.subject_id) == subject
    assert store.forget(card) == subject.subject_id

    fresh = subject_key_store_from_env()
    assert fresh.find(card) is None and fresh.by_subject_id(subject.subject_id) is None
    assert fresh.is_forgotten(subject.subject_id)
