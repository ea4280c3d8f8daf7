import pytest

from helpers import load_contract
from services.phones import InvalidPhone, mask_phone, normalize_phone

ONE_CONTACT = ["+6281234567890", "6281234567890", "081234567890", "+62 812-3456-7890",
               "0062 812 3456 7890", "(0812) 3456.7890", " +62 812 3456 7890 "]


@pytest.mark.parametrize("raw", ONE_CONTACT)
def test_every_form_is_one_contact(raw):
    assert normalize_phone(raw) == "+6281234567890"


@pytest.mark.parametrize("raw, region, expected", [
    ("+1 555 123 4567", "ID", "+15551234567"),
    ("15551234567", "ID", "+15551234567"),
    ("07911 123456", "GB", "+447911123456"),
    ("447911123456", "ID", "+447911123456"),
])
def test_international_and_regional(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["", "   ", "+", "abc", "0812abc34567", "0812#3456", "123",
                                 "1" * 30, "+62 812 3456 7890 ext 1", "😀", "+62\x00812", "9" * 70])
def test_invalid(raw):
    with pytest.raises(InvalidPhone):
        normalize_phone(raw)


def test_mask_keeps_country_code_three_first_and_three_last():
    assert mask_phone("+6281234567890") == "+62812****890"
    assert mask_phone("+15551234567") == "+1555****567"
    assert mask_phone(None) == "-"


PHONE_VECTORS = load_contract("phone_vectors.json")["vectors"]


@pytest.mark.parametrize("vector", PHONE_VECTORS, ids=[f"{v['input']!r}-{v['region']}" for v in PHONE_VECTORS])
def test_shared_phone_vectors(vector):
    """contract/phone_vectors.json: phonenumbers is the reference, convex/ runs the same file."""
    if vector["e164"] is None:
        with pytest.raises(InvalidPhone):
            normalize_phone(vector["input"], vector["region"])
    else:
        assert normalize_phone(vector["input"], vector["region"]) == vector["e164"]
