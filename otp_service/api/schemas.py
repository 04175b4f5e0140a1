"""Wire structs: what the HTTP API accepts and returns (API.md is the contract).

Request structs forbid unknown fields (422); times are rendered as RFC 3339 UTC.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from otp_service.core.model import Tenant, TenantSettings
from otp_service.core.views import rfc3339


class _Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Policy base of request bodies."""


MetadataKey = Annotated[str, Meta(min_length=1, max_length=64)]
MetadataValue = Annotated[str, Meta(max_length=256)]


class StartVerificationBody(_Request):
    """``POST /v1/verifications``."""

    phone_number: str
    locale: Annotated[str, Meta(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] | None = None
    code_length: Annotated[int, Meta(ge=4, le=10)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Meta(max_length=10)] = msgspec.field(
        default_factory=dict
    )


class CheckBody(_Request):
    """``POST /v1/verifications/{id}/check``."""

    code: str


class CheckByPhoneBody(_Request):
    """``POST /v1/verifications/check``."""

    phone_number: str
    code: str


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


class PublicKeyOut(msgspec.Struct, kw_only=True):
    """The Ed25519 key that signs tenant events, base64."""

    public_key: str


class CreateTenantBody(_Request):
    """``POST /admin/tenants``."""

    name: Annotated[str, Meta(min_length=1, max_length=100)]
    settings: TenantSettings = msgspec.field(default_factory=TenantSettings)


class PatchTenantBody(_Request):
    """``PATCH /admin/tenants/{id}``: the settings fields to change (and optionally the name)."""

    name: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    settings: dict[str, object] = msgspec.field(default_factory=dict)


class TenantOut(msgspec.Struct, kw_only=True):
    """A tenant as the admin API shows it."""

    id: str
    name: str
    settings: TenantSettings
    created_at: str
    updated_at: str


class ApiKeyCreatedOut(msgspec.Struct, kw_only=True):
    """A new API key: ``key`` is shown this once."""

    id: str
    key: str
    prefix: str
    created_at: str


class ApiKeyOut(msgspec.Struct, kw_only=True):
    """An API key without its secret."""

    id: str
    prefix: str
    created_at: str


def tenant_out(tenant: Tenant) -> TenantOut:
    """Render a tenant for the admin API."""
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        settings=tenant.settings,
        created_at=rfc3339(tenant.created_at),
        updated_at=rfc3339(tenant.updated_at),
    )
