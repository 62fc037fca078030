"""Erasure inside the immutable log: `fraudctl privacy forget` (IngestService.ForgetCardholder as the caller) on a
running platform, then verify and replay; a caller without the privacy-officer role erases nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import nats
import nats.js.errors
import pytest

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.events.v1 import audit_events_pb2 as audit_events
from fraud.events.v1 import privacy_events_pb2 as privacy_events
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudml.datagen import synthetic_pan
from fraudshared.events.envelope import from_nats
from fraudshared.privacy import ERASED, SqliteSubjectKeyStore, read_field
from tests.fixtures.identity import aio_channel, session_pki
from tests.fixtures.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
FORGOTTEN, KEPT = synthetic_pan(771001), synthetic_pan(771002)
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def request(tx_id: str, pan: str, minutes: int) -> ingest.ScoreTransactionRequest:
    r = ingest.ScoreTransactionRequest(
        transaction_id=tx_id,
        pan=pan,
        terminal_id="T-PRIV",
        amount=money_pb2.Money(amount_minor=1999, currency="EUR"),
        channel=common.CHANNEL_CARD_PRESENT,
    )
    r.event_time.FromDatetime(NOW + timedelta(minutes=minutes))
    return r


async def fraudctl(platform: Platform, *args: str, stdin: str = "", code: int = 0, who: str = "dev-auditor") -> str:
    """Runs fraudctl as `who` (FRAUD_CREDENTIAL: a directory with the principal's ca/cert/key.pem)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    where = ["--ingest", platform.address("ingest")] if args[0] == "privacy" else ["--nats", platform.nats_url]
    credential_dir = session_pki().files(who).cert.parent
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fraudctl", *args, "--var-dir", str(platform.var_dir), *where],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "FRAUD_VAR_DIR": str(platform.var_dir), "FRAUD_CREDENTIAL": str(credential_dir)},
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout + done.stderr


async def received(platform: Platform, tx_id: str) -> events.TransactionReceived:
    nc = await nats.connect(platform.nats_url)
    try:
        raw = await nc.jetstream().get_last_msg("TRANSACTIONS", f"fraud.tx.received.*.{tx_id}")
        return from_nats(raw.headers, raw.data).payload(events.TransactionReceived)
    finally:
        await nc.close()


async def sealed(platform: Platform, stream: str, timeout_s: float = 30.0) -> None:
    """Wait until the platform's notary sealed a checkpoint over `stream` covering the newest event."""
    nc = await nats.connect(platform.nats_url)
    try:
        js = nc.jetstream()
        newest = (await js.stream_info(stream)).state.last_seq
        for _ in range(int(timeout_s * 10)):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                raw = await js.get_last_msg("AUDIT", f"fraud.audit.checkpoints.{stream}")
                checkpoint = from_nats(raw.headers, raw.data).payload(audit_events.AuditCheckpointSealed)
                if checkpoint.last_sequence >= newest:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"no checkpoint over {stream} up to sequence {newest} within {timeout_s} s")
    finally:
        await nc.close()


async def test_forget_erases_the_card_token_while_the_log_still_verifies_and_replays(platform: Platform) -> None:
    async with aio_channel(platform.address("ingest"), "dev-scorer") as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        for i, pan in enumerate((FORGOTTEN, KEPT, FORGOTTEN, KEPT, FORGOTTEN)):
            await stub.ScoreTransaction(request(f"pf-{i}", pan, i), timeout=10)
    before = await received(platform, "pf-0")
    assert before.card_token == "" and before.subject_id and before.sealed_card_token
    keys = SqliteSubjectKeyStore(platform.var_dir / "subject-keys.db")
    token = read_field(keys, before.subject_id, "card_token", before.sealed_card_token)
    assert token.startswith("ct_")

    refused = await fraudctl(
        platform, "privacy", "forget", "--pan-stdin", "--reason", "x", stdin=FORGOTTEN, code=1, who="dev-scorer"
    )
    assert "PERMISSION_DENIED" in refused and FORGOTTEN not in refused
    assert read_field(keys, before.subject_id, "card_token", before.sealed_card_token) == token  # nothing erased
    claimed = await fraudctl(platform, "privacy", "forget", "--pan-stdin", "--actor", "dpo", stdin=FORGOTTEN, code=2)
    assert "authenticated caller" in claimed  # who asks is the credential, not an option

    said = await fraudctl(
        platform, "privacy", "forget", "--pan-stdin", "--reason", "ticket 7", stdin=FORGOTTEN, who="dev-privacy-officer"
    )
    assert f"forgot subject {before.subject_id}" in said and FORGOTTEN not in said and token not in said

    fresh = SqliteSubjectKeyStore(platform.var_dir / "subject-keys.db")  # no cache: what another process sees
    for tx_id in ("pf-0", "pf-2", "pf-4"):
        event = await received(platform, tx_id)
        assert event.subject_id == before.subject_id
        assert read_field(fresh, event.subject_id, "card_token", event.sealed_card_token) == ERASED
    kept = await received(platform, "pf-1")
    assert read_field(fresh, kept.subject_id, "card_token", kept.sealed_card_token).startswith("ct_")
    assert token.encode() not in (platform.var_dir / "subject-keys.db").read_bytes()

    nc = await nats.connect(platform.nats_url)
    try:
        raw = await nc.jetstream().get_last_msg("PRIVACY", f"fraud.privacy.erased.{before.subject_id}")
        erased = from_nats(raw.headers, raw.data).payload(privacy_events.SubjectErased)
        assert (erased.requested_by, erased.reason) == ("user:dev-privacy-officer", "ticket 7")
        assert token.encode() not in raw.data
    finally:
        await nc.close()

    await sealed(platform, "TRANSACTIONS")
    verified = await fraudctl(platform, "audit", "verify", "--stream", "TRANSACTIONS")
    assert re.search(r"verified [1-9]\d* events", verified)  # hashes cover the ciphertext, which did not change
    replayed = await fraudctl(
        platform, "audit", "replay", "--transaction", "pf-2", "--governance", platform.address("governance")
    )
    assert "1 match, 0 mismatch" in replayed  # features are keyed by the subject id, not the erased token
    explained = await fraudctl(platform, "audit", "explain", "--transaction", "pf-2")
    assert ERASED in explained and before.subject_id in explained
    timeline = await fraudctl(platform, "audit", "timeline", "--json")
    rows = [json.loads(line) for line in timeline.splitlines() if line.startswith("{")]
    assert any(
        r["kind"] == "SubjectErased" and r["who"] == "user:dev-privacy-officer" and "ticket 7" in r["what"]
        for r in rows
    )

    again = await fraudctl(
        platform, "privacy", "forget", "--pan-stdin", stdin=FORGOTTEN, code=1, who="dev-privacy-officer"
    )
    assert "already forgotten" in again and FORGOTTEN not in again

    # Ingest forgot the key itself (no cached copy survives): the card's next transaction starts a new subject,
    # readable under a new key.
    async with aio_channel(platform.address("ingest"), "dev-scorer") as channel:
        await ingest_grpc.IngestServiceStub(channel).ScoreTransaction(request("pf-5", FORGOTTEN, 5), timeout=10)
    reborn = await received(platform, "pf-5")
    assert reborn.subject_id not in ("", before.subject_id)
    assert read_field(fresh, reborn.subject_id, "card_token", reborn.sealed_card_token) == token
