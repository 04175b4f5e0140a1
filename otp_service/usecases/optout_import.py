"""Importing Telnyx's own opt-out list (``otp-service optouts sync``).

Telnyx keeps a block rule for every STOP it saw, including those that came before this
service was listening or while its webhook was down. Importing them lets a start refuse
those numbers itself instead of learning each one from a 40300 refusal. Each rule is
recorded in the scope of its messaging profile, as an inbound STOP would be; a rule
without a profile cannot be tied to any tenant and is skipped.

The list is read page by page (Telnyx pages by offset), so a rule added during the run may
be read twice or, if rules before it are lifted meanwhile, missed until the next run;
recording is idempotent, so running the import again is always safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from otp_service.adapters.redis_optouts import OptOut, OptOutStore, profile_scope
from otp_service.adapters.telnyx import ListedOptOut, TelnyxClient
from otp_service.clock import Clock
from otp_service.core import phone

MAX_PAGE_SIZE: Final = 250
"""The largest ``page[size]`` Telnyx accepts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportSummary:
    """What an import did: rules recorded (``new`` of them unknown before), skipped, pages."""

    imported: int
    new: int
    skipped: int
    pages: int


async def import_opt_outs(
    telnyx: TelnyxClient,
    store: OptOutStore,
    *,
    clock: Clock,
    messaging_profile_id: str | None,
    page_size: int = MAX_PAGE_SIZE,
) -> ImportSummary:
    """Record every opt-out Telnyx lists (one profile's only, if given) with source ``import``.

    A number that had opted out here already keeps its first record.

    Raises:
        ProviderError, ProviderUnavailable: Telnyx refused or failed a page; the pages
            before it are recorded.
        StoreUnavailable: Redis could not be reached.
    """
    imported = new = skipped = pages = 0
    page_number = 1
    while True:
        page = await telnyx.list_opt_outs(
            page=page_number, size=page_size, messaging_profile_id=messaging_profile_id
        )
        pages += 1
        for item in page.items:
            target = _target(item)
            if target is None:
                skipped += 1
                continue
            scope, e164 = target
            opt_out = OptOut(since=_since(item, clock), source="import")
            if await store.record(scope, e164, opt_out):
                new += 1
            imported += 1
        if not page.items or page_number >= page.total_pages:
            return ImportSummary(imported=imported, new=new, skipped=skipped, pages=pages)
        page_number += 1


def _target(item: ListedOptOut) -> tuple[str, str] | None:
    """The scope and E.164 number to record a rule under; ``None`` when it has none.

    The number must be valid as a start would store it: a redacted ``to`` (``+447766****``)
    or a short code is never looked up, so recording it would only clutter the listing.
    """
    if item.messaging_profile_id is None:
        return None
    e164 = phone.valid_e164(item.to)
    return None if e164 is None else (profile_scope(item.messaging_profile_id), e164)


def _since(item: ListedOptOut, clock: Clock) -> int:
    """When the number opted out at Telnyx, in epoch ms; now when Telnyx does not say."""
    if item.created_at is None:
        return clock.now_ms()
    try:
        moment = datetime.fromisoformat(item.created_at)
    except ValueError:
        return clock.now_ms()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
