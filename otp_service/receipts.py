"""Telnyx webhooks: check the signature, then apply delivery receipts to their messages.

Telnyx sends events more than once and out of order. An event id is claimed before it is
applied and released if applying fails (so Telnyx's retry is not lost); the status update
itself never moves a message back from a final status, so a replay changes nothing.
"""

from __future__ import annotations

import logging

from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.adapters.telnyx_webhook import DeliveryEvent, parse_event, verify_signature
from otp_service.clock import Clock
from otp_service.metrics import Metrics

log = logging.getLogger("otp_service.receipts")


class TelnyxWebhooks:
    """Handles ``POST /webhooks/telnyx``."""

    def __init__(
        self, *, store: VerificationStore, public_key: bytes, clock: Clock, metrics: Metrics
    ) -> None:
        self._store = store
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
        if not await self._store.claim_event(event.event_id):
            self._count(event.event_type, "duplicate")
            return
        try:
            outcome = await self._store.apply_receipt(
                event.message_id, event.status, event.error_codes, self._clock.now_ms()
            )
        except BaseException:
            await self._store.release_event(event.event_id)
            raise
        log.info("receipt message=%s status=%s outcome=%s", event.message_id, event.status, outcome)
        self._count(event.event_type, outcome)

    def _count(self, event_type: str, outcome: str) -> None:
        self._metrics.otp_webhooks_total.labels(event_type=event_type, outcome=outcome).inc()
