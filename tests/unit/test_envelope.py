from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import wrappers_pb2

from fraudshared.events.envelope import (
    Envelope,
    EnvelopeError,
    event_id,
    format_time,
    from_nats,
    new_envelope,
    to_nats,
)
from fraudshared.events.upcasting import UpcasterRegistry, UpcastError

TIME = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def make(**overrides: object) -> Envelope:
    envelope = new_envelope(
        wrappers_pb2.StringValue(value="card-token-abc"),
        source="/fraud/ingest",
        subject="card-token-abc",
        event_id=event_id("TransactionReceived", "tx-123"),
        time=TIME,
        schema_version=1,
        traceparent=TRACEPARENT,
    )
    return dataclasses.replace(envelope, **overrides)  # type: ignore[arg-type]


def test_new_envelope_fills_type_and_schema_from_descriptor() -> None:
    envelope = make()
    assert envelope.type == "google.protobuf.StringValue"
    assert envelope.dataschema == "google.protobuf.StringValue"
    assert envelope.datacontenttype == "application/protobuf"
    assert envelope.specversion == "1.0"
    assert envelope.id == "TransactionReceived:tx-123"
    assert envelope.payload(wrappers_pb2.StringValue).value == "card-token-abc"


def test_headers_follow_nats_binary_mode() -> None:
    headers, body = to_nats(make())
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": "TransactionReceived:tx-123",
        "ce-source": "/fraud/ingest",
        "ce-type": "google.protobuf.StringValue",
        "ce-subject": "card-token-abc",
        "ce-time": "2026-11-25T10:00:00.123456Z",
        "ce-datacontenttype": "application/protobuf",
        "ce-dataschema": "google.protobuf.StringValue",
        "ce-schemaversion": "1",
        "ce-traceparent": TRACEPARENT,
    }
    assert body == wrappers_pb2.StringValue(value="card-token-abc").SerializeToString()


def test_round_trip_and_percent_encoding() -> None:
    envelope = make(source="/fraud/ingest eu", subject='merchant "Café" 100%')
    headers, body = to_nats(envelope)
    assert headers["ce-source"] == "/fraud/ingest%20eu"
    assert headers["ce-subject"] == "merchant%20%22Caf%C3%A9%22%20100%25"
    assert all(value.isascii() for value in headers.values())
    back = from_nats(headers, body)
    assert back == envelope
    assert back.sha256() == envelope.sha256()


def test_from_nats_is_case_insensitive_and_ignores_transport_headers() -> None:
    headers, body = to_nats(make(traceparent=None))
    mixed = {key.upper(): value for key, value in headers.items()} | {"Nats-Msg-Id": "x", "traceparent": TRACEPARENT}
    assert from_nats(mixed, body) == make(traceparent=None)


def test_from_nats_accepts_quoted_and_lowercase_escapes() -> None:
    headers, body = to_nats(make())
    headers["ce-subject"] = '"caf%c3%a9 \\"x\\""'
    assert from_nats(headers, body).subject == 'café "x"'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ce-id": None}, "missing"),
        ({"ce-color": "red"}, "unknown"),
        ({"ce-schemaversion": "one"}, "schemaversion"),
        ({"ce-time": "2026-11-25T10:00:00"}, "timezone"),
        ({"ce-specversion": "0.3"}, "specversion"),
        ({"ce-subject": "%C0%A0"}, "UTF-8"),
        ({"content-type": "application/cloudevents+json"}, "structured"),
    ],
)
def test_from_nats_rejects_bad_headers(change: dict[str, str | None], message: str) -> None:
    headers, body = to_nats(make())
    for key, value in change.items():
        if value is None:
            headers.pop(key)
        else:
            headers[key] = value
    with pytest.raises(EnvelopeError, match=message):
        from_nats(headers, body)


def test_sha256_is_canonical_and_sensitive() -> None:
    envelope = make()
    same_instant = make(time=TIME.astimezone(timezone(timedelta(hours=2))))
    assert same_instant.sha256() == envelope.sha256()
    assert make(time=TIME + timedelta(microseconds=1)).sha256() != envelope.sha256()
    assert make(data=envelope.data + b"\x00").sha256() != envelope.sha256()
    assert make(traceparent=None).sha256() != envelope.sha256()
    assert make(schema_version=2).sha256() != envelope.sha256()
    # Written out by hand as docs/events.md defines it; changing it breaks every stored checkpoint.
    canonical = (
        b"fraud-envelope-v1\n"
        b"specversion=1.0\n"
        b"id=TransactionReceived:tx-123\n"
        b"source=/fraud/ingest\n"
        b"type=google.protobuf.StringValue\n"
        b"subject=card-token-abc\n"
        b"time=2026-11-25T10:00:00.123456Z\n"
        b"datacontenttype=application/protobuf\n"
        b"dataschema=google.protobuf.StringValue\n"
        b"schemaversion=1\n"
        b"traceparent=" + TRACEPARENT.encode() + b"\n"
        b"\n" + envelope.data
    )
    assert envelope.sha256() == hashlib.sha256(canonical).hexdigest()
    assert envelope.sha256() == "89f5aabccc1d7229a5b5a983eec8d7e19d5ef386ea80519ad3d74ec3033641a9"


def test_format_time_is_utc_microseconds() -> None:
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"


def test_envelope_validation() -> None:
    with pytest.raises(EnvelopeError, match="timezone"):
        make(time=datetime(2026, 1, 1))
    with pytest.raises(EnvelopeError, match="schemaversion"):
        make(schema_version=0)
    with pytest.raises(EnvelopeError, match="traceparent"):
        make(traceparent="not-a-trace")
    with pytest.raises(EnvelopeError, match="empty"):
        make(source="")
    with pytest.raises(EnvelopeError, match="not"):
        make().payload(wrappers_pb2.Int64Value)


@pytest.mark.parametrize("parts", [("", "x"), ("Kind", ""), ("A:B", "x"), ("Kind", "has space"), ("Kind", "é")])
def test_event_id_rejects_bad_parts(parts: tuple[str, str]) -> None:
    with pytest.raises(EnvelopeError):
        event_id(*parts)


def test_sdk_accepts_the_envelope_as_a_cloudevent() -> None:
    event = make().to_cloudevent()
    assert event.get_id() == "TransactionReceived:tx-123"
    assert event.get_time() == TIME
    assert event.get_extension("schemaversion") == 1
    assert event.get_data() == make().data


def test_upcast_chain_to_current_version() -> None:
    registry = UpcasterRegistry(current={"google.protobuf.StringValue": 3})
    registry.register("google.protobuf.StringValue", 1, lambda data: (data + b"|v2", 2))

    @registry.upcaster("google.protobuf.StringValue", from_version=2)
    def to_v3(data: bytes) -> tuple[bytes, int]:
        return data + b"|v3", 3

    old = make(data=b"v1")
    new = registry.upcast(old)
    assert (new.data, new.schema_version) == (b"v1|v2|v3", 3)
    assert dataclasses.replace(new, data=old.data, schema_version=1) == old
    assert registry.upcast(new) is new


def test_upcast_errors() -> None:
    registry = UpcasterRegistry(current={"google.protobuf.StringValue": 2})
    with pytest.raises(UpcastError, match="no upcaster"):
        registry.upcast(make())
    with pytest.raises(UpcastError, match="newer"):
        registry.upcast(make(schema_version=3))
    registry.register("google.protobuf.StringValue", 1, lambda data: (data, 1))
    with pytest.raises(UpcastError, match="not forward"):
        registry.upcast(make())
    with pytest.raises(ValueError, match="already"):
        registry.register("google.protobuf.StringValue", 1, lambda data: (data, 2))
    assert UpcasterRegistry().upcast(make()) == make()  # unknown type, no chain: unchanged
