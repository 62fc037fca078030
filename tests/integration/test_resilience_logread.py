"""The resilience harness reads decisions back from a real log: a bad message is named and the rest still reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared import subjects
from fraudshared.events import Envelope, EventStore, default_specs, ensure_streams, event_id, new_envelope
from fraudshared.identity import ssl_context
from fraudshared.nats_server import NatsServer
from resilience.check import PREDICTION, RECEIVED, LogRecord
from resilience.logread import read_log
from tests.fixtures.identity import DevPki

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _envelope(kind: str, tx: str) -> tuple[Envelope, str]:
    if kind == RECEIVED:
        message, subject = tx_events.TransactionReceived(transaction_id=tx), subjects.transaction_received
    else:
        message = tx_events.PredictionMade(transaction_id=tx, decision=common.DECISION_APPROVE)
        subject = subjects.prediction_made
    envelope = new_envelope(
        message, source="/test", subject="card", event_id=event_id(kind, tx), time=WHEN, schema_version=1
    )
    return envelope, subject("card", tx)


async def test_over_tls_the_log_is_read_as_the_read_only_auditor(tmp_path: Path, dev_pki: DevPki) -> None:
    async def connect(principal: str) -> NATS:
        return await nats.connect(server.url, tls=ssl_context(dev_pki.files(principal)), connect_timeout=5)

    with NatsServer(tmp_path / "nats", secure=dev_pki.files("service:nats", server=True)) as server:
        bootstrap = await connect("service:bootstrap")  # only it may create the streams
        await ensure_streams(bootstrap.jetstream(timeout=5.0), default_specs())
        await bootstrap.close()
        for principal, kind in (("service:ingest", RECEIVED), ("service:scoring", PREDICTION)):
            writer = await connect(principal)  # each event by the service that owns its subject
            envelope, subject = _envelope(kind, "tls-1")
            await EventStore(writer.jetstream(timeout=5.0)).append(envelope, subject=subject)
            await writer.close()
        with pytest.raises(ValueError, match="needs a client certificate"):
            await read_log(server.url)
        records, problems = await read_log(server.url, dev_pki.files("dev-auditor"))

    assert server.url.startswith("tls://") and problems == []
    assert sorted((r.kind, r.transaction_id, r.decision) for r in records) == [
        (PREDICTION, "tls-1", "APPROVE"),
        (RECEIVED, "tls-1", ""),
    ]


async def test_an_unreadable_event_is_a_problem_and_the_events_after_it_are_still_read(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream(timeout=5.0)
            await ensure_streams(js, default_specs())
            store = EventStore(js)

            async def record(kind: str, tx: str) -> None:
                if kind == RECEIVED:
                    message, subject = tx_events.TransactionReceived(transaction_id=tx), subjects.transaction_received
                else:
                    message = tx_events.PredictionMade(transaction_id=tx, decision=common.DECISION_REVIEW)
                    subject = subjects.prediction_made
                envelope = new_envelope(
                    message, source="/test", subject="card", event_id=event_id(kind, tx), time=WHEN, schema_version=1
                )
                await store.append(envelope, subject=subject("card", tx))

            await record(RECEIVED, "tx-1")
            await record(PREDICTION, "tx-1")
            bad = await js.publish(subjects.transaction_received("card", "tx-bad"), b"\x00\xffnot an envelope")
            await js.publish(subjects.prediction_made("card", "tx-bad"), b"\x00\xffnot an envelope")
            await record(RECEIVED, "tx-2")
            await record(PREDICTION, "tx-2")
        finally:
            await nc.close()

        records, problems = await read_log(server.url)

    assert sorted((r.kind, r.transaction_id, r.decision) for r in records) == [
        (PREDICTION, "tx-1", "REVIEW"),
        (PREDICTION, "tx-2", "REVIEW"),
        (RECEIVED, "tx-1", ""),
        (RECEIVED, "tx-2", ""),
    ]
    assert all(isinstance(r, LogRecord) and r.seq > 0 for r in records)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"TRANSACTIONS seq {bad.seq}: unreadable:"), problems
    assert problems[1].startswith("PREDICTIONS seq ") and "unreadable" in problems[1], problems
