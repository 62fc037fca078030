"""Card numbers where they must not be: a Luhn-valid run of 13-19 digits, plain or grouped like a printed card.

A PAN used as an id, a label source or an audit argument would be stored in the log in clear. Ingest checks
every string field of its requests but ``pan`` (services/ingest/domain/request_rules.py), governance the text
fields of a recorded audit run; both use this one rule. Grouped means digit groups joined by single spaces or
hyphens in the printed layouts (``4111-1111-1111-1111``, ``3782 822463 10005``).
"""

from __future__ import annotations

import re

from fraudshared.pan_token import luhn_valid

CARD_LENGTHS = range(13, 20)
# Digit groups joined by single spaces or hyphens, the way card numbers are printed.
_DIGIT_GROUPS = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_SEPARATOR = re.compile(r"[ -]")
# What any card number `contains_card_number` finds needs: at the start of a run of digits, 13 digits in a row
# or a first group of exactly 4 digits, a separator and 4 more digits (4-4-..., 4-6-x, 4-9+). An id such as
# run-20260101-00005513 (a run of digits and hyphens, no card) has neither. Fixed widths: linear, no
# backtracking. `_ANYWHERE` says the same without "at the start of a run": a weaker test, but re skips to
# its leading character class fast, while a leading lookbehind is tried at every position (~3x slower).
_ANYWHERE = re.compile(r"[0-9]{4}(?:[0-9]{9}|[ -][0-9]{4})")
_CANDIDATE = re.compile(r"(?<![0-9])[0-9]{4}(?:[0-9]{9}|[ -][0-9]{4})")


def _printed_like_a_card(groups: list[str]) -> bool:
    """4-4-4-4(-3) and 4-6-5 / 4-6-4 (Amex, Diners): every group but the last of 4 digits, or 4-6-x."""
    lengths = [len(group) for group in groups]
    return lengths[0] == 4 and (all(n == 4 for n in lengths[1:-1]) or lengths[1:-1] == [6])


def may_hold_card_number(text: str) -> bool:
    """False when ``text`` cannot hold a card number (the common case, a fraction of a microsecond)."""
    return _ANYWHERE.search(text) is not None and _CANDIDATE.search(text) is not None


def contains_card_number(text: str) -> bool:
    """True when ``text`` holds a Luhn-valid run of 13-19 digits, plain or grouped like a printed card."""
    return may_hold_card_number(text) and scan_for_card_number(text)


def scan_for_card_number(text: str) -> bool:
    """`contains_card_number` without the quick test first (which must never say no where this says yes)."""
    for match in _DIGIT_GROUPS.finditer(text):
        groups = _SEPARATOR.split(match.group())
        if any(len(group) in CARD_LENGTHS and luhn_valid(group) for group in groups):
            return True
        joined = "".join(groups)
        if len(groups) > 1 and len(joined) in CARD_LENGTHS and _printed_like_a_card(groups) and luhn_valid(joined):
            return True
    return False
