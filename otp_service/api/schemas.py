"""Wire structs: what the HTTP API accepts and returns (API.md is the contract).

Request structs forbid unknown fields (422); times are rendered as RFC 3339 UTC. The
OpenAPI document renders these structs with msgspec's own JSON Schema (``api.openapi``), so
docstrings and ``Meta`` descriptions here are what API users read.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from otp_service.core import sandbox
from otp_service.core.limits import RateLimitKeys
from otp_service.core.model import Tenant, TenantSettings
from otp_service.core.views import BlockOut, rfc3339

E164_PATTERN: Final = r"^\+[1-9][0-9]{1,14}$"
SCHEMA_REF: Final = "#/components/schemas/{name}"
"""Where the OpenAPI document keeps a struct's schema (msgspec's ``ref_template``)."""

PhoneNumber = Annotated[
    str,
    Meta(
        description="E.164: '+', the country code and the number, digits only. It must also "
        "be a valid number by libphonenumber's metadata (unless it is one of the tenant's "
        "`sandbox_numbers`): anything else is 422 `invalid_phone_number`, whose `detail` "
        "says what is wrong.",
        # Documented, not enforced by the decoder: the service's own check answers every
        # malformed number with API.md's `invalid_phone_number` and a detail that says why.
        extra_json_schema={"pattern": E164_PATTERN},
    ),
]
Code = Annotated[
    str,
    Meta(
        description="What the user typed: exactly the verification's `code_length` ASCII "
        "digits, else 422 `invalid_code_format` (which uses no attempt)."
    ),
]


class _Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Policy base of request bodies."""


MetadataKey = Annotated[str, Meta(min_length=1, max_length=64)]
MetadataValue = Annotated[str, Meta(max_length=256)]


class StartVerificationBody(_Request):
    """Start a verification of `phone_number`, or re-send the number's pending one.

    The destination's country must be in the tenant's `allowed_countries` and have a sender
    chain (its own or `default`), else 403 `destination_not_allowed`; with the tenant's
    `reject_landlines`, a fixed-line number is 422 `unsupported_number_type`. One of the
    tenant's `sandbox_numbers` never reaches Telnyx: it plays its scripted outcome.
    """

    phone_number: PhoneNumber
    locale: (
        Annotated[
            str,
            Meta(
                pattern=r"^[a-z]{2}(-[A-Z]{2})?$",
                description="Language of the SMS, e.g. `fr` or `pt-BR`; English if unknown",
            ),
        ]
        | None
    ) = None
    code_length: (
        Annotated[
            int,
            Meta(
                ge=4,
                le=10,
                description="Digits in the code; the tenant's `code_length` if null (a "
                "sandbox number's `fixed_code` sets it)",
            ),
        ]
        | None
    ) = None
    metadata: Annotated[
        dict[MetadataKey, MetadataValue],
        Meta(max_length=10, description="Up to 10 string pairs, returned as given"),
    ] = msgspec.field(default_factory=dict)
    rate_limit_keys: RateLimitKeys = msgspec.field(default_factory=dict)


class CheckBody(_Request):
    """Check a code against one verification."""

    code: Code
    rate_limit_keys: RateLimitKeys = msgspec.field(default_factory=dict)


class CheckByPhoneBody(_Request):
    """Check a code against this tenant's pending verification of `phone_number` (404: none)."""

    phone_number: PhoneNumber
    code: Code
    rate_limit_keys: RateLimitKeys = msgspec.field(default_factory=dict)


class CheckOut(msgspec.Struct, kw_only=True):
    """The answer to a check."""

    id: str
    status: str
    valid: bool
    check_attempts_remaining: int


class OptOutOut(msgspec.Struct, kw_only=True):
    """Whether a number has opted out of the tenant's messaging profile."""

    phone_number: str
    opted_out: bool
    since: str | None
    source: str | None


class OptOutListOut(msgspec.Struct, kw_only=True):
    """A page of a scope's opt-outs; ``next_cursor`` fetches the next one (null: the last)."""

    data: list[OptOutOut]
    next_cursor: str | None


class PublicKeyEntryOut(msgspec.Struct, kw_only=True):
    """One Ed25519 public key that verifies tenant events, base64, with its short id."""

    key_id: str
    public_key: str


class PublicKeyOut(msgspec.Struct, kw_only=True):
    """The Ed25519 key that signs tenant events, base64.

    ``keys`` lists every key a receiver should accept, the signing one first: during a
    rotation of the signing key the former key follows, so events signed (and retried)
    before every process had the new key still verify.
    """

    public_key: str
    key_id: str
    keys: list[PublicKeyEntryOut]


class StatsRowOut(msgspec.Struct, kw_only=True):
    """The counts of one destination country and sender type over the report's hours."""

    country: Annotated[str, Meta(description="Destination country, ISO 3166 alpha-2")]
    sender_type: Annotated[
        str,
        Meta(
            description="A sender type of the tenant's chains (`sandbox` for its sandbox "
            "numbers): the route (first sender) for `started`, `approved` and `blocked`, the "
            "sender that sent for the others"
        ),
    ]
    started: Annotated[
        int, Meta(description="Starts, counted against the first sender of the chain")
    ]
    sent: Annotated[int, Meta(description="Messages Telnyx took")]
    delivered: Annotated[int, Meta(description="Messages a receipt reported delivered")]
    approved: Annotated[
        int, Meta(description="Verifications approved, counted against the first sender")
    ]
    conversion_rate: Annotated[
        float | None,
        Meta(
            description="`approved / started`, rounded to 4 places; null when nothing "
            "started. Each event counts in its own hour, so over a short window a code "
            "started before `from` can make it exceed 1."
        ),
    ]
    failed_sends: Annotated[
        int,
        Meta(
            description="Messages that ended undelivered: refused by Telnyx, a send call "
            "that failed, or reported sending_failed, delivery_failed or expired"
        ),
    ]
    blocked: Annotated[int, Meta(description="Starts the fraud guard refused")]


class StatsOut(msgspec.Struct, kw_only=True):
    """Conversion counts over a window, one row per country and sender type that had any.

    The counters are hourly: the rows sum the hours whose start lies in `[from, to)`.
    Rows are ordered by `country`, then `sender_type`; counters are kept 40 days.
    """

    from_: str = msgspec.field(name="from")
    to: str
    rows: list[StatsRowOut]


class CreateTenantBody(_Request):
    """Create a tenant; settings left out take their defaults."""

    name: Annotated[str, Meta(min_length=1, max_length=100)]
    settings: TenantSettings = msgspec.field(default_factory=TenantSettings)


class PatchTenantBody(_Request):
    """Rename a tenant and change some settings; the settings left out keep their values."""

    name: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    settings: Annotated[
        dict[str, Any],
        Meta(
            description="The `TenantSettings` fields to change, each as `TenantSettings` "
            "describes it. The changed settings must satisfy its rules as a whole, "
            "together with the fields left as they were.",
            extra_json_schema={"allOf": [{"$ref": SCHEMA_REF.format(name="TenantSettings")}]},
        ),
    ] = msgspec.field(default_factory=dict)


class TenantOut(msgspec.Struct, kw_only=True):
    """A tenant as the admin API shows it."""

    id: str
    name: str
    settings: TenantSettings
    created_at: str
    updated_at: str
    warnings: Annotated[
        list[str],
        Meta(
            description="What the operator should know about these settings, e.g. that a "
            "sandbox number's `fixed_code` is a password for that number"
        ),
    ]


class TenantListOut(msgspec.Struct, kw_only=True):
    """A page of tenants, oldest first; ``next_cursor`` fetches the next one (null: the last)."""

    data: list[TenantOut]
    next_cursor: str | None


class ApiKeyCreatedOut(msgspec.Struct, kw_only=True):
    """A new API key: ``key`` is shown this once."""

    id: str
    key: str
    prefix: str
    created_at: str
    twilio_sid: Annotated[
        str,
        Meta(
            description="The key's Twilio-style API key SID (`SK` + 32 hex): with the key as "
            "password, the user name of HTTP Basic on the Twilio-compatible API (`/twilio`)"
        ),
    ]


class BlockListOut(msgspec.Struct, kw_only=True):
    """The blocks in force."""

    data: list[BlockOut]


class ApiKeyOut(msgspec.Struct, kw_only=True):
    """An API key without its secret."""

    id: str
    prefix: str
    created_at: str
    twilio_sid: Annotated[
        str,
        Meta(
            description="The key's Twilio-style API key SID (`SK` + 32 hex): with the key as "
            "password, the user name of HTTP Basic on the Twilio-compatible API (`/twilio`)"
        ),
    ]


class TwilioSidsOut(msgspec.Struct, kw_only=True):
    """A tenant's identifiers on the Twilio Verify v2-compatible API (`/twilio`).

    Both are computed from the tenant's id, so they stay the same for the tenant's life.
    """

    account_sid: Annotated[
        str,
        Meta(
            description="`AC` + 32 hex: Twilio's account SID, the user name of HTTP Basic "
            "(with one of the tenant's API keys as password)"
        ),
    ]
    service_sid: Annotated[
        str,
        Meta(
            description="`VA` + 32 hex: the Verify service SID of the paths "
            "(`/twilio/v2/Services/{ServiceSid}/...`); one service per tenant"
        ),
    ]


def tenant_out(tenant: Tenant) -> TenantOut:
    """Render a tenant for the admin API."""
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        settings=tenant.settings,
        created_at=rfc3339(tenant.created_at),
        updated_at=rfc3339(tenant.updated_at),
        warnings=sandbox.warnings(tenant.settings.sandbox_numbers),
    )
