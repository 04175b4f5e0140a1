"""Telnyx webhooks: check the signature, apply delivery receipts and opt-out keywords.

Telnyx sends events more than once and out of order, and may report on a message before
its send call has answered. Applying a receipt never moves a message back from a final
status, and the fallback it asks for is one job per message, so handling a receipt twice
changes nothing. A receipt, its ``message.status`` event and its fallback job are written
in one script; a receipt for a message not recorded yet is kept and applied when the
message is. The heavy part (a re-send) is queued, so the handler answers within Telnyx's 2 s.

An inbound STOP (or another of Telnyx's opt-out keywords, ``core.keywords``) is recorded in
the scope of the messaging profile it arrived on, where Telnyx creates its block rule too,
so every tenant sending through that profile refuses the number before asking Telnyx; START
lifts it. An inbound without a profile cannot be tied to any tenant and is left alone.
"""

from __future__ import annotations

import logging
import random
from typing import Final

from otp_service.adapters.redis_optouts import OptOut, OptOutStore, profile_scope
from otp_service.adapters.redis_verifications import ReceiptOutcome, VerificationStore
from otp_service.adapters.telnyx_webhook import (
    DeliveryEvent,
    InboundEvent,
    parse_event,
    verify_signature,
)
from otp_service.clock import Clock
from otp_service.core import phone
from otp_service.core.ids import new_id
from otp_service.core.keywords import keyword_of
from otp_service.errors import InvalidSignature
from otp_service.metrics import Metrics

log = logging.getLogger("otp_service.usecases.receipts")

_INBOUND: Final = "message.received"


class TelnyxWebhooks:
    """Handles ``POST /webhooks/telnyx``."""

    def __init__(
        self,
        *,
        store: VerificationStore,
        optouts: OptOutStore,
        public_key: bytes,
        clock: Clock,
        rng: random.Random,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._optouts = optouts
        self._public_key = public_key
        self._clock = clock
        self._rng = rng
        self._metrics = metrics

    async def handle(self, *, timestamp: str | None, signature: str | None, body: bytes) -> None:
        """Verify and apply one webhook; every correctly signed event is accepted.

        Raises:
            InvalidSignature: missing or wrong signature, or a timestamp over 300 s away.
        """
        try:
            verify_signature(
                self._public_key,
                timestamp=timestamp,
                signature=signature,
                body=body,
                now=self._clock.now_ms() / 1000,
            )
        except InvalidSignature:
            self._metrics.otp_webhook_signature_failures_total.inc()
            raise
        event = parse_event(body)
        if isinstance(event, InboundEvent):
            await self._inbound(event)
            return
        if not isinstance(event, DeliveryEvent):
            self._count("other", "ignored")
            return
        outcome = await self.apply(event.message_id, event.status, event.error_codes)
        self._count(event.event_type, outcome)

    async def apply(
        self, message_id: str, status: str, error_codes: tuple[str, ...]
    ) -> ReceiptOutcome:
        """Apply a delivery receipt: Telnyx's, or one the sandbox plays for a sandbox number."""
        outcome = await self._store.apply_receipt(
            message_id, status, error_codes, self._clock.now_ms(), new_id("evt", self._rng)
        )
        self._metrics.count_receipt(status, error_codes)
        if log.isEnabledFor(logging.INFO):
            fields = {"message": message_id, "status": status, "outcome": outcome}
            log.info("receipt", extra={"fields": fields})
        return outcome

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
            log.info(
                "inbound", extra={"fields": {"outcome": "help", "from": sender, "profile": profile}}
            )
            self._count(_INBOUND, "help")
            return
        e164 = phone.valid_e164(event.from_number)
        if profile is None or e164 is None:
            unattributed = {"keyword": keyword, "from": sender, "profile": profile}
            log.warning("inbound unattributed", extra={"fields": unattributed})
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
        log.info(
            "inbound", extra={"fields": {"outcome": outcome, "from": sender, "profile": profile}}
        )
        self._count(_INBOUND, outcome)

    def _count(self, event_type: str, outcome: str) -> None:
        self._metrics.otp_webhooks_total.labels(event_type=event_type, outcome=outcome).inc()
