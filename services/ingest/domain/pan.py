"""PAN checks and tokenization. The PAN never leaves this module's callers in ingest.

The card token is a keyed HMAC-SHA256 of the PAN (key from the secrets port), so the same card always maps
to the same token, nobody without the key can link a token back to a card, and rotating the key (a new
key version) yields new tokens without touching the log.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


def luhn_valid(pan: str) -> bool:
    """Return True when the digits pass the Luhn (mod 10) check."""
    if not pan.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(pan)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


@dataclass(frozen=True)
class PanTokenizer:
    """Keyed HMAC tokenizer: `tokenize(pan)` -> "ct_<32 hex>"; the key never appears in reprs."""

    key: bytes
    key_version: int = 1

    def __repr__(self) -> str:
        return f"PanTokenizer(key=<redacted>, key_version={self.key_version})"

    def tokenize(self, pan: str) -> str:
        digest = hmac.new(self.key, pan.encode("ascii"), hashlib.sha256).hexdigest()
        return f"ct_{digest[:32]}"


def mask(pan: str) -> str:
    """Masked form for humans (first 6 and last 4 are the PCI maximum; we keep only the last 4)."""
    return f"****{pan[-4:]}" if len(pan) >= 4 else "****"
