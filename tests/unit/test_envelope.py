from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import wrappers_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudshared.events.envelope import (
    ATTRIBUTES,
    Envelope,
    EnvelopeError,
    event_id,
    format_time,
    from_nats,
    new_envelope,
    to_nats,
    to_nats_checked,
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


# ---- issue 12: whatever a writer sends reads back -------------------------------------------------------------

ATTRIBUTE_NAMES = [f"ce-{name}" for name in ATTRIBUTES]
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
any_time = st.datetimes(timezones=st.builds(timezone, offsets)) | st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999), timezones=st.just(UTC)
)
# Any code point, lone surrogates included: they must be refused at construction, never at write or read time.
any_text = st.text(st.characters(codec=None, categories=None), min_size=0, max_size=40)


def test_year_0001_and_9999_read_back() -> None:
    for moment in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)):
        envelope = make(time=moment)
        headers, body = to_nats_checked(envelope)
        assert headers["ce-time"][:4] in ("0001", "9999")
        assert from_nats(headers, body) == envelope


def test_a_time_before_year_1_in_utc_is_refused_at_construction() -> None:
    with pytest.raises(EnvelopeError, match=r"years 1\.\.9999"):
        make(time=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))


def test_to_nats_checked_refuses_an_envelope_that_would_not_read_back() -> None:
    broken = make()
    object.__setattr__(broken, "time", datetime(2026, 1, 1))  # a naive time slipped past validation
    with pytest.raises(EnvelopeError, match="read back"):
        to_nats_checked(broken)


traceparents = st.none() | st.from_regex(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", fullmatch=True)


def _assert_reads_back(envelope: Envelope) -> None:
    headers, body = to_nats_checked(envelope)
    assert all(value.isascii() and value.isprintable() and " " not in value for value in headers.values())
    back = from_nats(headers, body)
    assert back == envelope
    assert back.sha256() == envelope.sha256()


@settings(max_examples=300, deadline=None)
@given(
    ident=st.from_regex(r"[\x21-\x7e]{1,30}", fullmatch=True),
    texts=st.lists(st.text(min_size=1, max_size=40), min_size=3, max_size=3),  # any unicode but lone surrogates
    moment=any_time,
    data=st.binary(max_size=64),
    version=st.integers(min_value=1, max_value=2**32 - 1),
    traceparent=traceparents,
)
def test_every_admissible_envelope_reads_back_equal(
    ident: str, texts: list[str], moment: datetime, data: bytes, version: int, traceparent: str | None
) -> None:
    source, subject, kind = texts
    _assert_reads_back(Envelope(ident, source, kind, subject, moment, data, version, kind, traceparent))


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(any_text, min_size=5, max_size=5),
    moment=any_time,
    version=st.integers(min_value=-3, max_value=2**33),
    traceparent=traceparents,
)
def test_an_envelope_either_refuses_to_construct_or_reads_back_equal(
    texts: list[str], moment: datetime, version: int, traceparent: str | None
) -> None:
    ident, source, subject, kind, schema = texts
    try:
        envelope = Envelope(ident, source, kind, subject, moment, b"", version, schema, traceparent)
    except EnvelopeError:
        return  # refused up front, so never written
    _assert_reads_back(envelope)


def _mutated_headers(draw: st.DrawFn) -> dict[str, str]:
    headers, _ = to_nats(make())
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from([*ATTRIBUTE_NAMES, "content-type", "ce-other"]) | any_text)
        if draw(st.booleans()):
            headers.pop(name, None)
        else:
            headers[name] = draw(
                any_text | st.sampled_from(["1-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9" * 5000])
            )
    return headers


@settings(max_examples=400, deadline=None)
@given(headers=st.composite(_mutated_headers)() | st.dictionaries(any_text, any_text, max_size=6), body=st.binary())
def test_from_nats_returns_an_envelope_or_raises_envelope_error(headers: dict[str, str], body: bytes) -> None:
    try:
        envelope = from_nats(headers, body)
    except EnvelopeError:
        return
    assert isinstance(envelope, Envelope)
