"""``otp-service export`` / ``import``: tenants, their settings and their API key hashes.

The document is what an operator needs to move tenants to another Redis or rebuild one: each
tenant as stored (id, name, settings, times) with its keys' records (id, shown prefix, keyed
hash, creation time). Keys are never in it, only their hashes; those are HMACs under a
pepper derived from ``OTP_SECRET_KEY``, so the keys work on the target only when its service
runs with the same secret (and the export is worth no more than the keys' hashes to whoever
reads it without that secret). Verifications, counters and opt-outs are not exported: the
first live minutes, the second rebuild themselves, and Telnyx keeps the opt-out list
(``otp-service optouts sync`` imports it again).

The format is versioned; an import refuses any other format or version rather than guess.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from otp_service.adapters.redis_tenants import TenantStore
from otp_service.clock import Clock
from otp_service.core.model import ApiKey, Tenant, TenantSettings
from otp_service.core.views import rfc3339

EXPORT_FORMAT: Final = "otp-service-export"
EXPORT_VERSION: Final = 1
_PAGE: Final = 500
_NAMED: Final = 5
"""How many existing tenants a refused import names."""


class ExportedKey(msgspec.Struct, frozen=True, kw_only=True):
    """An API key as stored: its keyed hash (``digest``), never the key."""

    id: str
    prefix: str
    digest: str
    created_at: int


class ExportedTenant(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant record and its API keys."""

    id: str
    name: str
    settings: TenantSettings
    created_at: int
    updated_at: int
    api_keys: list[ExportedKey]


class Export(msgspec.Struct, frozen=True, kw_only=True):
    """The whole document, version 1."""

    format: Literal["otp-service-export"]
    version: Literal[1]
    exported_at: str
    tenants: list[ExportedTenant]


class ExportRefused(Exception):
    """The document cannot be imported as it stands; the message is one line for the CLI."""


class Imported(msgspec.Struct, frozen=True, kw_only=True):
    """What an import wrote."""

    tenants: int
    api_keys: int


async def export_tenants(store: TenantStore, clock: Clock) -> Export:
    """Every tenant in the admin's index, oldest first, with its keys.

    Tenants created before the index existed are listed by ``tenants reindex`` first.
    """
    tenants: list[ExportedTenant] = []
    after: str | None = None
    while True:
        page, after = await store.page(after, _PAGE)
        for tenant in page:
            api_keys = [
                ExportedKey(id=k.id, prefix=k.prefix, digest=k.digest, created_at=k.created_at)
                for k in await store.list_keys(tenant.id)
            ]
            tenants.append(
                ExportedTenant(
                    id=tenant.id,
                    name=tenant.name,
                    settings=tenant.settings,
                    created_at=tenant.created_at,
                    updated_at=tenant.updated_at,
                    api_keys=api_keys,
                )
            )
        if after is None:
            break
    return Export(
        format=EXPORT_FORMAT,
        version=EXPORT_VERSION,
        exported_at=rfc3339(clock.now_ms()),
        tenants=tenants,
    )


def read_export(raw: bytes) -> Export:
    """Read a document, checking its format and version before its contents.

    Raises:
        ExportRefused: not JSON, another format or version, or contents that do not fit.
    """
    try:
        head = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ExportRefused(f"the input is not JSON ({exc})") from exc
    if not isinstance(head, dict) or head.get("format") != EXPORT_FORMAT:
        raise ExportRefused(f'the input is not an {EXPORT_FORMAT} document ("format" differs)')
    if head.get("version") != EXPORT_VERSION:
        raise ExportRefused(
            f"the export is version {head.get('version')!r}; this otp-service reads version"
            f" {EXPORT_VERSION} only"
        )
    try:
        return msgspec.convert(head, Export)
    except msgspec.ValidationError as exc:
        raise ExportRefused(f"the export is invalid: {exc}") from exc


async def import_tenants(store: TenantStore, export: Export, *, replace: bool) -> Imported:
    """Write every tenant of ``export`` with its keys, each tenant atomically.

    Without ``replace``, tenants that already exist are looked for first and the import is
    refused before anything is written; one created in the meantime is still never
    overwritten (the write itself refuses), and the import stops there.

    Raises:
        ExportRefused: a tenant exists and ``replace`` is off.
    """
    if not replace:
        present = [t.id for t in export.tenants if await store.exists(t.id)]
        if present:
            named = ", ".join(present[:_NAMED]) + (", ..." if len(present) > _NAMED else "")
            which = (
                "1 tenant already exists"
                if len(present) == 1
                else f"{len(present)} tenants already exist"
            )
            raise ExportRefused(
                f"{which} ({named}); nothing was imported; pass --replace to overwrite"
            )
    keys_written = 0
    for number, exported in enumerate(export.tenants):
        tenant = Tenant(
            id=exported.id,
            name=exported.name,
            settings=exported.settings,
            created_at=exported.created_at,
            updated_at=exported.updated_at,
        )
        api_keys = [
            ApiKey(
                id=k.id,
                tenant_id=exported.id,
                prefix=k.prefix,
                digest=k.digest,
                created_at=k.created_at,
            )
            for k in exported.api_keys
        ]
        if not await store.put(tenant, api_keys, replace=replace):
            raise ExportRefused(
                f"tenant {exported.id} was created meanwhile; imported {number} tenants before"
                " it, pass --replace to overwrite"
            )
        keys_written += len(api_keys)
    return Imported(tenants=len(export.tenants), api_keys=keys_written)
