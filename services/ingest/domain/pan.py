"""PAN checks and tokenization at the edge. The PAN goes no further than ingest's callers of this module.

The token function itself (keyed HMAC-SHA256) and the Luhn check live in fraudshared.pan_token, shared with
`fraudctl data load`, so a card loaded from a user's file and the same card scored live get the same token.
"""

from __future__ import annotations

from dataclasses import dataclass

from fraudshared.pan_token import luhn_valid, tokenize_pan

__all__ = ["PanTokenizer", "luhn_valid", "mask"]


@dataclass(frozen=True)
class PanTokenizer:
    """Keyed HMAC tokenizer: `tokenize(pan)` -> "ct_<32 hex>"; the key never appears in reprs."""

    key: bytes
    key_version: int = 1

    def __repr__(self) -> str:
        return f"PanTokenizer(key=<redacted>, key_version={self.key_version})"

    def tokenize(self, pan: str) -> str:
        return tokenize_pan(self.key, pan)


def mask(pan: str) -> str:
    """Masked form for humans (first 6 and last 4 are the PCI maximum; we keep only the last 4)."""
    return f"****{pan[-4:]}" if len(pan) >= 4 else "****"
