"""The event store against a real nats-server (JetStream): append-only streams, dedupe, concurrency, replay."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf import wrappers_pb2
from nats.js import JetStreamContext
from nats.js.api import StorageType
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from fraud.common.v1 import money_pb2
from fraudshared.events import (
    AppendRequest,
    ConcurrencyError,
    Envelope,
    EnvelopeError,
    EventStore,
    StreamConfigConflict,
    StreamSpec,
    UpcasterRegistry,
    default_specs,
    ensure_streams,
    event_id,
    new_envelope,
)
from fraudshared.events.follow import follow
from fraudshared.nats_server import (
    NatsServer,
    NatsServerNotFound,
    NatsServerStartError,
    find_executable,
    find_free_port,
)

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def envelope(business_id: str, value: str = "card-token-abc", *, minutes: int = 0) -> Envelope:
    return new_envelope(
        wrappers_pb2.StringValue(value=value),
        source="/fraud/tests",
        subject=value,
        event_id=event_id("TestEvent", business_id),
        time=T0 + timedelta(minutes=minutes),
        schema_version=1,
    )


def test_embedded_server_is_loopback_healthy_and_reaped(nats_server: NatsServer, tmp_path: Path) -> None:
    assert nats_server.healthy() and nats_server.url.startswith("nats://127.0.0.1:")
    argv = nats_server.command_line()
    assert argv[1:5] == ["-a", "127.0.0.1", "-p", str(nats_server.port)] and "-js" in argv
    clash = NatsServer(tmp_path / "clash", port=nats_server.port, monitor_port=find_free_port())
    with pytest.raises(NatsServerStartError, match="address already in use"):
        clash.start(timeout=5)
    second = NatsServer(tmp_path / "second").start()
    pid = second.pid
    second.stop()
    assert second.pid is None and not Path(f"/proc/{pid}").exists()  # reaped: no zombie left behind
    with pytest.raises(NatsServerNotFound):
        find_executable(tmp_path / "missing-nats-server")


def prefix(spec: StreamSpec) -> str:
    return spec.subjects[0].removesuffix(".>")


async def test_default_streams_are_append_only_and_ensure_is_idempotent(js: JetStreamContext) -> None:
    first = await ensure_streams(js, default_specs())
    assert set(first) == {
        "TRANSACTIONS", "FEATURES", "PREDICTIONS", "LABELS", "MODELS", "AUDIT", "MONITOR", "PRIVACY", "QUARANTINE",
        "ACCESS",
    }  # fmt: skip
    assert set(first.values()) <= {"created", "unchanged"}
    assert set((await ensure_streams(js)).values()) == {"unchanged"}
    info = await js.stream_info("TRANSACTIONS")
    assert info.config.subjects == ["fraud.tx.>"]
    assert info.config.storage == StorageType.FILE
    assert (info.config.deny_delete, info.config.deny_purge, info.config.allow_rollup_hdrs) == (True, True, False)
    assert info.config.duplicate_window == pytest.approx(120.0)
    assert not info.config.max_age


async def test_history_cannot_be_deleted_or_purged(js: JetStreamContext, unique_stream: StreamSpec) -> None:
    result = await EventStore(js).append(envelope("del-1"), subject=f"{prefix(unique_stream)}.a")
    with pytest.raises(APIError):
        await js.delete_msg(unique_stream.name, result.seq)
    with pytest.raises(APIError):
        await js.purge_stream(unique_stream.name)
    assert (await js.stream_info(unique_stream.name)).state.messages == 1


async def test_ensure_streams_updates_drift_and_refuses_storage_change(js: JetStreamContext) -> None:
    suffix = uuid.uuid4().hex[:10]
    spec = StreamSpec(f"DRIFT_{suffix}", (f"drift.{suffix}.>",), "drift test", duplicate_window=30.0)
    await js.add_stream(name=spec.name, subjects=list(spec.subjects), storage=StorageType.FILE, duplicate_window=5)
    assert await ensure_streams(js, [spec]) == {spec.name: "updated"}
    config = (await js.stream_info(spec.name)).config
    assert (config.deny_delete, config.deny_purge, config.duplicate_window) == (True, True, pytest.approx(30.0))
    assert await ensure_streams(js, [spec]) == {spec.name: "unchanged"}

    memory = StreamSpec(f"MEM_{suffix}", (f"mem.{suffix}.>",), "memory stream")
    await js.add_stream(name=memory.name, subjects=list(memory.subjects), storage=StorageType.MEMORY)
    with pytest.raises(StreamConfigConflict, match="storage"):
        await ensure_streams(js, [memory])


async def test_same_msg_id_is_stored_once(js: JetStreamContext, unique_stream: StreamSpec) -> None:
    store, subject = EventStore(js), f"{prefix(unique_stream)}.dedupe"
    first = await store.append(envelope("tx-1"), subject=subject)
    again = await store.append(envelope("tx-1"), subject=subject)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.seq == first.seq and again.stream == unique_stream.name
    assert (await js.stream_info(unique_stream.name)).state.messages == 1


async def test_retry_of_a_guarded_append_is_a_duplicate_not_a_conflict(
    js: JetStreamContext, unique_stream: StreamSpec
) -> None:
    store, subject = EventStore(js), f"{prefix(unique_stream)}.card-1"
    first = await store.append(envelope("tx-1"), subject=subject, expected_last_subject_seq=0)
    retried = await store.append(envelope("tx-1"), subject=subject, expected_last_subject_seq=0)
    assert retried == type(first)(stream=first.stream, seq=first.seq, duplicate=True)


async def test_racing_writers_exactly_one_wins(js: JetStreamContext, unique_stream: StreamSpec) -> None:
    store, subject = EventStore(js), f"{prefix(unique_stream)}.card-7"
    seed = await store.append(envelope("seed"), subject=subject)
    expected = await store.last_subject_seq(unique_stream.name, subject)
    assert expected == seed.seq
    outcomes = await asyncio.gather(
        store.append(envelope("writer-a"), subject=subject, expected_last_subject_seq=expected),
        store.append(envelope("writer-b"), subject=subject, expected_last_subject_seq=expected),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], ConcurrencyError)
    assert (losers[0].subject, losers[0].expected, losers[0].actual) == (subject, expected, winners[0].seq)
    assert await store.last_subject_seq(unique_stream.name, subject) == winners[0].seq
    # Another subject in the same stream is not affected by the guard.
    other = await store.append(envelope("other"), subject=f"{subject}-x", expected_last_subject_seq=0)
    assert other.seq == winners[0].seq + 1


async def test_append_many_acks_all_in_order_and_reads_back(js: JetStreamContext, unique_stream: StreamSpec) -> None:
    store, base = EventStore(js), prefix(unique_stream)
    events = [envelope(f"tx-{i}", f"card-{i % 3}", minutes=i) for i in range(25)]
    results = await store.append_many([AppendRequest(e, f"{base}.card-{i % 3}") for i, e in enumerate(events)])
    assert [r.seq for r in results] == list(range(1, 26))
    assert not any(r.duplicate for r in results)

    stored = [event async for event in store.read_subject(unique_stream.name, f"{base}.>")]
    assert [s.seq for s in stored] == list(range(1, 26))
    assert [s.envelope for s in stored] == events
    assert [s.envelope.sha256() for s in stored] == [e.sha256() for e in events]
    assert [s.envelope.data for s in stored] == [e.data for e in events]
    assert stored[4].subject == f"{base}.card-1"

    card1 = [s.seq for s in [e async for e in store.read_subject(unique_stream.name, f"{base}.card-1", 10)]]
    assert card1 == [11, 14, 17, 20, 23]
    assert [e async for e in store.read_subject(unique_stream.name, f"{base}.nobody")] == []
    assert [e async for e in store.read_subject(unique_stream.name, f"{base}.>", 26)] == []
    assert await store.last_subject_seq(unique_stream.name, f"{base}.card-2") == 24
    assert await store.last_subject_seq(unique_stream.name, f"{base}.nobody") == 0
    again = await store.append_many([AppendRequest(events[0], f"{base}.card-0")])
    assert again[0].seq == 1 and again[0].duplicate
    assert await js.consumers_info(unique_stream.name) == []  # readers clean up their ephemeral consumers


async def test_transient_no_responders_is_retried(js: JetStreamContext) -> None:
    suffix = uuid.uuid4().hex[:10]
    spec = StreamSpec(f"LATE_{suffix}", (f"late.{suffix}.>",), "created while the append waits to retry")
    pending = asyncio.create_task(EventStore(js, attempts=5).append(envelope("late"), subject=f"late.{suffix}.a"))
    await asyncio.sleep(0.01)  # the first attempt finds no stream (no responders) and backs off
    await ensure_streams(js, [spec])
    assert (await pending).seq == 1


async def test_missing_stream_errors(js: JetStreamContext) -> None:
    store = EventStore(js, attempts=2)
    with pytest.raises(NotFoundError):
        await store.last_subject_seq("NO_SUCH_STREAM", "x.y")
    with pytest.raises(NotFoundError):
        [e async for e in store.read_subject("NO_SUCH_STREAM", "x.>")]
    with pytest.raises(NoStreamResponseError):  # no stream captures the subject: retried, then raised
        await store.append(envelope("lost"), subject=f"nowhere.{uuid.uuid4().hex}")


async def test_stored_old_payload_is_read_as_current_version(js: JetStreamContext, unique_stream: StreamSpec) -> None:
    # Money v1 was one string field "EUR 12.34"; v2 is integer minor units plus currency (field 1 changed type).
    money_type = money_pb2.Money.DESCRIPTOR.full_name
    old = Envelope(
        id=event_id("MoneyRecorded", "m-1"),
        source="/fraud/tests",
        type=money_type,
        subject="m-1",
        time=T0,
        data=wrappers_pb2.StringValue(value="EUR 12.34").SerializeToString(),
        schema_version=1,
        dataschema=money_type,
    )
    store = EventStore(js)
    await store.append(old, subject=f"{prefix(unique_stream)}.money")

    registry = UpcasterRegistry(current={money_type: 2})

    @registry.upcaster(money_type, from_version=1)
    def money_v1_to_v2(data: bytes) -> tuple[bytes, int]:
        currency, amount = wrappers_pb2.StringValue.FromString(data).value.split()
        major, _, minor = amount.partition(".")
        v2 = money_pb2.Money(amount_minor=int(major) * 100 + int(minor.ljust(2, "0")), currency=currency)
        return v2.SerializeToString(deterministic=True), 2

    [stored] = [e async for e in store.read_subject(unique_stream.name, f"{prefix(unique_stream)}.money")]
    assert stored.envelope == old and stored.envelope.sha256() == old.sha256()
    current = registry.upcast(stored.envelope)
    assert current.schema_version == 2
    assert current.payload(money_pb2.Money) == money_pb2.Money(amount_minor=1234, currency="EUR")


async def test_a_lingering_follower_reads_a_burst_in_one_batch(js: JetStreamContext, unique_stream: StreamSpec) -> None:
    store, base = EventStore(js), prefix(unique_stream)
    seen: list[tuple[int, float]] = []
    first_seen, all_seen = asyncio.Event(), asyncio.Event()

    def on_event(seq: int, _: Envelope) -> None:
        seen.append((seq, time.monotonic()))
        first_seen.set()
        if len(seen) == 11:
            all_seen.set()

    follower = await follow(js, store, unique_stream.name, f"{base}.>", on_event, linger_s=0.6, reader="test")
    try:
        first = time.monotonic()
        await store.append_many([AppendRequest(envelope("tx-0"), f"{base}.card-0")])
        await asyncio.wait_for(first_seen.wait(), 5)
        assert seen[0][1] - first < 0.5  # a lone event after a quiet spell is handled at once
        await store.append_many([AppendRequest(envelope(f"tx-{i}"), f"{base}.card-{i}") for i in range(1, 11)])
        await asyncio.wait_for(all_seen.wait(), 5)
        assert [seq for seq, _ in seen] == list(range(1, 12))
        # The burst arrived while the follower lingered after the first event: read together once it ended.
        burst = [t for _, t in seen[1:]]
        assert min(burst) - seen[0][1] >= 0.5 and max(burst) - min(burst) < 0.05
    finally:
        await follower.stop()


async def test_an_envelope_that_would_not_read_back_is_refused_and_nothing_is_appended(
    js: JetStreamContext, unique_stream: StreamSpec
) -> None:
    store, subject = EventStore(js), f"{prefix(unique_stream)}.broken"
    broken = envelope("tx-broken")
    object.__setattr__(broken, "time", datetime(2026, 1, 1))  # naive: slipped past the envelope's validation
    with pytest.raises(EnvelopeError, match="read back"):
        await store.append(broken, subject=subject)
    assert (await js.stream_info(unique_stream.name)).state.messages == 0
    year_one = dataclasses.replace(envelope("tx-year-1"), time=datetime(1, 1, 1, tzinfo=UTC))
    await store.append(year_one, subject=subject)  # the contract's whole range is written so that it reads back
    [stored] = [e async for e in store.read_subject(unique_stream.name, subject)]
    assert stored.envelope == year_one
