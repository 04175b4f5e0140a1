"""Telnyx webhooks: check the signature, apply delivery receipts, and ask for fallbacks.

Telnyx sends events more than once and out of order. Applying a receipt never moves a
message back from a final status, and a fallback is claimed once per failed message by the
worker, so handling an event twice changes nothing. The event id is remembered only after
the event was fully handled: a crash half-way leaves Telnyx's retry to finish the job.
The heavy part (a re-send) is queued, so the handler answers within Telnyx's 2 s.
"""

from __future__ import annotations

import logging
from typing import Final

from otp_service.adapters.redis_queue import FallbackJob, FallbackQueue
from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.adapters.telnyx_webhook import DeliveryEvent, parse_event, verify_signature
from otp_service.clock import Clock
from otp_service.metrics import Metrics

log = logging.getLogger("otp_service.receipts")

UNDELIVERED: Final = frozenset({"sending_failed", "delivery_failed", "expired"})
"""Final statuses after which the next sender is tried."""


class TelnyxWebhooks:
    """Handles ``POST /webhooks/telnyx``."""

    def __init__(
        self,
        *,
        store: VerificationStore,
        queue: FallbackQueue,
        public_key: bytes,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._queue = queue
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
        await self._store.mark_event_seen(event.event_id)
        outcome = "unknown" if receipt is None else "updated" if receipt.updated else "unchanged"
        log.info("receipt message=%s status=%s outcome=%s", event.message_id, event.status, outcome)
        self._count(event.event_type, outcome)

    def _count(self, event_type: str, outcome: str) -> None:
        self._metrics.otp_webhooks_total.labels(event_type=event_type, outcome=outcome).inc()
