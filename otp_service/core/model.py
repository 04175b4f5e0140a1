"""Domain records: tenants, their settings, verifications and the messages sent for them.

Times are integer milliseconds since the Unix epoch, the unit the Redis scripts compare in;
the API layer renders them as RFC 3339.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from otp_service.core.fraud import FraudGuardMode, FraudSettings
from otp_service.core.limits import LimitSettings
from otp_service.core.sandbox import MAX_SANDBOX_NUMBERS, SandboxNumber, SandboxScript
from otp_service.core.urls import MAX_EVENT_URL_LENGTH


class SenderType(enum.StrEnum):
    """How Telnyx sends: each type has its own endpoint and required fields."""

    LONG_CODE = "long_code"
    SHORT_CODE = "short_code"
    ALPHANUMERIC_SENDER_ID = "alphanumeric_sender_id"
    NUMBER_POOL = "number_pool"
    SANDBOX = "sandbox"
    """Not a Telnyx sender: the service playing the carrier for a tenant's sandbox numbers.

    It is never configured in a chain; a listed number's chain is this sender alone."""


class VerificationStatus(enum.StrEnum):
    """The life of a verification: ``pending`` until one of the five ends."""

    PENDING = "pending"
    APPROVED = "approved"
    CANCELED = "canceled"
    EXPIRED = "expired"
    MAX_ATTEMPTS_REACHED = "max_attempts_reached"
    FAILED = "failed"


class Sender(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One sender in a country's fallback chain.

    `from` by `type`: a `long_code` is a valid E.164 number; a `short_code` is 5 or 6
    digits; an `alphanumeric_sender_id` is 3 to 11 letters, digits or spaces, not all
    digits, and cannot send to US, CA or PR; a `number_pool` has no `from`. Alphanumeric
    senders and number pools need the tenant's `messaging_profile_id`. `sandbox` is not a
    type to configure: it marks the sends to the tenant's `sandbox_numbers`.
    """

    type: SenderType
    from_: str | None = msgspec.field(default=None, name="from")


CountryKey = Annotated[str, Meta(pattern=r"^(default|[A-Z]{2})$")]
Country = Annotated[str, Meta(pattern=r"^(\*|[A-Z]{2})$")]


class TenantSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A tenant's policy, as API.md lists it; every field has a default.

    Rules across fields (422 `validation_error`, one `errors` entry per field): each
    sender obeys the rules of its `type` (see `Sender`) for its chain's country; a chain
    is never empty; when `default` holds an alphanumeric sender, US, CA and PR need a
    chain of their own unless `allowed_countries` leaves them out; `*` in
    `allowed_countries` stands alone; `events_webhook_url` is `https` and does not resolve
    to a loopback, private or link-local address (unless the operator allows it); a sandbox
    number's `fixed_code` has `code_length` digits.
    """

    brand: (
        Annotated[str, Meta(min_length=1, max_length=40, description="Named in the SMS")] | None
    ) = None
    code_length: Annotated[int, Meta(ge=4, le=10, description="Digits in a code")] = 6
    code_ttl_seconds: Annotated[int, Meta(ge=10, le=3600, description="Life of a verification")] = (
        600
    )
    max_check_attempts: Annotated[int, Meta(ge=1, le=10)] = 5
    max_sends: Annotated[int, Meta(ge=1, le=10, description="Start plus resends")] = 5
    resend_cooldown_seconds: Annotated[int, Meta(ge=0, le=600)] = 30
    messaging_profile_id: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=64,
                description="Telnyx messaging profile; needed by alphanumeric senders and "
                "number pools, and the scope of the tenant's opt-outs",
            ),
        ]
        | None
    ) = None
    allowed_countries: Annotated[
        list[Country], Meta(description="ISO 3166 alpha-2 codes, or `*` alone for all")
    ] = msgspec.field(default_factory=lambda: ["*"])
    senders: Annotated[
        dict[CountryKey, list[Sender]],
        Meta(description="Ordered fallback chain per destination country; `default` for the rest"),
    ] = msgspec.field(default_factory=dict)
    reject_landlines: Annotated[
        bool, Meta(description="Fixed-line numbers get 422 `unsupported_number_type`")
    ] = True
    delivery_timeout_seconds: (
        Annotated[
            int,
            Meta(
                ge=10, le=3600, description="No receipt in this time: the next sender (null: off)"
            ),
        ]
        | None
    ) = None
    events_webhook_url: (
        Annotated[
            str,
            Meta(
                max_length=MAX_EVENT_URL_LENGTH,
                description="Where tenant events are POSTed (https)",
            ),
        ]
        | None
    ) = None
    fraud_guard: Annotated[
        FraudGuardMode,
        Meta(
            description="`block` refuses starts to a range the fraud guard blocked; `monitor`"
            " records the same blocks and refuses nothing"
        ),
    ] = FraudGuardMode.BLOCK
    fraud: Annotated[FraudSettings, Meta(description="The fraud guard's thresholds")] = (
        msgspec.field(default_factory=FraudSettings)
    )
    limits: Annotated[LimitSettings, Meta(description="Send and check limits")] = msgspec.field(
        default_factory=LimitSettings
    )
    webotp_domain: (
        Annotated[
            str,
            Meta(
                max_length=253,
                pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
                description="The SMS ends '@<domain> #<code>' so browsers can fill it in (WebOTP)",
            ),
        ]
        | None
    ) = None
    sandbox_numbers: Annotated[
        dict[SandboxNumber, SandboxScript],
        Meta(
            max_length=MAX_SANDBOX_NUMBERS,
            description="Numbers that never reach Telnyx, each with a scripted outcome (see "
            "README, Sandbox numbers); fictional numbers are accepted when listed",
        ),
    ] = msgspec.field(default_factory=dict)


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    """A customer of the service: its settings and when it was created."""

    id: str
    name: str
    settings: TenantSettings
    created_at: int
    updated_at: int


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant API key as stored: its keyed hash, never the key itself."""

    id: str
    tenant_id: str
    prefix: str
    digest: str
    created_at: int


class Message(msgspec.Struct, kw_only=True):
    """One send attempt; ``id`` is Telnyx's message id, ``None`` when Telnyx refused at once.

    ``position`` is the sender's place in the destination's chain, where a fallback goes on.
    """

    id: str | None
    position: int
    sender_type: SenderType
    from_: str | None = msgspec.field(name="from")
    status: str
    error_codes: list[str]
    created_at: int
    updated_at: int


class Verification(msgspec.Struct, kw_only=True):
    """A verification as read from the store (code hashes excluded: they never leave it)."""

    id: str
    tenant_id: str
    status: VerificationStatus
    phone_number: str
    country: str
    locale: str | None
    code_length: int
    created_at: int
    expires_at: int
    ended_at: int | None
    send_count: int
    max_sends: int
    next_send_at: int
    check_attempts: int
    max_check_attempts: int
    messages: list[Message]
    metadata: dict[str, str]
    brand: str | None = None
    """Named in the SMS instead of the tenant's brand (Twilio's ``CustomFriendlyName``)."""
