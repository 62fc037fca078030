import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraud.governance.v1 import governance_service_pb2 as governance
from fraudshared.card_numbers import contains_card_number, scan_for_card_number
from services.ingest.domain.pan import PanTokenizer, luhn_valid, mask
from services.ingest.domain.request_rules import card_number_violations


@pytest.mark.parametrize("pan", ["4111111111111111", "5555555555554444", "378282246310005", "79927398713"])
def test_luhn_accepts_valid_numbers(pan: str) -> None:
    assert luhn_valid(pan)


@pytest.mark.parametrize("pan", ["4111111111111112", "1234567812345678", "", "41111111111a1111"])
def test_luhn_rejects_invalid_numbers(pan: str) -> None:
    assert not luhn_valid(pan)


def test_token_is_keyed_stable_and_hides_the_pan() -> None:
    pan = "4111111111111111"
    a, b = PanTokenizer(b"k" * 32), PanTokenizer(b"other-key" * 4)
    assert a.tokenize(pan) == a.tokenize(pan)
    assert a.tokenize(pan) != b.tokenize(pan)
    assert a.tokenize(pan).startswith("ct_") and len(a.tokenize(pan)) == 35
    assert pan not in a.tokenize(pan) and pan[-4:] not in a.tokenize(pan)
    assert "k" * 32 not in repr(a)


def test_mask_keeps_only_last_four() -> None:
    assert mask("4111111111111111") == "****1111"


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",  # plain, 16 digits
        "tx-4111111111111111-a",  # inside an id
        "4111-1111-1111-1111",  # printed in groups of four
        "4111 1111 1111 1111",
        "3782 822463 10005",  # Amex, 4-6-5
        "0004111111111111111",  # leading zeros keep the Luhn sum: still a card number
    ],
)
def test_card_numbers_are_found_plain_or_printed(text: str) -> None:
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "tx-1",
        "4111111111111112",  # fails Luhn
        "411111111111",  # 12 digits: too short for a card
        "41111111111111111111",  # 20 digits: longer than any card
        "2026-11-01-4111",  # a date and a counter are not grouped like a card
        "T-4111-1111",
    ],
)
def test_other_ids_are_not_card_numbers(text: str) -> None:
    assert not contains_card_number(text)


# Digit groups of any length (Luhn-valid card numbers among them) joined by separators, letters or nothing.
_GROUPS = st.text("0123456789", min_size=1, max_size=20) | st.sampled_from(
    ["4111111111111111", "4111", "378282246310005"]
)
_JOINS = st.sampled_from(["", " ", "-", "  ", "--", " -", "x", "tx-", "-a"])


@given(st.lists(st.tuples(_JOINS, _GROUPS), max_size=6).map(lambda parts: "".join(j + g for j, g in parts)))
def test_the_quick_test_never_hides_a_card_number(text: str) -> None:
    assert contains_card_number(text) == scan_for_card_number(text)


def test_a_map_of_numbers_is_scanned_by_its_keys() -> None:
    request = governance.RegisterModelRequest(metrics={"auc": 0.91, "4111111111111111": 0.5})
    assert [v.field for v in card_number_violations(request)] == ["metrics"]
    assert card_number_violations(governance.RegisterModelRequest(metrics={"auc": 0.91})) == []
