"""Phone numbers: strict E.164 parsing and the number types a code may be sent to."""

from __future__ import annotations

import re

import msgspec
import phonenumbers
from phonenumbers import PhoneNumberType

from otp_service.errors import InvalidPhoneNumber, UnsupportedNumberType

_E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)

_ALWAYS_REFUSED = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate",
    PhoneNumberType.SHARED_COST: "shared-cost",
}


class PhoneNumber(msgspec.Struct, frozen=True):
    """A valid E.164 number with its ISO 3166 region, calling code and libphonenumber's type."""

    e164: str
    country: str
    number_type: int
    calling_code: int


def _parse(raw: str) -> phonenumbers.PhoneNumber:
    """Read an E.164-shaped ``raw`` with libphonenumber; validity is the caller's rule.

    Raises:
        InvalidPhoneNumber: not E.164-shaped, or unparseable.
    """
    if not _E164.fullmatch(raw):
        raise InvalidPhoneNumber(
            "phone_number must be E.164: '+', the country code and the number, digits only"
        )
    try:
        return phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"phone_number cannot be parsed: {exc}") from exc


def parse_e164(raw: str) -> PhoneNumber:
    """Parse a number that must already be in E.164 form and valid by libphonenumber.

    Raises:
        InvalidPhoneNumber: with a ``detail`` that says what is wrong.
    """
    parsed = _parse(raw)
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("phone_number is not a valid number for its country code")
    region = phonenumbers.region_code_for_number(parsed)
    if region is None or len(region) != 2:  # noqa: PLR2004  (non-geographic "001" numbers)
        raise InvalidPhoneNumber("phone_number belongs to no country")
    return PhoneNumber(
        e164=raw,
        country=region,
        number_type=phonenumbers.number_type(parsed),
        calling_code=int(parsed.country_code or 0),
    )


def parse_fictional(raw: str) -> PhoneNumber:
    """Parse an E.164-shaped number that need not exist: its country is its calling code's.

    A tenant's sandbox numbers may be fictional (+1 555 01XX, which libphonenumber calls
    invalid): nothing is ever sent to them, yet limits, stats and the fraud guard need a
    country, taken from the calling code's main region (US for +1).

    Raises:
        InvalidPhoneNumber: not E.164-shaped, or a calling code of no country.
    """
    parsed = _parse(raw)
    calling_code = int(parsed.country_code or 0)
    region = phonenumbers.region_code_for_country_code(calling_code)
    if len(region) != 2 or region == phonenumbers.UNKNOWN_REGION:  # noqa: PLR2004  ("001")
        raise InvalidPhoneNumber("phone_number belongs to no country")
    return PhoneNumber(
        e164=raw,
        country=region,
        number_type=PhoneNumberType.UNKNOWN,
        calling_code=calling_code,
    )


def valid_e164(raw: str) -> str | None:
    """Return ``raw`` when ``parse_e164`` accepts it, else ``None`` (for lookups, not input)."""
    try:
        return parse_e164(raw).e164
    except InvalidPhoneNumber:
        return None


def check_number_type(number: PhoneNumber, *, reject_landlines: bool) -> None:
    """Refuse numbers that cannot or must not receive a code.

    Premium-rate and shared-cost numbers are refused always: sending to them is the
    SMS-pumping fraud pattern. Fixed-line numbers are refused when the tenant asks; numbers
    libphonenumber cannot tell apart (``FIXED_LINE_OR_MOBILE``) are let through.

    Raises:
        UnsupportedNumberType: naming the type.
    """
    refused = _ALWAYS_REFUSED.get(number.number_type)
    if refused is not None:
        raise UnsupportedNumberType(f"{refused} numbers cannot receive codes")
    if reject_landlines and number.number_type == PhoneNumberType.FIXED_LINE:
        raise UnsupportedNumberType("fixed-line numbers cannot receive SMS codes")


def mask(e164: str) -> str:
    """Mask a number for logs: keep the first eight characters, star the rest."""
    return e164[:8] + "*" * max(len(e164) - 8, 0)
