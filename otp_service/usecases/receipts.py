"""Telnyx webhooks: check the signature, apply delivery receipts and opt-out keywords.

Telnyx sends events more than once and out of order. Applying a receipt never moves a
message back from a final status, and a fallback is claimed once per failed message by the
worker, so handling an event twice changes nothing. The event id is remembered only after
the event was fully handled: a crash half-way leaves Telnyx's retry to finish the job.
The heavy part (a re-send) is queued, so the handler answers within Telnyx's 2 s.

An inbound STOP (or another of Telnyx's opt-out keywords, ``core.keywords``) is recorded in
the scope of the messaging profile it arrived on, where Telnyx creates its block rule too,
so every tenant sending through that profile refuses the number before asking Telnyx; START
lifts it. An inbound without a profile cannot be tied to any tenant and is left alone.
"""

from __future__ import annotations

import logging
from typing import Final

from otp_service.adapters.redis_optouts import OptOut, OptOutStore, profile_scope
from otp_service.adapters.redis_queue import FallbackJob, FallbackQueue
from otp_service.adapters.redis_tenants import TenantStore
from otp_service.adapters.redis_verifications import Receipt, VerificationStore
from otp_service.adapters.telnyx_webhook import (
    DeliveryEvent,
    InboundEvent,
    parse_event,
    verify_signature,
)
from otp_service.clock import Clock
from otp_service.core import phone
from otp_service.core.keywords import keyword_of
from otp_service.metrics import Metrics
from otp_service.usecases.events import TenantEvents

log = logging.getLogger("otp_service.usecases.receipts")

UNDELIVERED: Final = frozenset({"sending_failed", "delivery_failed", "expired"})
"""Final statuses after which the next sender is tried."""

_INBOUND: Final = "message.received"


class TelnyxWebhooks:
    """Handles ``POST /webhooks/telnyx``."""

    def __init__(
        self,
        *,
        store: VerificationStore,
        queue: FallbackQueue,
        optouts: OptOutStore,
        tenants: TenantStore,
        events: TenantEvents,
        public_key: bytes,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._events = events
        self._queue = queue
        self._optouts = optouts
        self._public_key = public_key
        self._clock = clock
        self._metrics = metrics

    async def handle(self, *, timestamp: str | None, signature: str | None, body: bytes) -> None:
        """Verify and apply one webhook; every correctly signed event is accepted.

        Raises:
            InvalidSignature: missing or wrong signature, or a timestamp over 300 s away.
        """
        verify_signature(
            self._public_key,
            timestamp=timestamp,
            signature=signature,
            body=body,
            now=self._clock.now_ms() / 1000,
        )
        event = parse_event(body)
        if isinstance(event, InboundEvent):
            await self._inbound(event)
            return
        if not isinstance(event, DeliveryEvent):
            self._count("other", "ignored")
            return
        if await self._store.event_seen(event.event_id):
            self._count(event.event_type, "duplicate")
            return
        receipt = await self._store.apply_receipt(
            event.message_id, event.status, event.error_codes, self._clock.now_ms()
        )
        if receipt is not None and event.status in UNDELIVERED:
            await self._queue.enqueue(
                FallbackJob(
                    tenant_id=receipt.tenant_id,
                    verification_id=receipt.verification_id,
                    message_id=event.message_id,
                    reason="failed",
                )
            )
        if receipt is not None and receipt.updated:
            await self._report_status(receipt)
        await self._store.mark_event_seen(event.event_id)
        outcome = "unknown" if receipt is None else "updated" if receipt.updated else "unchanged"
        log.info("receipt message=%s status=%s outcome=%s", event.message_id, event.status, outcome)
        self._count(event.event_type, outcome)

    async def _report_status(self, receipt: Receipt) -> None:
        """Tell the tenant (``message.status``) that a message of its verification changed."""
        tenant = await self._tenants.get(receipt.tenant_id)
        if tenant is None or tenant.settings.events_webhook_url is None:
            return
        verification = await self._store.get(receipt.tenant_id, receipt.verification_id)
        if verification is not None:
            await self._events.emit(tenant, "message.status", verification)

    async def _inbound(self, event: InboundEvent) -> None:
        """Apply an opt-out keyword; count (and otherwise ignore) every other inbound text.

        Outcomes: ``opted_out``, ``opted_in``, ``help``, ``ignored`` (no keyword),
        ``unattributed`` (no profile, or a sender that is no valid number) and ``duplicate``.
        A duplicate is skipped so that a STOP delivered again after a START does not undo it.
        """
        keyword = keyword_of(event.text)
        if keyword is None:
            self._count(_INBOUND, "ignored")
            return
        sender = phone.mask(event.from_number)
        profile = event.messaging_profile_id
        if keyword == "help":
            log.info("inbound HELP from=%s profile=%s", sender, profile)
            self._count(_INBOUND, "help")
            return
        e164 = phone.valid_e164(event.from_number)
        if profile is None or e164 is None:
            log.warning(
                "inbound %s from=%s profile=%s: cannot be attributed", keyword, sender, profile
            )
            self._count(_INBOUND, "unattributed")
            return
        if await self._store.event_seen(event.event_id):
            self._count(_INBOUND, "duplicate")
            return
        scope = profile_scope(profile)
        if keyword == "opt_out":
            opt_out = OptOut(since=self._clock.now_ms(), source="keyword")
            await self._optouts.record(scope, e164, opt_out)
            outcome = "opted_out"
        else:
            await self._optouts.remove(scope, e164)
            outcome = "opted_in"
        await self._store.mark_event_seen(event.event_id)
        log.info("inbound %s from=%s profile=%s", outcome, sender, profile)
        self._count(_INBOUND, outcome)

    def _count(self, event_type: str, outcome: str) -> None:
        self._metrics.otp_webhooks_total.labels(event_type=event_type, outcome=outcome).inc()
