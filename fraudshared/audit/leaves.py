"""What the audit trail hashes for one stored message: its *event hash*, the Merkle leaf (docs/audit.md).

For a valid envelope the event hash is the 32 bytes of `Envelope.sha256` computed on the message *as stored*
(before any upcasting): it covers every CloudEvents attribute and every payload byte. A stored message that
is not a valid envelope still gets a hash, over its raw headers and body, so the notary never stalls on one
and any later change to it is still detected.
"""

from __future__ import annotations

from collections.abc import Mapping

from fraudshared.events.envelope import RAW_PREAMBLE, EnvelopeError, from_nats, raw_message_hash

__all__ = ["RAW_PREAMBLE", "UnreadableHash", "event_hash", "raw_message_hash"]


class UnreadableHash(bytes):
    """The event hash of a message that is not a readable envelope (the raw hash); equal to its bytes.

    A verifier that receives one knows the event is sealed all the same but no reader can use it, and reports
    it by stream and sequence (``fraudctl audit verify``) without another read of the log.
    """


def event_hash(headers: Mapping[str, str] | None, body: bytes | None) -> bytes:
    """The event hash (32 bytes) of a stored message: the envelope's canonical SHA-256, else the raw hash.

    The raw hash comes as `UnreadableHash`, so a caller can tell the two apart.
    """
    try:
        return bytes.fromhex(from_nats(headers, body).sha256())
    except (EnvelopeError, ValueError):
        return UnreadableHash(raw_message_hash(headers, body))
