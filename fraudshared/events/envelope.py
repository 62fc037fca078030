"""The one event envelope: CloudEvents 1.0 attributes around a serialized protobuf payload.

On NATS the envelope travels in CloudEvents *binary content mode* as the NATS protocol binding defines it:
every attribute is a header named ``ce-<attribute>`` (``datacontenttype`` included), values percent-encoded
(space, ``"``, ``%`` and anything outside printable ASCII), and the message body is the protobuf bytes.
See docs/events.md for the header table and the hash definition.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, unquote

from google.protobuf.message import Message

if TYPE_CHECKING:
    from cloudevents.core.v1.event import CloudEvent

SPECVERSION = "1.0"
CONTENT_TYPE_PROTOBUF = "application/protobuf"
HEADER_PREFIX = "ce-"
HASH_PREAMBLE = b"fraud-envelope-v1\n"
RAW_PREAMBLE = b"fraud-raw-message-v1\n"
# Attribute order of the canonical encoding (sha256) and of the headers: required first, then the rest.
ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "schemaversion",
    "traceparent",
)
_REQUIRED = frozenset(ATTRIBUTES) - {"traceparent"}
# Printable ASCII minus space, '"' and '%': left as is; quote() percent-encodes everything else as UTF-8.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_SAFE_RE = re.compile(r"[\x21\x23\x24\x26-\x7e]*")
_TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_ID_PART_RE = re.compile(r"[\x21-\x7e]+")
_MAX_SCHEMA_VERSION = 2**32 - 1  # the payloads' schema_version is a uint32
M = TypeVar("M", bound=Message)


class EnvelopeError(ValueError):
    """An envelope is malformed (missing or invalid attribute, wrong payload type)."""


class UnexpectedType(EnvelopeError):
    """The envelope is readable, but its type is not the one (or one of those) the reader takes."""


def _encode(value: str) -> str:
    return value if _SAFE_RE.fullmatch(value) else quote(value, safe=_SAFE)


def _decode(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':  # RFC 7230 quoted-string from older producers
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"header value is not valid percent-encoded UTF-8: {value!r}") from exc


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits and ``Z``: the one canonical time string.

    The year always has four digits (``0001``..``9999``): ``strftime("%Y")`` does not pad it on Linux, and
    ``1-01-01T...`` is not RFC 3339, so our own reader refused it (issue 12).
    """
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _utf8_encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def event_id(kind: str, business_id: str) -> str:
    """Derives an event id from a business id, e.g. ``event_id("TransactionReceived", "tx-123")``.

    The id is also the ``Nats-Msg-Id`` header, so a retried publish of the same business fact within the
    stream's duplicate window is stored once.

    Args:
        kind: Event kind, usually the message name (no ``:``).
        business_id: The business identifier (printable ASCII, no spaces); never a PAN.

    Returns:
        ``"<kind>:<business_id>"``.

    Raises:
        EnvelopeError: If either part is empty or not printable ASCII, or ``kind`` contains ``:``.
    """
    if not _ID_PART_RE.fullmatch(kind) or ":" in kind or not _ID_PART_RE.fullmatch(business_id):
        raise EnvelopeError(f"event id parts must be non-empty printable ASCII: {kind!r}, {business_id!r}")
    return f"{kind}:{business_id}"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One immutable event: CloudEvents attributes plus protobuf ``data``.

    Attributes:
        id: Event id, derived from the business id (`event_id`); also the NATS dedupe id.
        source: URI-reference of the producer, e.g. ``/fraud/ingest``.
        type: Protobuf full name of the payload message, e.g. ``fraud.tx.v1.TransactionReceived``.
        subject: What the event is about inside the source (a business id such as a card token).
        time: Business time of the event (timezone-aware; normalized to UTC, microsecond precision).
        data: Serialized protobuf payload.
        schema_version: Payload schema version (extension ``schemaversion``); see upcasting.
        dataschema: Protobuf full name of the payload schema.
        traceparent: W3C trace context of the producing span (extension ``traceparent``), if any.
        datacontenttype: Always ``application/protobuf`` for our events.
        specversion: CloudEvents spec version, ``1.0``.
    """

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    data: bytes
    schema_version: int
    dataschema: str
    traceparent: str | None = None
    datacontenttype: str = CONTENT_TYPE_PROTOBUF
    specversion: str = SPECVERSION

    def __post_init__(self) -> None:
        # Everything refused here is what to_nats could not write or from_nats could not read back equal.
        for name in ("id", "source", "type", "subject", "dataschema", "datacontenttype"):
            value = getattr(self, name)
            if not value:
                raise EnvelopeError(f"envelope attribute {name!r} must not be empty")
            if not value.isascii() and not _utf8_encodable(value):
                raise EnvelopeError(f"envelope attribute {name!r} is not encodable as UTF-8 (lone surrogate)")
        if not _ID_PART_RE.fullmatch(self.id):  # also the Nats-Msg-Id header, which is sent as is
            raise EnvelopeError("envelope id must be printable ASCII without spaces")
        if self.specversion != SPECVERSION:
            raise EnvelopeError(f"unsupported CloudEvents specversion {self.specversion!r}")
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise EnvelopeError("envelope time must be a timezone-aware datetime")
        try:
            object.__setattr__(self, "time", self.time.astimezone(UTC))  # one representation: UTC
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise EnvelopeError("envelope time is outside years 1..9999 in UTC") from None
        if isinstance(self.schema_version, bool) or not isinstance(self.schema_version, int):
            raise EnvelopeError("schemaversion must be an int")
        if not 1 <= self.schema_version <= _MAX_SCHEMA_VERSION:
            raise EnvelopeError(f"schemaversion must be 1..{_MAX_SCHEMA_VERSION}, got {self.schema_version}")
        if self.traceparent is not None and not _TRACEPARENT_RE.fullmatch(self.traceparent):
            raise EnvelopeError(f"traceparent is not W3C trace context: {self.traceparent!r}")

    def attributes(self) -> dict[str, str]:
        """Canonical string form of every present attribute, in `ATTRIBUTES` order (unencoded)."""
        values = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": format_time(self.time),
            "datacontenttype": self.datacontenttype,
            "dataschema": self.dataschema,
            "schemaversion": str(self.schema_version),
            "traceparent": self.traceparent,
        }
        return {name: value for name, value in values.items() if value is not None}

    def sha256(self) -> str:
        """Hex SHA-256 over the canonical encoding (docs/events.md, "Hashing").

        The preamble `HASH_PREAMBLE`, then one line ``name=value`` + LF per present attribute in `ATTRIBUTES`
        order with values percent-encoded exactly as in the headers (so no value contains a newline),
        then one LF, then the payload bytes. Header order, header-name case and transport headers
        (``Nats-Msg-Id``) do not affect it; any attribute or payload byte does.
        """
        digest = hashlib.sha256(HASH_PREAMBLE)
        for name, value in self.attributes().items():
            digest.update(f"{name}={_encode(value)}\n".encode("ascii"))
        digest.update(b"\n")
        digest.update(self.data)
        return digest.hexdigest()

    def to_cloudevent(self) -> CloudEvent:
        """The same event as a ``cloudevents`` SDK object (validated by it), e.g. to export over HTTP or Kafka."""
        from cloudevents.core.v1.event import CloudEvent  # only exporters need the SDK

        attributes: dict[str, object] = {**self.attributes(), "time": self.time, "schemaversion": self.schema_version}
        return CloudEvent(attributes, self.data)

    def payload(self, message_type: builtins.type[M]) -> M:
        """Parses ``data`` as ``message_type``; checks the type name first (upcast old versions before)."""
        if message_type.DESCRIPTOR.full_name != self.type:
            raise UnexpectedType(f"envelope type {self.type!r} is not {message_type.DESCRIPTOR.full_name!r}")
        message = message_type()
        message.ParseFromString(self.data)
        return message


def new_envelope(
    message: Message,
    *,
    source: str,
    subject: str,
    event_id: str,
    time: datetime,
    schema_version: int,
    traceparent: str | None = None,
) -> Envelope:
    """Wraps a protobuf message; ``type`` and ``dataschema`` are its descriptor's full name.

    The payload is serialized deterministically (stable map order) so equal messages hash equally.
    """
    full_name = message.DESCRIPTOR.full_name
    return Envelope(
        id=event_id,
        source=source,
        type=full_name,
        subject=subject,
        time=time,
        data=message.SerializeToString(deterministic=True),
        schema_version=schema_version,
        dataschema=full_name,
        traceparent=traceparent,
    )


def to_nats(envelope: Envelope) -> tuple[dict[str, str], bytes]:
    """Binary content mode: ``ce-*`` headers and the payload as body (``Nats-Msg-Id`` is the store's job)."""
    headers = {HEADER_PREFIX + name: _encode(value) for name, value in envelope.attributes().items()}
    return headers, envelope.data


def raw_message_hash(headers: Mapping[str, str] | None, body: bytes | None) -> bytes:
    """SHA-256 of ``fraud-raw-message-v1 LF``, ``name: value LF`` per header (lower-cased names, sorted), LF, body.

    The hash of a stored message that is not a readable envelope (docs/audit.md "What is hashed").
    """
    digest = hashlib.sha256(RAW_PREAMBLE)
    for name, value in sorted((k.lower(), v) for k, v in (headers or {}).items()):
        digest.update(f"{name}: {value}\n".encode("utf-8", "surrogateescape"))
    digest.update(b"\n")
    digest.update(body or b"")
    return digest.digest()


def to_nats_checked(envelope: Envelope) -> tuple[dict[str, str], bytes]:
    """`to_nats` for a writer: refuses an envelope whose headers `from_nats` would not read back equal.

    A writer must never store what its own readers refuse (issue 12: one such event stopped every reader of
    its stream). Only the time is re-parsed: every other attribute is held by `Envelope.__post_init__` to
    what percent-encoding restores exactly, which tests/unit/test_envelope.py checks property-based for any
    envelope that constructs. Cost measured: +1 us per append over `to_nats` (14 us); re-parsing every
    header would add 18 us, ~3 appends per decision (docs/events.md "Round trip").

    Raises:
        EnvelopeError: If the envelope cannot be written or its time does not parse back equal.
    """
    try:
        headers, body = to_nats(envelope)
        written = headers[HEADER_PREFIX + "time"]
        same = datetime.fromisoformat(written) == envelope.time and envelope.time.tzinfo is UTC
    except (ValueError, OverflowError, TypeError, AttributeError) as exc:
        raise EnvelopeError(f"envelope {envelope.id!r} cannot be written: {type(exc).__name__}") from None
    if not same:
        raise EnvelopeError(f"envelope {envelope.id!r}: time {written!r} would not read back equal")
    return headers, body


def from_nats(headers: Mapping[str, str] | None, body: bytes | None) -> Envelope:
    """Reads an envelope back from NATS headers (names case-insensitive) and body.

    Raises:
        EnvelopeError: On a structured-mode message, a missing, unknown or invalid ``ce-`` attribute.
    """
    attrs: dict[str, str] = {}
    for key, value in (headers or {}).items():
        lowered = key.lower()
        if lowered == "content-type" and value.lower().startswith("application/cloudevents"):
            raise EnvelopeError("structured-mode CloudEvents are not supported; expected binary mode")
        if lowered.startswith(HEADER_PREFIX):
            attrs[lowered[len(HEADER_PREFIX) :]] = _decode(value)
    unknown = set(attrs) - set(ATTRIBUTES)
    missing = _REQUIRED - set(attrs)
    if unknown or missing:
        raise EnvelopeError(f"bad envelope headers: missing {sorted(missing)}, unknown {sorted(unknown)}")
    try:
        moment = datetime.fromisoformat(attrs["time"])
        schema_version = int(attrs["schemaversion"])
    except ValueError as exc:  # also int()'s limit on digits
        raise EnvelopeError(f"bad time or schemaversion in envelope {attrs['id']!r}: {exc}") from exc
    return Envelope(
        id=attrs["id"],
        source=attrs["source"],
        type=attrs["type"],
        subject=attrs["subject"],
        time=moment,
        data=bytes(body or b""),
        schema_version=schema_version,
        dataschema=attrs["dataschema"],
        traceparent=attrs.get("traceparent"),
        datacontenttype=attrs["datacontenttype"],
        specversion=attrs["specversion"],
    )
