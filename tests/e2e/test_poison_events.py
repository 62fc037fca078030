"""No event can poison a reader (issue 12): bad events on every stream, then a restart of the whole platform.

Garbage bytes, a truncated envelope, a wrong type and a year-0001 event (as the envelope used to write it) are
published raw to every stream, bypassing our store. The platform must come up again and keep deciding through
the model, and every reader must have quarantined each bad event it met exactly once.
This module runs its own nats-server and tritonserver (it poisons their streams for good).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from google.protobuf import wrappers_pb2
from nats.js import JetStreamContext

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.events.v1 import quarantine_events_pb2 as pb
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudctl.demo import deploy
from fraudml.datagen import generate
from fraudml.train import train
from fraudshared.events import EventStore, UnexpectedType, event_id, new_envelope, to_nats
from fraudshared.nats_server import NatsServer
from fraudshared.triton_server import TritonServer
from tests.e2e import dev_credentials
from tests.fixtures.identity import aio_channel
from tests.fixtures.platform import running_platform

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
NOW = datetime.now(UTC).replace(microsecond=0)
# Where each stream's readers look: a subject they follow, and who reads it (the quarantine's reader names).
TARGETS = {
    "TRANSACTIONS": ("fraud.tx.received.0.{kind}", ()),
    "FEATURES": ("fraud.features.computed.0.{kind}", ("features",)),  # read by the features replay at start
    "PREDICTIONS": ("fraud.predictions.made.0.{kind}", ("monitor",)),
    "LABELS": ("fraud.labels.reported.{kind}", ("features", "monitor")),
    "MODELS": ("fraud.models.{kind}", ("governance", "scoring")),
    "AUDIT": ("fraud.audit.{kind}", ()),
    "MONITOR": ("fraud.monitor.{kind}", ()),
    "PRIVACY": ("fraud.privacy.erased.{kind}", ("ingest",)),
    "QUARANTINE": ("fraud.quarantine.{kind}", ()),
}
KINDS = ("poison-garbage", "poison-truncated", "poison-wrong-type", "poison-year-0001")


def bad_message(kind: str) -> tuple[dict[str, str] | None, bytes]:
    valid = new_envelope(
        wrappers_pb2.StringValue(value="not a fraud event"),
        source="/hostile",
        subject="x",
        event_id=event_id("Poison", kind),
        time=NOW,
        schema_version=1,
    )
    headers, body = to_nats(valid)
    if kind == "poison-garbage":
        return None, b"\x00\xff\xfe garbage"
    if kind == "poison-truncated":
        return dict(list(headers.items())[:4]), body[:3]
    if kind == "poison-wrong-type":
        return headers, body  # a readable envelope of a type no stream holds
    return headers | {"ce-time": "1-01-01T00:00:00.000000Z"}, body  # what strftime wrote for 0001-01-01


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsServer, TritonServer, Path]]:
    root = tmp_path_factory.mktemp("poison")
    with NatsServer(root / "nats") as nats_server, TritonServer(root / "models", root / "triton") as triton:
        yield nats_server, triton, root


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(servers: tuple[NatsServer, TritonServer, Path]) -> AsyncIterator[dict[str, str]]:
    nats_server, triton, root = servers
    yield {
        "FRAUD_NATS_URL": nats_server.url,
        "FRAUD_VAR_DIR": str(root / "var"),
        "FRAUD_TRITON_GRPC_URL": triton.grpc_url,
        "FRAUD_TRITON_MODEL_REPO": str(triton.model_repo),
        "FRAUD_GOVERNANCE_RECONCILE_EVERY_S": "0.5",
        "FRAUD_MONITOR_FOLLOW_LINGER_S": "0",
    }


def request(tx_id: str) -> ingest.ScoreTransactionRequest:
    r = ingest.ScoreTransactionRequest(
        transaction_id=tx_id,
        pan="4000000000000002",
        terminal_id="T-P",
        amount=money_pb2.Money(amount_minor=4200, currency="EUR"),
    )
    r.event_time.FromDatetime(NOW - timedelta(minutes=30))
    return r


async def decides_through_the_model(ingest_address: str, prefix: str, seconds: float = 30.0) -> None:
    deadline, attempt = time.monotonic() + seconds, 0
    async with aio_channel(ingest_address, "dev-scorer") as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        while True:
            attempt += 1
            response = await stub.ScoreTransaction(request(f"{prefix}-{attempt}"), timeout=10)
            if response.scoring_path == common.SCORING_PATH_TRITON:
                return
            assert time.monotonic() < deadline, f"no decision through the model within {seconds}s"
            await asyncio.sleep(0.2)


async def poison_every_stream(js: JetStreamContext) -> dict[str, dict[str, int]]:
    """Publishes each bad message to each stream; returns stream -> kind -> sequence."""
    where: dict[str, dict[str, int]] = {}
    for stream, (pattern, _) in TARGETS.items():
        for kind in KINDS:
            headers, body = bad_message(kind)
            ack = await js.publish(pattern.format(kind=kind), body, headers=headers)
            assert ack.stream == stream
            where.setdefault(stream, {})[kind] = ack.seq
    return where


async def records(js: JetStreamContext) -> Counter[tuple[str, str, int]]:
    """(reader, stream, sequence) -> how many EventQuarantined say so."""
    found: Counter[tuple[str, str, int]] = Counter()
    async for stored in EventStore(js).read_subject("QUARANTINE", "fraud.quarantine.>", on_unreadable=lambda _: None):
        try:
            record = stored.envelope.payload(pb.EventQuarantined)
        except UnexpectedType:  # the wrong-type event this test put on QUARANTINE itself
            continue
        found[(record.reader, record.stream, record.stream_sequence)] += 1
    return found


async def test_bad_events_on_every_stream_do_not_stop_the_platform(env: dict[str, str]) -> None:
    async with running_platform(env) as platform:
        result = train(generate(n_customers=150, n_terminals=150, n_days=30, seed=3), train_days=16)
        dev_credentials.install(platform.var_dir)  # deploy calls as model-owner, approver and approver-2
        await deploy(platform.address("governance"), platform.var_dir, result)
        await decides_through_the_model(platform.address("ingest"), "before")
        nc = await nats.connect(platform.nats_url)
        try:
            poisoned = await poison_every_stream(nc.jetstream())
            await asyncio.sleep(1.0)  # live followers meet them now
            await decides_through_the_model(platform.address("ingest"), "poisoned")
        finally:
            await nc.close()

    # The features owner replays FEATURES only after its snapshot, which the decision above moved past the bad
    # events; without it (a new owner, a lost snapshot) the replay meets every one of them.
    for snapshot in (Path(env["FRAUD_VAR_DIR"]) / "features").glob("snapshot-*"):
        snapshot.unlink()
    async with running_platform(env) as platform:  # every reader catches up over the bad events
        await decides_through_the_model(platform.address("ingest"), "after", seconds=60)
        nc = await nats.connect(platform.nats_url)
        try:
            found = await records(nc.jetstream())
        finally:
            await nc.close()

    expected = {
        (reader, stream, seq)
        for stream, (_, readers) in TARGETS.items()
        for reader in readers
        for seq in poisoned[stream].values()
    }
    assert set(found) == expected, (sorted(expected - set(found)), sorted(set(found) - expected))
    assert all(n == 1 for n in found.values()), {k: n for k, n in found.items() if n != 1}  # once per reader
