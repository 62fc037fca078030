"""The notary against a real nats-server: seals, chains, restarts without gaps, and verifies clean."""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared.audit.check import verify_stream
from fraudshared.audit.checkpoint import checkpoint_subject
from fraudshared.audit.jetstream import read_checkpoints
from fraudshared.audit.keys import SIGNING_SECRET_KEY, SIGNING_SECRET_PATH, KeyRing
from fraudshared.config import CommonConfig
from fraudshared.events.envelope import event_id, new_envelope, to_nats
from fraudshared.events.store import EventStore
from fraudshared.events.streams import StreamSpec, ensure_streams
from fraudshared.secrets import DevSecretStore, dev_secrets_file
from fraudshared.service import ServiceContext
from services.governance.notary.adapters.log import JetStreamNotaryLog
from services.governance.notary.adapters.signing import SecretsSigningKeys
from services.governance.notary.bootstrap import start_notary
from services.governance.notary.service import Notary, NotaryConfig, audited_streams

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


async def append_labels(store: EventStore, spec: StreamSpec, first: int, last: int) -> None:
    prefix = spec.subjects[0].removesuffix(">")
    for n in range(first, last + 1):
        message = tx_events.LabelReported(schema_version=1, transaction_id=f"MARK{n:06d}", is_fraud=n % 7 == 0)
        envelope = new_envelope(
            message,
            source="/test",
            subject=f"tx-{n}",
            event_id=event_id("LabelReported", f"{spec.name}-{n}"),
            time=T0 + timedelta(seconds=n),
            schema_version=1,
        )
        await store.append(envelope, subject=f"{prefix}{n}")


async def seal_until(notary: Notary, stream: str, last_seq: int, timeout: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(notary.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while notary.sealed_up_to.get(stream, 0) < last_seq:  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # polls the notary's progress
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def make_notary(js: JetStreamContext, spec: StreamSpec, secrets: DevSecretStore, every_n: int = 10) -> Notary:
    return Notary(
        JetStreamNotaryLog(js, EventStore(js)),
        SecretsSigningKeys(secrets),
        [(spec.name, spec.subjects[0])],
        NotaryConfig(every_n=every_n, every_s=0.2),
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_notary_seals_restarts_without_gaps_and_the_stream_verifies(
    js: JetStreamContext, unique_stream: StreamSpec, tmp_path: Path
) -> None:
    await ensure_streams(js)  # AUDIT
    store = EventStore(js)
    secrets = DevSecretStore(tmp_path / "secrets.dev.json")
    await append_labels(store, unique_stream, 1, 25)

    await seal_until(make_notary(js, unique_stream, secrets), unique_stream.name, 25)
    stored = await read_checkpoints(js, unique_stream.name)
    assert [(s.checkpoint.first_sequence, s.checkpoint.last_sequence) for s in stored if s.checkpoint] == [
        (1, 10),
        (11, 20),
        (21, 25),
    ]

    # A restarted notary continues after the last checkpoint: no gap, no range sealed twice.
    await append_labels(store, unique_stream, 26, 33)
    await seal_until(make_notary(js, unique_stream, secrets), unique_stream.name, 33)
    stored = await read_checkpoints(js, unique_stream.name)
    ranges = [(s.checkpoint.first_sequence, s.checkpoint.last_sequence) for s in stored if s.checkpoint]
    assert ranges == [(1, 10), (11, 20), (21, 25), (26, 33)]
    envelope_ids = {s.audit_seq for s in stored}
    assert len(envelope_ids) == 4

    report = await verify_stream(js, unique_stream.name, KeyRing.from_secrets(secrets))
    assert report.ok, report.findings
    assert (report.checkpoints_verified, report.events_verified, report.unsealed) == (4, 33, None)


@pytest.mark.asyncio(loop_scope="session")
async def test_two_notaries_on_one_stream_keep_one_chain(
    js: JetStreamContext, unique_stream: StreamSpec, tmp_path: Path
) -> None:
    await ensure_streams(js)
    secrets = DevSecretStore(tmp_path / "secrets.dev.json")
    await append_labels(EventStore(js), unique_stream, 1, 40)
    await asyncio.gather(
        seal_until(make_notary(js, unique_stream, secrets, every_n=7), unique_stream.name, 40),
        seal_until(make_notary(js, unique_stream, secrets, every_n=7), unique_stream.name, 40),
    )
    report = await verify_stream(js, unique_stream.name, KeyRing.from_secrets(secrets))
    assert report.ok, report.findings
    assert report.events_verified == 40


@pytest.mark.asyncio(loop_scope="session")
async def test_governance_hook_starts_and_stops_the_notary(
    nats_client: Client, js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("FRAUD_NOTARY_EVERY_N", "50")
    monkeypatch.setenv("FRAUD_NOTARY_EVERY_S", "0.5")
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    async with AsyncExitStack() as stack:
        ctx = ServiceContext(CommonConfig("governance"), nats_client, js, EventStore(js), stack)
        notary = await start_notary(ctx)
        await asyncio.sleep(0.3)
        # ACCESS (the role grants) is sealed like every other stream but AUDIT itself.
        streams = {"TRANSACTIONS", "FEATURES", "PREDICTIONS", "LABELS", "MODELS", "MONITOR", "PRIVACY", "QUARANTINE"}
        assert {name for name, _ in audited_streams()} == streams | {"ACCESS"}
        assert set(notary.sealed_up_to) <= streams | {"ACCESS"}
        for cleanup in ctx.on_shutdown:
            await cleanup()
    # The signing key is governance's own secret, in its own development file (no shared file any more).
    governance = DevSecretStore(dev_secrets_file(tmp_path, "governance"))
    assert governance.get_version(SIGNING_SECRET_PATH, SIGNING_SECRET_KEY)[1] == 1
    assert not (tmp_path / "secrets.dev.json").exists()
    assert os.environ["FRAUD_NOTARY_EVERY_N"] == "50"


@pytest.mark.asyncio(loop_scope="session")
async def test_unreadable_events_are_sealed_and_reported_and_a_bad_checkpoint_event_does_not_stop_sealing(
    js: JetStreamContext, unique_stream: StreamSpec, tmp_path: Path
) -> None:
    await ensure_streams(js)
    store, secrets = EventStore(js), DevSecretStore(tmp_path / "secrets.dev.json")
    subject = unique_stream.subjects[0].removesuffix(">") + "raw"
    await append_labels(store, unique_stream, 1, 5)
    await js.publish(subject, b"\x00garbage")  # seq 6: not an envelope at all
    label = new_envelope(
        tx_events.LabelReported(), source="/t", subject="s", event_id=event_id("X", "y1"), time=T0, schema_version=1
    )
    headers, body = to_nats(label)
    await js.publish(subject, body, headers=headers | {"ce-time": "1-01-01T00:00:00.000000Z"})  # seq 7
    await append_labels(store, unique_stream, 8, 12)

    await seal_until(make_notary(js, unique_stream, secrets, every_n=4), unique_stream.name, 12)
    keys = KeyRing.from_secrets(secrets)
    report = await verify_stream(js, unique_stream.name, keys)
    assert report.ok, report.findings
    assert (report.events_verified, report.unreadable) == (12, [6, 7])  # sealed by raw hash, reported

    # Something that is not a checkpoint lands on the chain's own AUDIT subject: the notary chains on.
    bad = await js.publish(checkpoint_subject(unique_stream.name), b"not a checkpoint")
    await append_labels(store, unique_stream, 13, 15)
    await seal_until(make_notary(js, unique_stream, secrets, every_n=4), unique_stream.name, 15)
    report = await verify_stream(js, unique_stream.name, keys)
    assert report.events_verified == 15 and report.unsealed is None
    assert [f.message for f in report.findings] == [f"checkpoint event at AUDIT seq {bad.seq} is unreadable"]
