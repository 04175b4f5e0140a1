"""Unit tests of the pure core and of settings loading: no Redis, no HTTP."""

from __future__ import annotations

import base64
import os
import random
import re
import secrets
from collections import Counter
from typing import Any

import msgspec
import pytest

from otp_service.core import codes, phone, policy, senders, sms
from otp_service.core.hashing import Argon2Parameters, CodeHasher
from otp_service.core.ids import new_id
from otp_service.core.model import TenantSettings, Verification, VerificationStatus
from otp_service.core.senders import settings_problems
from otp_service.core.urls import event_url_problem
from otp_service.errors import InvalidPhoneNumber, UnsupportedNumberType
from otp_service.settings import Secret, SettingsError, load_settings

PROFILE = "6f1f3b1e-2a4c-4e0e-9c55-000000000001"
CHEAP = Argon2Parameters(time_cost=1, memory_kib=1024)
PEPPER = b"p" * 32


# --- core.codes ----------------------------------------------------------------------------


class _Sevens(random.Random):
    """A "random" source that always draws 7."""

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:  # noqa: ARG002
        return 7


@pytest.mark.parametrize("length", [4, 6, 10])
def test_a_code_has_the_requested_number_of_ascii_digits(length: int) -> None:
    """A generated code is exactly as long as asked and made of ASCII digits only."""
    code = codes.generate_code(secrets.SystemRandom(), length)
    assert len(code) == length
    assert re.fullmatch(r"[0-9]+", code, re.ASCII)


def test_codes_come_from_the_injected_random_source() -> None:
    """The code is drawn from the random source the service is given, nothing else."""
    assert codes.generate_code(_Sevens(), 6) == "777777"


def test_a_seeded_source_gives_reproducible_codes() -> None:
    """Two sources with the same seed give the same codes; another seed gives others."""
    first = [codes.generate_code(random.Random(1234), 8) for _ in range(3)]  # noqa: S311
    again = [codes.generate_code(random.Random(1234), 8) for _ in range(3)]  # noqa: S311
    other = random.Random(4321)  # noqa: S311
    assert first == again
    assert [codes.generate_code(other, 8) for _ in range(3)] != first


def test_code_digits_are_roughly_uniform() -> None:
    """Over many codes every digit appears about as often as every other one."""
    rng = random.Random(99)  # noqa: S311
    counts = Counter("".join(codes.generate_code(rng, 10) for _ in range(3000)))
    assert set(counts) == set("0123456789")
    # 30 000 digits: 3000 expected per digit, standard deviation ~52.
    assert all(2700 < count < 3300 for count in counts.values()), counts
    first_digits = Counter(codes.generate_code(rng, 6)[0] for _ in range(5000))
    assert set(first_digits) == set("0123456789")


@pytest.mark.parametrize(
    ("code", "length", "expected"),
    [
        ("123456", 6, True),
        ("000000", 6, True),
        ("1234", 4, True),
        ("12345", 6, False),
        ("1234567", 6, False),
        ("", 6, False),
        ("12 456", 6, False),
        (" 12345", 6, False),
        ("12345\n", 6, False),
        ("+12345", 6, False),
        ("-12345", 6, False),
        ("12a456", 6, False),
        ("١٢٣٤٥٦", 6, False),  # Arabic-Indic digits
        ("１２３４５６", 6, False),  # full-width digits
        ("१२३४५६", 6, False),  # Devanagari digits
    ],
)
def test_only_exactly_the_right_number_of_ascii_digits_is_well_formed(
    code: str, length: int, expected: bool
) -> None:
    """A submitted code is well formed only when it is exactly N ASCII digits."""
    assert codes.is_well_formed(code, length) is expected


# --- core.ids ------------------------------------------------------------------------------


def test_ids_carry_their_prefix_and_26_base32_characters() -> None:
    """An id is ``<prefix>_`` and 26 lower-case base32 characters (128 bits)."""
    ident = new_id("ver", secrets.SystemRandom())
    assert re.fullmatch(r"ver_[a-z2-7]{26}", ident), ident


def test_ids_are_distinct() -> None:
    """Thousands of ids from the service's random source never repeat."""
    rng = secrets.SystemRandom()
    ids = {new_id("key", rng) for _ in range(5000)}
    assert len(ids) == 5000


def test_ids_come_from_the_injected_random_source() -> None:
    """Seeded sources give the same id; different seeds give different ids."""
    assert new_id("ten", random.Random(5)) == new_id("ten", random.Random(5))  # noqa: S311
    assert new_id("ten", random.Random(5)) != new_id("ten", random.Random(6))  # noqa: S311


# --- core.phone ----------------------------------------------------------------------------


def test_a_valid_gb_mobile_parses_with_its_country() -> None:
    """A valid E.164 GB mobile number is accepted and attributed to GB."""
    number = phone.parse_e164("+447400123456")
    assert number.e164 == "+447400123456"
    assert number.country == "GB"


def test_a_valid_us_number_parses_as_us() -> None:
    """A +1 number is attributed to its region, not just its country code."""
    assert phone.parse_e164("+14155552671").country == "US"


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("447400123456", "E.164"),  # no '+'
        ("+44 7400 123456", "E.164"),  # spaces
        ("+44-7400-123456", "E.164"),
        ("+44740012345a", "E.164"),  # letters
        ("+4474", "E.164"),  # too short
        ("+4474001234567890", "E.164"),  # too long
        ("+０４４７４００１２３４５６", "E.164"),  # full-width digits
        ("+447700900123", "not a valid number"),  # Ofcom drama range: invalid by metadata
        ("+80012345678", "no country"),  # non-geographic (international freephone)
    ],
)
def test_anything_but_a_valid_geographic_e164_number_is_refused(raw: str, hint: str) -> None:
    """Malformed, invalid and non-geographic numbers are refused with a detail saying why."""
    with pytest.raises(InvalidPhoneNumber) as caught:
        phone.parse_e164(raw)
    assert hint in caught.value.detail


def test_a_landline_is_refused_only_when_the_tenant_rejects_landlines() -> None:
    """A GB fixed-line number is refused with reject_landlines and accepted without it."""
    landline = phone.parse_e164("+442071838750")
    with pytest.raises(UnsupportedNumberType) as caught:
        phone.check_number_type(landline, reject_landlines=True)
    assert "fixed-line" in caught.value.detail
    phone.check_number_type(landline, reject_landlines=False)


@pytest.mark.parametrize("reject_landlines", [True, False])
def test_a_premium_rate_number_is_always_refused(reject_landlines: bool) -> None:
    """Premium-rate numbers never receive codes, whatever the tenant's landline policy."""
    premium = phone.parse_e164("+19005550100")
    with pytest.raises(UnsupportedNumberType) as caught:
        phone.check_number_type(premium, reject_landlines=reject_landlines)
    assert "premium" in caught.value.detail


def test_numbers_that_may_be_mobile_are_let_through() -> None:
    """A US fixed-line-or-mobile number and a GB mobile pass even with reject_landlines."""
    phone.check_number_type(phone.parse_e164("+14155552671"), reject_landlines=True)
    phone.check_number_type(phone.parse_e164("+447400123456"), reject_landlines=True)


def test_mask_hides_the_end_of_a_number() -> None:
    """A masked number keeps its first eight characters and stars the rest."""
    assert phone.mask("+447400123456") == "+4474001*****"
    assert "123456" not in phone.mask("+447400123456")
    assert phone.mask("+1234") == "+1234"


# --- core.senders --------------------------------------------------------------------------


def tenant_settings(**fields: Any) -> TenantSettings:
    """Tenant settings as the admin API would decode them."""
    return msgspec.convert(fields, TenantSettings)


def problems_of(chain: list[dict[str, str]], country: str = "GB", **fields: Any) -> list[str]:
    """The problems ``settings_problems`` finds in one country's chain, as ``field: msg``."""
    fields.setdefault("messaging_profile_id", PROFILE)
    found = senders.settings_problems(tenant_settings(senders={country: chain}, **fields))
    return [f"{entry['field']}: {entry['message']}" for entry in found]


def test_a_country_uses_its_own_chain_else_the_default_else_none() -> None:
    """Senders are picked per destination country, falling back to ``default``."""
    gb = [{"type": "alphanumeric_sender_id", "from": "ACME"}]
    default = [{"type": "long_code", "from": "+13125550100"}]
    settings = tenant_settings(messaging_profile_id=PROFILE, senders={"GB": gb, "default": default})
    assert [s.from_ for s in senders.chain_for(settings, "GB")] == ["ACME"]
    assert [s.from_ for s in senders.chain_for(settings, "FR")] == ["+13125550100"]
    only_gb = tenant_settings(messaging_profile_id=PROFILE, senders={"GB": gb})
    assert senders.chain_for(only_gb, "FR") == []


def test_allowed_countries_admit_listed_countries_or_all_with_star() -> None:
    """``*`` admits every country; a list admits exactly its members."""
    assert senders.country_allowed(tenant_settings(), "JP")
    listed = tenant_settings(allowed_countries=["GB", "FR"])
    assert senders.country_allowed(listed, "FR")
    assert not senders.country_allowed(listed, "US")


def test_the_api_md_example_settings_are_valid() -> None:
    """The example settings of API.md pass every sender rule."""
    settings = tenant_settings(
        messaging_profile_id=PROFILE,
        senders={
            "default": [{"type": "long_code", "from": "+13125550100"}],
            "GB": [
                {"type": "alphanumeric_sender_id", "from": "ACME"},
                {"type": "long_code", "from": "+447400123000"},
            ],
            "US": [{"type": "short_code", "from": "12345"}, {"type": "number_pool"}],
        },
    )
    assert senders.settings_problems(settings) == []


@pytest.mark.parametrize("source", ["ACM", "ACME", "Acme 2", "ABCDEFGHIJK", "1ACME"])
def test_well_formed_alphanumeric_senders_are_accepted(source: str) -> None:
    """Alphanumeric sender IDs of 3 to 11 letters, digits or spaces are valid."""
    assert problems_of([{"type": "alphanumeric_sender_id", "from": source}]) == []


@pytest.mark.parametrize("source", ["AB", "ABCDEFGHIJKL", "12345", "AC-ME", "ACMÉ", ""])
def test_malformed_alphanumeric_senders_are_refused(source: str) -> None:
    """Alphanumeric IDs that are too short, too long, all digits or odd characters are refused."""
    assert problems_of([{"type": "alphanumeric_sender_id", "from": source}]) == [
        (
            "settings.senders.GB[0]: an alphanumeric sender ID is 3 to 11 letters, digits or"
            " spaces, not all digits"
        )
    ]


@pytest.mark.parametrize("country", ["US", "CA", "PR"])
def test_alphanumeric_senders_are_refused_for_north_america(country: str) -> None:
    """An alphanumeric sender cannot be configured for the US, Canada or Puerto Rico."""
    found = problems_of([{"type": "alphanumeric_sender_id", "from": "ACME"}], country)
    assert found == [
        f"settings.senders.{country}[0]: alphanumeric sender IDs cannot send to {country}"
    ]


@pytest.mark.parametrize(
    ("source", "valid"),
    [("12345", True), ("123456", True), ("1234", False), ("1234567", False), ("12a45", False)],
)
def test_short_codes_are_five_or_six_digits(source: str, valid: bool) -> None:
    """A short code is accepted only as 5 or 6 digits."""
    found = problems_of([{"type": "short_code", "from": source}], "US")
    assert found == ([] if valid else ["settings.senders.US[0]: a short code is 5 or 6 digits"])


@pytest.mark.parametrize(
    ("source", "valid"),
    [
        ("+13125550100", True),
        ("+447400123000", True),
        ("13125550100", False),
        ("+1312555", False),
        ("+447700900123", False),
    ],
)
def test_long_codes_are_valid_e164_numbers(source: str, valid: bool) -> None:
    """A long code is accepted only as a valid E.164 number."""
    found = problems_of([{"type": "long_code", "from": source}])
    expected = [] if valid else ["settings.senders.GB[0]: a long code is a valid E.164 number"]
    assert found == expected


@pytest.mark.parametrize(
    "source",
    ["+44 7400 123000", "+1 (312) 555-0100", "+1312FLOWERS", "+１３１２５５５０１００"],
)
def test_long_codes_in_display_format_are_refused(source: str) -> None:
    """A long code written with spaces, punctuation or letters is not E.164 and is refused."""
    assert problems_of([{"type": "long_code", "from": source}]) == [
        "settings.senders.GB[0]: a long code is a valid E.164 number"
    ]


def test_a_long_code_without_from_is_refused() -> None:
    """A long code sender must say which number it sends from."""
    assert problems_of([{"type": "long_code"}]) == [
        "settings.senders.GB[0]: a long_code sender needs 'from'"
    ]


def test_a_number_pool_takes_no_from() -> None:
    """A number pool picks its own number, so a ``from`` is refused."""
    assert problems_of([{"type": "number_pool"}]) == []
    assert problems_of([{"type": "number_pool", "from": "+13125550100"}]) == [
        "settings.senders.GB[0]: a number_pool sender takes no 'from'"
    ]


@pytest.mark.parametrize(
    "sender",
    [{"type": "alphanumeric_sender_id", "from": "ACME"}, {"type": "number_pool"}],
)
def test_alphanumeric_and_number_pool_senders_need_a_messaging_profile(
    sender: dict[str, str],
) -> None:
    """Without a messaging_profile_id, alphanumeric and number-pool senders are refused."""
    found = problems_of([sender], messaging_profile_id=None)
    assert found == [f"settings.senders.GB[0]: {sender['type']} needs messaging_profile_id"]


def test_long_and_short_codes_need_no_messaging_profile() -> None:
    """Long codes and short codes work without a messaging profile."""
    chain = [{"type": "long_code", "from": "+13125550100"}, {"type": "short_code", "from": "12345"}]
    assert problems_of(chain, "US", messaging_profile_id=None) == []


def test_star_must_stand_alone_in_allowed_countries() -> None:
    """``*`` mixed with country codes is refused; alone or a plain list is fine."""
    mixed = senders.settings_problems(tenant_settings(allowed_countries=["*", "GB"]))
    assert mixed == [{"field": "settings.allowed_countries", "message": "'*' must stand alone"}]
    assert senders.settings_problems(tenant_settings(allowed_countries=["*"])) == []
    assert senders.settings_problems(tenant_settings(allowed_countries=["GB", "FR"])) == []


def test_an_empty_chain_is_refused() -> None:
    """A country with an empty sender chain is a configuration error."""
    assert problems_of([]) == ["settings.senders.GB: empty chain"]


def test_every_bad_sender_is_reported_with_its_position() -> None:
    """Each bad sender of a chain gets its own entry naming its index."""
    chain = [
        {"type": "long_code", "from": "+13125550100"},
        {"type": "short_code", "from": "1"},
        {"type": "alphanumeric_sender_id", "from": "X"},
    ]
    fields = [entry.split(":")[0] for entry in problems_of(chain)]
    assert fields == ["settings.senders.GB[1]", "settings.senders.GB[2]"]


# --- core.sms ------------------------------------------------------------------------------


def test_the_sms_starts_with_the_code_and_names_the_brand() -> None:
    """The code comes first (notification preview) and the brand is named."""
    text = sms.render_text("482913", brand="Acme", locale=None, domain=None)
    assert text.startswith("482913 ")
    assert "Acme" in text
    assert text == "482913 is your Acme verification code. Do not share it."


@pytest.mark.parametrize(
    ("locale", "phrase"),
    [
        ("fr", "est votre code"),
        ("fr-CA", "est votre code"),
        ("es", "es tu código"),
        ("de", "Bestätigungscode"),
        ("en", "is your"),
        ("xx", "is your"),
        ("zz-ZZ", "is your"),
        (None, "is your"),
    ],
)
def test_the_sms_is_in_the_requested_language_else_english(locale: str | None, phrase: str) -> None:
    """French, Spanish and German are supported; any other locale gets English."""
    text = sms.render_text("482913", brand="Acme", locale=locale, domain=None)
    assert text.startswith("482913 ")
    assert phrase in text
    assert "Acme" in text


def test_webotp_line_is_last_when_a_domain_is_set() -> None:
    """With a WebOTP domain the last line is ``@domain #code``."""
    text = sms.render_text("482913", brand="Acme", locale="de", domain="login.acme.example")
    assert text.splitlines()[-1] == "@login.acme.example #482913"
    assert text.startswith("482913 ")


LABEL = "a" * 63


@pytest.mark.parametrize(
    ("domain", "valid"),
    [
        ("login.acme.example", True),
        (".".join([LABEL] * 3) + "." + "b" * 61, True),  # 253 characters
        (".".join([LABEL] * 3) + "." + "b" * 62, False),  # 254
        ("a" * 64 + ".example", False),  # a label over 63
        ("Login.acme.example", False),
        ("-login.acme.example", False),
        ("localhost", False),
    ],
)
def test_a_webotp_domain_is_a_lowercase_host_name_of_253_characters_at_most(
    domain: str, valid: bool
) -> None:
    """The domain pattern and the length limit decide together (the pattern has no lookahead)."""
    settings = {"webotp_domain": domain}
    if valid:
        assert msgspec.convert(settings, TenantSettings).webotp_domain == domain
    else:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(settings, TenantSettings)


def test_no_webotp_line_without_a_domain() -> None:
    """Without a domain the message has no ``@domain #code`` line."""
    text = sms.render_text("482913", brand="Acme", locale="en", domain=None)
    assert "@" not in text
    assert "#" not in text
    assert len(text.splitlines()) == 1


# --- core.hashing --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hasher() -> CodeHasher:
    """A hasher with cheap argon2 parameters, for speed."""
    return CodeHasher(PEPPER, CHEAP)


def test_default_hash_parameters_are_owasp_argon2id() -> None:
    """With default parameters the stored hash is argon2id, m=19456, t=2, p=1."""
    default = CodeHasher(PEPPER, Argon2Parameters())
    encoded = default.hash("ver_a", "123456")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), encoded
    assert default.matches_any("ver_a", "123456", [encoded])


def test_a_hash_matches_its_code_and_no_other(hasher: CodeHasher) -> None:
    """The right code matches its hash; a wrong code does not."""
    encoded = hasher.hash("ver_a", "123456")
    assert hasher.matches_any("ver_a", "123456", [encoded])
    assert not hasher.matches_any("ver_a", "123457", [encoded])
    assert not hasher.matches_any("ver_a", "", [encoded])


def test_a_hash_is_bound_to_its_verification(hasher: CodeHasher) -> None:
    """The same code does not match a hash made for another verification."""
    encoded = hasher.hash("ver_a", "123456")
    assert not hasher.matches_any("ver_b", "123456", [encoded])


def test_a_hash_needs_the_server_pepper(hasher: CodeHasher) -> None:
    """A hasher with another server secret cannot match the hash."""
    encoded = hasher.hash("ver_a", "123456")
    other = CodeHasher(b"q" * 32, CHEAP)
    assert not other.matches_any("ver_a", "123456", [encoded])


def test_a_hash_does_not_contain_the_code(hasher: CodeHasher) -> None:
    """The stored hash reveals no digits of the code as such."""
    for code in ("123456", "9081726354"):
        encoded = hasher.hash("ver_a", code)
        assert code not in encoded
        assert encoded.startswith("$argon2id$")


def test_hashes_of_the_same_code_differ(hasher: CodeHasher) -> None:
    """Each hash is salted: the same code hashed twice gives two strings, both matching."""
    first = hasher.hash("ver_a", "123456")
    second = hasher.hash("ver_a", "123456")
    assert first != second
    assert hasher.matches_any("ver_a", "123456", [first])
    assert hasher.matches_any("ver_a", "123456", [second])


def test_any_of_several_hashes_may_match(hasher: CodeHasher) -> None:
    """A code from any send of a verification matches; a code never sent does not."""
    hashes = [hasher.hash("ver_a", code) for code in ("111111", "222222", "333333")]
    for code in ("111111", "222222", "333333"):
        assert hasher.matches_any("ver_a", code, hashes)
    assert not hasher.matches_any("ver_a", "444444", hashes)
    assert not hasher.matches_any("ver_a", "111111", [])


def test_garbage_hashes_are_skipped_not_raised(hasher: CodeHasher) -> None:
    """Corrupt stored hashes neither crash a check nor hide a good hash after them."""
    good = hasher.hash("ver_a", "123456")
    garbage = ["", "garbage", "$argon2id$garbage", good[:-6], "$argon2id$v=19$m=1024,t=1,p=1$$"]
    assert not hasher.matches_any("ver_a", "123456", garbage)
    assert hasher.matches_any("ver_a", "123456", [good, *garbage])
    assert hasher.matches_any("ver_a", "123456", [*garbage, good])


# --- core.policy ---------------------------------------------------------------------------


def verification(status: VerificationStatus, expires_at: int) -> Verification:
    """A verification with the given status and expiry."""
    return Verification(
        id="ver_a",
        tenant_id="ten_a",
        status=status,
        phone_number="+447400123456",
        country="GB",
        locale=None,
        code_length=6,
        created_at=0,
        expires_at=expires_at,
        ended_at=None,
        send_count=1,
        max_sends=5,
        next_send_at=0,
        check_attempts=0,
        max_check_attempts=5,
        messages=[],
        metadata={},
    )


def test_a_pending_verification_reads_as_expired_from_its_expiry() -> None:
    """Pending is pending until ``expires_at``; from that instant on it reads as expired."""
    pending = verification(VerificationStatus.PENDING, expires_at=10_000)
    assert policy.effective_status(pending, 9_999) is VerificationStatus.PENDING
    assert policy.effective_status(pending, 10_000) is VerificationStatus.EXPIRED
    assert policy.effective_status(pending, 99_999) is VerificationStatus.EXPIRED


@pytest.mark.parametrize(
    "status",
    [
        VerificationStatus.APPROVED,
        VerificationStatus.CANCELED,
        VerificationStatus.MAX_ATTEMPTS_REACHED,
        VerificationStatus.FAILED,
    ],
)
def test_an_ended_verification_keeps_its_status_after_expiry(status: VerificationStatus) -> None:
    """An approved, canceled, exhausted or failed verification never turns into expired."""
    assert policy.effective_status(verification(status, expires_at=10_000), 20_000) is status


@pytest.mark.parametrize(
    ("milliseconds", "seconds"),
    [(-5, 1), (0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (29_999, 30), (30_000, 30)],
)
def test_retry_after_rounds_up_to_whole_seconds_at_least_one(
    milliseconds: int, seconds: int
) -> None:
    """``Retry-After`` is never zero and never tells a client to come back too early."""
    assert policy.retry_after_seconds(milliseconds) == seconds


# --- settings ------------------------------------------------------------------------------

PUBLIC_KEY = base64.b64encode(bytes(range(32))).decode()
REQUIRED = {
    "OTP_ADMIN_TOKEN": "admin-token-0123456789",
    "OTP_SECRET_KEY": "s" * 32,
    "TELNYX_API_KEY": "KEY0123",
    "TELNYX_PUBLIC_KEY": PUBLIC_KEY,
}


def test_settings_have_sensible_defaults() -> None:
    """With only the required variables every other setting takes its documented default."""
    settings = load_settings(REQUIRED)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.telnyx_base_url == "https://api.telnyx.com/v2"
    assert settings.telnyx_public_key == bytes(range(32))
    assert settings.secret_key.reveal() == "s" * 32
    assert settings.signing_key_seed is None
    assert settings.public_url is None
    assert settings.allow_private_webhooks is False
    assert (settings.argon2_time_cost, settings.argon2_memory_kib) == (2, 19456)
    assert settings.argon2_parallelism == 1
    assert settings.max_body_bytes == 16384
    assert settings.log_level == "INFO"
    assert settings.log_format == "json"
    assert settings.telnyx_timeout_seconds <= 10
    assert settings.redis_timeout_seconds <= 10


@pytest.mark.parametrize("name", sorted(REQUIRED))
@pytest.mark.parametrize("blank", [False, True])
def test_each_required_setting_is_named_when_missing(name: str, blank: bool) -> None:
    """Leaving out (or blanking) a required variable stops start-up naming that variable."""
    environ = {k: v for k, v in REQUIRED.items() if k != name}
    if blank:
        environ[name] = "  "
    with pytest.raises(SettingsError, match=name):
        load_settings(environ)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_URL", "http://127.0.0.1:6379/0"),
        ("REDIS_URL", "127.0.0.1:6379"),
        ("OTP_SECRET_KEY", "s" * 31),
        ("OTP_ADMIN_TOKEN", "short"),
        ("TELNYX_PUBLIC_KEY", base64.b64encode(bytes(31)).decode()),
        ("TELNYX_PUBLIC_KEY", "not base64 at all!"),
        ("TELNYX_BASE_URL", "api.telnyx.com/v2"),
        ("OTP_SIGNING_KEY", base64.b64encode(bytes(16)).decode()),
        ("OTP_ARGON2_TIME_COST", "two"),
        ("OTP_ARGON2_MEMORY_KIB", "lots"),
        ("OTP_ARGON2_PARALLELISM", "0"),
        ("OTP_HASH_THREADS", "-1"),
        ("OTP_ALLOW_PRIVATE_WEBHOOKS", "maybe"),
        ("OTP_TELNYX_TIMEOUT_SECONDS", "soon"),
        ("OTP_MAX_BODY_BYTES", "big"),
        ("OTP_LOG_LEVEL", "LOUD"),
        ("OTP_LOG_FORMAT", "xml"),
    ],
)
def test_malformed_settings_are_named(name: str, value: str) -> None:
    """A malformed value stops start-up with an error naming the variable, not echoing it."""
    with pytest.raises(SettingsError, match=name) as caught:
        load_settings(REQUIRED | {name: value})
    if name in {"OTP_SECRET_KEY", "OTP_ADMIN_TOKEN"}:
        assert value not in str(caught.value)


def test_every_missing_or_malformed_setting_is_named_at_once() -> None:
    """One error lists each bad variable on a line of its own, in the README's order."""
    environ = {k: v for k, v in REQUIRED.items() if k not in {"OTP_SECRET_KEY", "TELNYX_API_KEY"}}
    environ |= {"OTP_ARGON2_TIME_COST": "two", "REDIS_URL": "127.0.0.1:6379"}
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert [line.split()[0] for line in caught.value.problems] == [
        "REDIS_URL",
        "OTP_SECRET_KEY",
        "TELNYX_API_KEY",
        "OTP_ARGON2_TIME_COST",
    ]
    assert str(caught.value).splitlines() == caught.value.problems


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("0", False)])
def test_private_webhooks_flag_accepts_0_and_1(value: str, expected: bool) -> None:
    """OTP_ALLOW_PRIVATE_WEBHOOKS=1 turns the allowance on, 0 leaves it off."""
    settings = load_settings(REQUIRED | {"OTP_ALLOW_PRIVATE_WEBHOOKS": value})
    assert settings.allow_private_webhooks is expected


def test_secrets_do_not_show_in_repr() -> None:
    """Printing the settings (or a secret) never shows the admin token or the server secret."""
    settings = load_settings(REQUIRED)
    assert "s" * 32 not in repr(settings)
    assert REQUIRED["OTP_ADMIN_TOKEN"] not in repr(settings)
    assert REQUIRED["TELNYX_API_KEY"] not in repr(settings)
    assert "hunter2" not in repr(Secret("hunter2"))
    assert "hunter2" not in str(Secret("hunter2"))
    assert Secret("hunter2").reveal() == "hunter2"


def test_zero_hash_threads_means_one_per_core() -> None:
    """OTP_HASH_THREADS=0 (the default) runs one argon2 thread per CPU core."""
    assert load_settings(REQUIRED | {"OTP_HASH_THREADS": "0"}).hash_threads == (os.cpu_count() or 1)
    assert load_settings(REQUIRED).hash_threads == (os.cpu_count() or 1)
    assert load_settings(REQUIRED | {"OTP_HASH_THREADS": "3"}).hash_threads == 3


def test_a_unix_socket_redis_url_is_accepted() -> None:
    """A Unix-socket REDIS_URL (a scheme the loader lists as allowed) is accepted."""
    settings = load_settings(REQUIRED | {"REDIS_URL": "unix:///var/run/redis/redis.sock"})
    assert settings.redis_url == "unix:///var/run/redis/redis.sock"


@pytest.mark.parametrize(
    ("url", "addresses", "allow_private", "problem"),
    [
        ("https://hooks.acme.example/otp", ["93.184.215.14"], False, None),
        ("http://hooks.acme.example/otp", ["93.184.215.14"], False, "must use https"),
        ("https://hooks.acme.example/otp", [], False, "its host does not resolve"),
        ("https://127.0.0.1/otp", ["127.0.0.1"], False, "loopback"),
        ("https://metadata/otp", ["169.254.169.254"], False, "loopback"),
        ("https://intranet/otp", ["10.0.0.5"], False, "loopback"),
        ("https://[::1]/otp", ["::1"], False, "loopback"),
        ("https://mapped/otp", ["::ffff:192.168.1.1"], False, "loopback"),
        ("https://mixed.example/otp", ["93.184.215.14", "192.168.0.1"], False, "loopback"),
        ("ftp://hooks.acme.example/otp", ["93.184.215.14"], False, "http(s)"),
        ("not-a-url", [], False, "http(s)"),
        ("http://127.0.0.1:9000/otp", [], True, None),
    ],
)
def test_event_urls_must_be_https_and_public(
    url: str, addresses: list[str], allow_private: bool, problem: str | None
) -> None:
    """Tenant event URLs are https to public addresses unless private webhooks are allowed."""
    found = event_url_problem(url, addresses, allow_private=allow_private)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_an_alphanumeric_default_chain_that_reaches_the_us_is_refused() -> None:
    """A default alphanumeric sender is refused while US, CA or PR fall into the default chain."""
    senders = {"default": [{"type": "alphanumeric_sender_id", "from": "ACME"}]}
    with_profile = {"messaging_profile_id": "6f1f3b1e-2a4c-4e0e-9c55-000000000001"}
    open_to_all = msgspec.convert({**with_profile, "senders": senders}, TenantSettings)
    assert [p["field"] for p in settings_problems(open_to_all)] == ["settings.senders.default"]
    europe_only = msgspec.convert(
        {**with_profile, "senders": senders, "allowed_countries": ["GB", "FR"]}, TenantSettings
    )
    assert settings_problems(europe_only) == []
    own_chains = {
        **senders,
        **{c: [{"type": "long_code", "from": "+13125550100"}] for c in ("US", "CA", "PR")},
    }
    covered = msgspec.convert({**with_profile, "senders": own_chains}, TenantSettings)
    assert settings_problems(covered) == []
