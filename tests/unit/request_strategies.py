"""Hypothesis strategies for arbitrary protobuf requests and request bodies, built from descriptors.

Used by tests/unit/test_property_requests.py: any subset of a message's fields set to any value of their type
(Timestamps around every edge of their range and of the contract's window, huge and card-number-like strings,
open enum values), and request bodies that are such messages serialized, random bytes, one flipped byte, or
invalid UTF-8 in a string field.
"""

from __future__ import annotations

import time
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

PAN = "4111111111111111"

NOW = int(time.time())
TS_MIN, TS_MAX = -62_135_596_800, 253_402_300_799
SECONDS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(TS_MIN - 3, TS_MIN + 3) | st.integers(TS_MAX - 3, TS_MAX + 3),
    st.integers(946_684_790, 946_684_810),  # 2000-01-01, the contract's first second
    st.integers(NOW - 400 * 86_400, NOW + 2 * 86_400),
)
NANOS = st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(0, 999_999_999), st.sampled_from([-1, 10**9]))
SPECIAL = ["", PAN, "tx-4111-1111-1111-1111", "EUR", "card-v2", "1.0.0", "gbdt", "ct_" + "a" * 32, "a" * 65, "é\x00"]
TEXT = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[A-Za-z0-9_:-]{1,64}", fullmatch=True),
    st.sampled_from(SPECIAL),
    st.text(min_size=100, max_size=400),
    st.just("x" * 5_000),  # beyond every max_len; beyond 64 KiB is test_request_bounds' (grpc takes ~0.25 s)
)
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}  # fmt: skip


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return TEXT
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 8)  # proto3 enums are open: unknown values arrive too
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    low, high = INT_RANGES[field.type]
    return st.integers(low, high)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Arbitrary messages of ``descriptor``'s type: any subset of fields set to any value of their type."""
    cls = GetMessageClass(descriptor)
    if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return st.builds(lambda s, n: cls(seconds=s, nanos=n), SECONDS, NANOS)
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            if value.message_type is None:
                optional[field.name] = st.dictionaries(_scalar(key), _scalar(value), max_size=4)
        elif entry is not None:
            if depth < 3:
                inner = messages(entry, depth + 1)
                optional[field.name] = st.lists(inner, max_size=3) if field.is_repeated else inner
        else:
            optional[field.name] = st.lists(_scalar(field), max_size=5) if field.is_repeated else _scalar(field)
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: _build(cls, values))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        target = getattr(message, name)
        if isinstance(value, dict):
            target.update(value)
        elif isinstance(value, list):
            target.extend(value)
        elif isinstance(value, Message):
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def _with_bad_utf8(body: bytes, field_number: int, tail: bytes) -> bytes:
    junk = b"\xff" + tail  # 0xff never starts a UTF-8 sequence
    return body + bytes([field_number << 3 | 2, len(junk)]) + junk


def bodies(cls: type[Message]) -> st.SearchStrategy[bytes]:
    """Serialized arbitrary messages, random bytes, one flipped byte, invalid UTF-8 in a string field."""
    serialized = messages(cls.DESCRIPTOR).map(lambda m: m.SerializeToString())
    strings = [f.number for f in cls.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING and f.number < 16]
    flipped = st.tuples(serialized, st.integers(0, 10_000), st.integers(1, 255)).map(
        lambda t: bytes(b ^ t[2] if i == t[1] % max(1, len(t[0])) else b for i, b in enumerate(t[0]))
    )
    variants = [serialized, st.binary(max_size=200), flipped]
    if strings:
        bad = st.tuples(serialized, st.sampled_from(strings), st.binary(max_size=8)).map(lambda t: _with_bad_utf8(*t))
        variants.append(bad)
    return st.one_of(variants)
