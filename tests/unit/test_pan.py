import pytest

from services.ingest.domain.pan import PanTokenizer, luhn_valid, mask


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
