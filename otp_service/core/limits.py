"""Layered send and check limits: which apply to a request, as plain data for the store.

Every limit is checked and counted inside the script of the request it limits (start, or
the first half of a check), so a burst of concurrent requests can never exceed one and no
limit costs a round trip of its own. This module decides *which* limits apply and with which
parameters; ``adapters/lua/_lib.lua`` (``limits_pass``/``limits_take``) enforces them. All
are checked before any is counted, so a refused request spends nothing.

The layers, and why each exists:

- ``phone_number``: SMS to one number across verifications, per hour and per day, whoever
  asks. Stops SMS bombing (flooding a victim's phone) even by askers who rotate keys.
  A sliding log (exact: never more than the limit in any hour or day).
- ``key:<name>``: the asker, as the tenant names it in ``rate_limit_keys`` (an IP, a user id,
  a device). Each name has a bucket for all its sends, a smaller one for its sends to one
  number, and the same two for checks. The per-number buckets are set well below the
  number's own limits, ``max_sends`` and ``max_check_attempts``: an attacker who knows a
  victim's number is stopped while the victim still gets a code and can check it.
- ``tenant``: the tenant's send rate, a burst allowance then a steady rate (GCRA), so a
  compromised tenant key or a runaway client cannot spend without bound.
- ``country``: a daily budget of sends per destination country; when it is spent the
  country's circuit breaker is open (listed as a block) until the day ends or an operator
  lifts it. It caps the damage of pumping that slips past the fraud guard.
- ``phone_number`` on checks: at most ``failed_checks_per_number`` consecutive wrong codes
  for a number (NIST 800-63B's ceiling of 100), across verifications and askers.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Annotated, Final

import msgspec
from msgspec import Meta

KEY_NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,31}$"
MAX_RATE_LIMIT_KEYS: Final = 5
MAX_KEY_VALUE_LENGTH: Final = 128

KeyName = Annotated[str, Meta(pattern=KEY_NAME_PATTERN, max_length=32)]
KeyValue = Annotated[str, Meta(max_length=MAX_KEY_VALUE_LENGTH)]
RateLimitKeys = Annotated[
    dict[KeyName, KeyValue],
    Meta(
        max_length=MAX_RATE_LIMIT_KEYS,
        description="Who is asking, as the tenant knows it (e.g. `ip`, `user_id`): limits "
        "keyed on these stop an abusive asker without locking out the number's owner",
    ),
]

DAY_MS: Final = 24 * 3600 * 1000


class Bucket(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """At most ``max`` per ``interval_seconds``: the whole allowance at once, then evenly."""

    max: Annotated[int, Meta(ge=1, le=1_000_000)]
    interval_seconds: Annotated[int, Meta(ge=1, le=86_400)]


class KeyLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The buckets of one `rate_limit_keys` name (each value of it has its own)."""

    sends: Bucket = Bucket(max=20, interval_seconds=3600)
    sends_per_number: Annotated[
        Bucket, Meta(description="Sends by one asker to one number; keep below the number's own")
    ] = Bucket(max=3, interval_seconds=3600)
    checks: Bucket = Bucket(max=30, interval_seconds=3600)
    checks_per_number: Annotated[
        Bucket, Meta(description="Checks by one asker of one number; keep below max_check_attempts")
    ] = Bucket(max=3, interval_seconds=3600)


def _default_keys() -> dict[str, KeyLimits]:
    return {"default": KeyLimits()}


def _default_budgets() -> dict[str, int]:
    return {"default": 10_000}


BudgetCountry = Annotated[str, Meta(pattern=r"^(default|[A-Z]{2})$")]


class LimitSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A tenant's send and check limits (the module docstring says why each exists)."""

    phone_number_per_hour: Annotated[
        int, Meta(ge=1, le=1000, description="SMS to one number in any hour, whoever asks")
    ] = 10
    phone_number_per_day: Annotated[
        int, Meta(ge=1, le=10_000, description="SMS to one number in any 24 h, whoever asks")
    ] = 30
    tenant: Annotated[Bucket, Meta(description="The tenant's sends: a burst, then evenly")] = (
        Bucket(max=600, interval_seconds=60)
    )
    country_daily_sends: Annotated[
        dict[BudgetCountry, Annotated[int, Meta(ge=0, le=100_000_000)]],
        Meta(description="Sends per destination country per UTC day; `default` for the rest"),
    ] = msgspec.field(default_factory=_default_budgets)
    failed_checks_per_number: Annotated[
        int, Meta(ge=1, le=100, description="Consecutive wrong codes for one number (NIST: 100)")
    ] = 100
    rate_limit_keys: Annotated[
        dict[Annotated[str, Meta(pattern=r"^(default|[a-z][a-z0-9_]{0,31})$")], KeyLimits],
        Meta(description="Buckets per `rate_limit_keys` name; `default` for other names"),
    ] = msgspec.field(default_factory=_default_keys)


class Kind(enum.StrEnum):
    """How a rule counts (``_lib.lua`` implements each)."""

    GCRA = "gcra"
    """A bucket: ``max`` at once, then one per ``window_ms / max`` (one key, a timestamp)."""
    WINDOW = "window"
    """A sliding log: at most ``max`` in any ``window_ms`` (exact; for small limits)."""
    BUDGET = "budget"
    """A count that resets at ``window_ms`` (an absolute time: the end of the UTC day)."""
    STREAK = "streak"
    """Consecutive failures: refused at ``max``; the check's outcome counts or clears it."""


class Rule(msgspec.Struct, frozen=True, array_like=True):
    """One limit to check and count: its public name, how it counts, and where.

    ``scope`` names the counter within the tenant; ``per_number`` rules of a check by id
    get the verification's number appended by the script, which alone knows it.
    """

    limit: str
    kind: Kind
    scope: str
    max: int
    window_ms: int
    per_number: bool = False


def _key_id(name: str, value: str) -> str:
    """A fixed-length name for an asker's key value (values are up to 128 free characters)."""
    return name + ":" + hashlib.blake2b(value.encode(), digest_size=10).hexdigest()


def key_limits(settings: LimitSettings, name: str) -> KeyLimits:
    """The buckets of a key name: its own, else the tenant's ``default``, else the built-in."""
    found = settings.rate_limit_keys.get(name) or settings.rate_limit_keys.get("default")
    return found or KeyLimits()


def asker(rate_limit_keys: dict[str, str]) -> str:
    """Who asks, as one string ('' when the tenant named nobody).

    A resend asked by someone other than the last sender skips the resend cooldown: an
    attacker's resends must not make the number's owner wait.
    """
    if not rate_limit_keys:
        return ""
    joined = "\n".join(f"{k}={v}" for k, v in sorted(rate_limit_keys.items()))
    return hashlib.blake2b(joined.encode(), digest_size=10).hexdigest()


def _bucket_rule(limit: str, kind: Kind, scope: str, bucket: Bucket) -> Rule:
    return Rule(limit, kind, scope, bucket.max, bucket.interval_seconds * 1000)


def send_rules(
    settings: LimitSettings,
    *,
    e164: str,
    country: str,
    rate_limit_keys: dict[str, str],
    now_ms: int,
) -> list[Rule]:
    """The limits one SMS of a start or resend must pass, in the order they are reported.

    The asker's own limits come first, so an abusive asker is told about its limits, not
    the number's or the tenant's it is about to use up.
    """
    rules: list[Rule] = []
    for name, value in sorted(rate_limit_keys.items()):
        buckets = key_limits(settings, name)
        who = _key_id(name, value)
        rules.append(_bucket_rule(f"key:{name}", Kind.GCRA, f"k:{who}:s", buckets.sends))
        rules.append(
            _bucket_rule(f"key:{name}", Kind.WINDOW, f"k:{who}:s:{e164}", buckets.sends_per_number)
        )
    rules.append(
        Rule(
            "phone_number", Kind.WINDOW, f"n:{e164}:h", settings.phone_number_per_hour, 3600 * 1000
        )
    )
    rules.append(
        Rule("phone_number", Kind.WINDOW, f"n:{e164}:d", settings.phone_number_per_day, DAY_MS)
    )
    budget = settings.country_daily_sends.get(country)
    if budget is None:
        budget = settings.country_daily_sends.get("default")
    if budget is not None:
        day_end = now_ms - now_ms % DAY_MS + DAY_MS
        rules.append(Rule("country", Kind.BUDGET, f"c:{country}:{day_end}", budget, day_end))
    rules.append(_bucket_rule("tenant", Kind.GCRA, "t:s", settings.tenant))
    return rules


def check_rules(settings: LimitSettings, *, rate_limit_keys: dict[str, str]) -> list[Rule]:
    """The limits one check must pass (the number is the verification's, known in Redis)."""
    rules: list[Rule] = []
    for name, value in sorted(rate_limit_keys.items()):
        buckets = key_limits(settings, name)
        who = _key_id(name, value)
        rules.append(_bucket_rule(f"key:{name}", Kind.GCRA, f"k:{who}:c", buckets.checks))
        rule = _bucket_rule(f"key:{name}", Kind.WINDOW, f"k:{who}:c:", buckets.checks_per_number)
        rules.append(msgspec.structs.replace(rule, per_number=True))
    rules.append(
        Rule(
            "phone_number",
            Kind.STREAK,
            "f:",
            settings.failed_checks_per_number,
            DAY_MS,
            per_number=True,
        )
    )
    return rules
