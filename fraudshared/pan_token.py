"""The card token: a keyed HMAC-SHA256 of the PAN, shared by ingest and by loading a user's data set.

The same card always maps to the same token under one key version, nobody without the key can link a token
back to a card, and rotating the key (a new key version) yields new tokens without touching the log. The
key lives in the secrets port at ``pan-tokenization/hmac_key`` (hex); the PAN itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac

TOKEN_KEY_PATH, TOKEN_KEY_NAME = "pan-tokenization", "hmac_key"
TOKEN_PREFIX = "ct_"


def tokenize_pan(key: bytes, pan: str) -> str:
    """The card token of `pan`: "ct_" + the first 32 hex digits of HMAC-SHA256(key, pan)."""
    digest = hmac.new(key, pan.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{TOKEN_PREFIX}{digest[:32]}"


def luhn_valid(pan: str) -> bool:
    """Return True when `pan` is all digits and passes the Luhn (mod 10) check."""
    if not pan.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(pan)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0
