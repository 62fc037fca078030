"""Readers never stop on a bad event (issue 12): quarantine against a real nats-server.

Bad events are published raw (``js.publish``), bypassing our store, as a hostile or broken writer would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from google.protobuf import wrappers_pb2
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from fraud.events.v1 import quarantine_events_pb2 as pb
from fraudshared.events import EnvelopeError, EventStore, StreamSpec, UnreadableEvent, default_specs, ensure_streams
from fraudshared.events.envelope import Envelope, event_id, new_envelope, raw_message_hash, to_nats
from fraudshared.events.follow import follow
from fraudshared.events.quarantine import QUARANTINE_STREAM, Quarantine
from fraudshared.nats_server import NatsServer, find_free_port

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def good(business_id: str, value: str = "ok", message: object = None) -> Envelope:
    return new_envelope(
        message or wrappers_pb2.StringValue(value=value),  # type: ignore[arg-type]
        source="/fraud/tests",
        subject="card-1",
        event_id=event_id("TestEvent", business_id),
        time=T0,
        schema_version=1,
    )


def poison(name: str) -> tuple[dict[str, str] | None, bytes]:
    """The bad messages of issue 12, as raw headers and body."""
    if name == "garbage":
        return None, b"\x00\xffnot an envelope\xfe"
    headers, body = to_nats(good(f"poison-{name}"))
    if name == "truncated":
        return dict(list(headers.items())[:3]), body[:2]
    if name == "year-0001":  # what the envelope used to write for 0001-01-01 (strftime does not pad %Y)
        return headers | {"ce-time": "1-01-01T00:00:00.000000Z"}, body
    if name == "wrong-type":
        return to_nats(good("poison-wrong-type", message=wrappers_pb2.Int64Value(value=7)))
    if name == "unparsable":
        return headers, b"\xff\xff\xff"
    raise AssertionError(name)


POISON = ("garbage", "truncated", "year-0001", "wrong-type", "unparsable")
REASONS = {
    "garbage": pb.QUARANTINE_REASON_UNREADABLE_ENVELOPE,
    "truncated": pb.QUARANTINE_REASON_UNREADABLE_ENVELOPE,
    "year-0001": pb.QUARANTINE_REASON_UNREADABLE_ENVELOPE,
    "wrong-type": pb.QUARANTINE_REASON_UNEXPECTED_TYPE,
    "unparsable": pb.QUARANTINE_REASON_UNPARSABLE_PAYLOAD,
    "boom": pb.QUARANTINE_REASON_APPLY_FAILED,
}


def prefix(spec: StreamSpec) -> str:
    return spec.subjects[0].removesuffix(".>")


async def quarantined(js: JetStreamContext, reader: str) -> list[pb.EventQuarantined]:
    store = EventStore(js)
    return [
        stored.envelope.payload(pb.EventQuarantined)
        async for stored in store.read_subject(QUARANTINE_STREAM, f"fraud.quarantine.{reader}.>")
    ]


def counted(reader: str, stream: str) -> float:
    return REGISTRY.get_sample_value("fraud_events_quarantined_total", {"reader": reader, "stream": stream}) or 0.0


def string_handler(seen: list[int]) -> Callable[[int, Envelope], None]:
    def handle(seq: int, envelope: Envelope) -> None:
        value = envelope.payload(wrappers_pb2.StringValue).value
        if value == "boom":
            raise RuntimeError("the fold failed")
        seen.append(seq)

    return handle


@pytest.fixture
async def quarantine_stream(js: JetStreamContext) -> None:
    await ensure_streams(js, [s for s in default_specs() if s.name == QUARANTINE_STREAM])


async def publish_all(js: JetStreamContext, subject: str, names: tuple[str, ...]) -> dict[int, str]:
    """Publishes good events and poison in turn; returns sequence -> what was published there."""
    published: dict[int, str] = {}
    for name in names:
        if name in ("good", "boom"):
            headers, body = to_nats(good(uuid.uuid4().hex, "boom" if name == "boom" else "ok"))
        else:
            headers, body = poison(name)
        published[(await js.publish(subject, body, headers=headers)).seq] = name
    return published


async def test_read_subject_raises_by_default_and_hands_over_unreadable_events_on_request(
    js: JetStreamContext, unique_stream: StreamSpec
) -> None:
    store, subject = EventStore(js), f"{prefix(unique_stream)}.card-1"
    published = await publish_all(js, subject, ("good", "garbage", "good", "year-0001", "good"))
    with pytest.raises(EnvelopeError):
        [e async for e in store.read_subject(unique_stream.name, subject)]
    met: list[UnreadableEvent] = []
    read = [e.seq async for e in store.read_subject(unique_stream.name, subject, on_unreadable=met.append)]
    assert read == [seq for seq, name in published.items() if name == "good"]
    assert [(u.seq, u.subject, u.stream) for u in met] == [
        (2, subject, unique_stream.name),
        (4, subject, unique_stream.name),
    ]
    assert met[0].body == poison("garbage")[1] and isinstance(met[1].error, EnvelopeError)


async def test_a_follower_quarantines_each_bad_event_once_and_goes_on(
    js: JetStreamContext, unique_stream: StreamSpec, quarantine_stream: None
) -> None:
    store, subject, reader = EventStore(js), f"{prefix(unique_stream)}.card-1", f"test-{uuid.uuid4().hex[:8]}"
    stored = await publish_all(js, subject, ("good", *POISON, "boom", "good"))  # met in catch-up
    seen: list[int] = []
    follower = await follow(
        js, store, unique_stream.name, f"{prefix(unique_stream)}.>", string_handler(seen), reader=reader
    )
    try:
        live = await publish_all(js, subject, ("good", *POISON, "boom", "good"))  # met by the live pump
        stored |= live
        await wait_for(lambda: follower.last_seq == max(stored), "the follower to pass every event")
    finally:
        await follower.stop()
    assert seen == [seq for seq, name in stored.items() if name == "good"]
    records = {r.stream_sequence: r for r in await quarantined(js, reader)}
    bad = {seq: name for seq, name in stored.items() if name != "good"}
    assert sorted(records) == sorted(bad)
    for seq, name in bad.items():
        record = records[seq]
        assert (record.reader, record.stream, record.nats_subject) == (reader, unique_stream.name, subject)
        assert record.reason == REASONS[name], name
        assert record.schema_version == 1 and record.quarantined_at.seconds > 0
    raw = await js.get_msg(unique_stream.name, next(s for s, n in bad.items() if n == "garbage"))
    assert records[raw.seq].message_sha256 == raw_message_hash(raw.headers, raw.data)
    assert counted(reader, unique_stream.name) == len(bad)

    # A restart meets every bad event again: nothing new is recorded, and the same good events are applied.
    again: list[int] = []
    restarted = await follow(
        js, store, unique_stream.name, f"{prefix(unique_stream)}.>", string_handler(again), reader=reader
    )
    await restarted.stop()
    assert again == seen
    assert len(await quarantined(js, reader)) == len(bad)


async def test_a_record_is_appended_once_even_after_the_dedupe_window(
    js: JetStreamContext, unique_stream: StreamSpec
) -> None:
    short = [s for s in default_specs(duplicate_window=0.5) if s.name == QUARANTINE_STREAM]
    await ensure_streams(js, short)
    try:
        reader = f"test-{uuid.uuid4().hex[:8]}"
        quarantine = Quarantine(EventStore(js), reader)
        headers, body = poison("garbage")
        event = UnreadableEvent(unique_stream.name, 7, "x.y", dict(headers or {}), body, EnvelopeError("bad"))
        await quarantine.unreadable(event)
        await quarantine.unreadable(event)  # met again by the same process: remembered, not appended
        await asyncio.sleep(1.0)  # the Nats-Msg-Id is forgotten: only the subject's expected sequence guards now
        await Quarantine(EventStore(js), reader).unreadable(event)  # a restarted reader
        assert [r.stream_sequence for r in await quarantined(js, reader)] == [7]
    finally:
        await ensure_streams(js, [s for s in default_specs() if s.name == QUARANTINE_STREAM])


def test_a_reader_name_must_be_a_subject_token(js: JetStreamContext) -> None:
    with pytest.raises(ValueError, match="reader name"):
        Quarantine(EventStore(js), "two words")


async def test_the_live_pump_survives_nats_server_restarting(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "jetstream", port=find_free_port(), monitor_port=find_free_port()).start()
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2)
    try:
        js = nc.jetstream(timeout=2.0)
        spec = StreamSpec("RESTART", ("restart.>",), "restart test")
        await ensure_streams(js, [spec, *[s for s in default_specs() if s.name == QUARANTINE_STREAM]])
        store, seen = EventStore(js), []
        for i in range(3):
            await store.append(good(f"before-{i}"), subject="restart.card")
        follower = await follow(js, store, spec.name, "restart.>", string_handler(seen), reader="restart-test")
        try:
            await store.append(good("live-0"), subject="restart.card")
            await wait_for(lambda: seen == [1, 2, 3, 4], "the live event before the restart")
            server.stop()  # the in-memory consumer goes with it
            server.start()
            await wait_for(lambda: nc.is_connected, "the client to reconnect")
            for i in range(3):
                await append_retrying(store, good(f"after-{i}"), "restart.card")
            await wait_for(lambda: len(seen) >= 7, "the events appended after the restart", timeout=30)
            assert seen == [1, 2, 3, 4, 5, 6, 7]  # no gap, none twice
        finally:
            await follower.stop()
    finally:
        await nc.close()
        server.stop()


async def append_retrying(store: EventStore, envelope: Envelope, subject: str) -> None:
    for _ in range(50):  # JetStream may answer 503 for a moment after the server came back
        try:
            await store.append(envelope, subject=subject)
            return
        except Exception:
            await asyncio.sleep(0.2)
    await store.append(envelope, subject=subject)


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
