"""Ingest's request rules that protovalidate cannot say: no card number in an id, no time too far ahead.

The proto rules bound every field (lengths, charsets, Timestamps from 2000-01-01 to a day ahead); these two
need code or configuration:

- No string field other than ``pan`` may hold a card number: a run of 13 to 19 digits that passes the Luhn
  check, plain or grouped as cards are printed (``4111-1111-1111-1111``, ``3782 822463 10005``). A PAN used
  as a transaction id, terminal id or label source would be stored in the log in clear; the error names the
  field and never echoes the value.
- No Timestamp may lie more than the configured skew (``FRAUD_INGEST_MAX_FUTURE_SKEW_S``) in the future.

Each broken rule is an `InvalidTransaction` (field, reason, rule id), the shape every INVALID_ARGUMENT has.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from fraudshared.card_numbers import contains_card_number, may_hold_card_number
from fraudshared.validation import Shape, routes
from services.ingest.domain.errors import InvalidTransaction

CARD_NUMBER_RULE = "id.no_card_number"
FUTURE_SKEW_RULE = "timestamp.max_future_skew"
PAN_FIELDS = frozenset({"pan"})
TIMESTAMP = "google.protobuf.Timestamp"
_TIMESTAMPS = frozenset({TIMESTAMP})


def _strings(message: Message, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every string value set in ``message`` (nested messages, repeated fields and map keys included)."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(key, str):
                    yield path, key
                if isinstance(item, str):
                    yield f'{path}["{key}"]', item
                elif isinstance(item, Message):
                    yield from _strings(item, f'{path}["{key}"].')
        elif field.is_repeated:
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield f"{path}[{index}]", item
                elif isinstance(item, Message):
                    yield from _strings(item, f"{path}[{index}].")
        elif isinstance(value, str):
            yield path, value
        elif isinstance(value, Message):
            yield from _strings(value, path + ".")


@functools.cache
def _holds_strings(descriptor: Descriptor) -> bool:
    """Whether a message of this type can hold a string at any depth (Money can, Timestamp cannot)."""
    seen, pending = {descriptor.full_name}, [descriptor]
    while pending:
        for field in pending.pop().fields:
            if field.type == FieldDescriptor.TYPE_STRING:
                return True
            child = field.message_type
            if child is not None and child.full_name not in seen:
                seen.add(child.full_name)
                pending.append(child)
    return False


@functools.cache
def _string_routes(descriptor: Descriptor) -> tuple[tuple[str, Shape, bool], ...]:
    """(name, shape, is a string field) of each field of ``descriptor`` that is or may hold a string.

    Cached per type: the fast path reads only these fields, and no descriptor per request.
    """
    found = []
    for field in descriptor.fields:
        shape = Shape.REPEATED if field.is_repeated else Shape.SINGULAR
        if field.type == FieldDescriptor.TYPE_STRING:
            found.append((field.name, shape, True))
        elif field.message_type is not None and _holds_strings(field.message_type):
            found.append((field.name, Shape.MAP if field.message_type.GetOptions().map_entry else shape, False))
    return tuple(found)


def _found_in(item: object) -> bool:
    if isinstance(item, str):
        return may_hold_card_number(item)
    return isinstance(item, Message) and _has_candidate(item)


def _has_candidate(message: Message, skip: frozenset[str] = frozenset()) -> bool:
    """Whether any string in ``message`` (top-level fields in ``skip`` aside) could hold a card number.

    The fast path of `card_number_violations`: no paths are built, and most requests stop here.
    """
    for name, shape, is_string in _string_routes(message.DESCRIPTOR):
        if name in skip:
            continue
        if shape is Shape.SINGULAR:
            if is_string:
                found = may_hold_card_number(getattr(message, name))
            else:
                found = message.HasField(name) and _has_candidate(getattr(message, name))
        elif shape is Shape.REPEATED:
            found = any(map(_found_in, getattr(message, name)))
        else:
            entries = getattr(message, name)
            found = any(map(_found_in, entries.keys())) or any(map(_found_in, entries.values()))
        if found:
            return True
    return False


def card_number_violations(request: Message, pan_fields: frozenset[str] = PAN_FIELDS) -> list[InvalidTransaction]:
    """One violation per string field (other than the PAN itself) that holds a card number."""
    if not _has_candidate(request, pan_fields):
        return []
    return [
        InvalidTransaction(path, "must not contain a card number (a Luhn-valid run of 13-19 digits)", CARD_NUMBER_RULE)
        for path, text in _strings(request)
        if path not in pan_fields and contains_card_number(text)
    ]


def _timestamps(message: Message, prefix: str = "") -> Iterator[tuple[str, Message]]:
    for route in routes(message.DESCRIPTOR, _TIMESTAMPS):
        if route.shape is not Shape.SINGULAR or not message.HasField(route.name):
            continue  # no request of ours has repeated Timestamps; the proto bounds cover them anyway
        path, value = prefix + route.name, getattr(message, route.name)
        if route.target:
            yield path, value
        else:
            yield from _timestamps(value, path + ".")


def future_skew_violations(request: Message, now_s: float, max_future_skew_s: float) -> list[InvalidTransaction]:
    """One violation per Timestamp in ``request`` later than ``now_s + max_future_skew_s`` (epoch seconds)."""
    latest = now_s + max_future_skew_s
    return [
        InvalidTransaction(path, f"must not be more than {max_future_skew_s:g} s in the future", FUTURE_SKEW_RULE)
        for path, stamp in _timestamps(request)
        if stamp.seconds + stamp.nanos / 1e9 > latest
    ]


def request_violations(request: Message, now_s: float, max_future_skew_s: float) -> list[InvalidTransaction]:
    """Every ingest-only rule ``request`` breaks (empty when it may go on to the use case)."""
    return card_number_violations(request) + future_skew_violations(request, now_s, max_future_skew_s)
