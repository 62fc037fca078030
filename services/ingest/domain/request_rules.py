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

import re
from collections.abc import Iterator

from google.protobuf.message import Message

from fraudshared.pan_token import luhn_valid
from services.ingest.domain.errors import InvalidTransaction

CARD_NUMBER_RULE = "id.no_card_number"
FUTURE_SKEW_RULE = "timestamp.max_future_skew"
PAN_FIELDS = frozenset({"pan"})
CARD_LENGTHS = range(13, 20)
# Digit groups joined by single spaces or hyphens, the way card numbers are printed.
_DIGIT_GROUPS = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_SEPARATOR = re.compile(r"[ -]")


def _printed_like_a_card(groups: list[str]) -> bool:
    """4-4-4-4(-3) and 4-6-5 / 4-6-4 (Amex, Diners): every group but the last of 4 digits, or 4-6-x."""
    lengths = [len(group) for group in groups]
    return lengths[0] == 4 and (all(n == 4 for n in lengths[1:-1]) or lengths[1:-1] == [6])


def contains_card_number(text: str) -> bool:
    """True when ``text`` holds a Luhn-valid run of 13-19 digits, plain or grouped like a printed card."""
    for match in _DIGIT_GROUPS.finditer(text):
        groups = _SEPARATOR.split(match.group())
        if any(len(group) in CARD_LENGTHS and luhn_valid(group) for group in groups):
            return True
        joined = "".join(groups)
        if len(groups) > 1 and len(joined) in CARD_LENGTHS and _printed_like_a_card(groups) and luhn_valid(joined):
            return True
    return False


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


def card_number_violations(request: Message, pan_fields: frozenset[str] = PAN_FIELDS) -> list[InvalidTransaction]:
    """One violation per string field (other than the PAN itself) that holds a card number."""
    return [
        InvalidTransaction(path, "must not contain a card number (a Luhn-valid run of 13-19 digits)", CARD_NUMBER_RULE)
        for path, text in _strings(request)
        if path not in pan_fields and contains_card_number(text)
    ]


def _timestamps(message: Message, prefix: str = "") -> Iterator[tuple[str, Message]]:
    for field, value in message.ListFields():
        if field.message_type is None or field.is_repeated:
            continue  # no request of ours has repeated Timestamps; the proto bounds cover them anyway
        path = f"{prefix}{field.name}"
        if field.message_type.full_name == "google.protobuf.Timestamp":
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
