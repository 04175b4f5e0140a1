"""Fallback: re-send a verification through its next sender, as a background job.

Jobs come from delivery receipts that report a failure and from silence timers (no receipt
within the tenant's ``delivery_timeout_seconds``); the script that records the receipt or
the message queues the job in the tenant's outbox, so a restart between the webhook and
the re-send loses nothing. There is one job per message: a duplicate receipt, or a failure
reported while the silence timer waits, rewrites the same job. Each fallback carries a new
code (hashes only are stored, so the first code cannot be sent again) and every earlier
code keeps working. A job for a message that is no longer the latest, or a verification no
longer pending, does nothing. A worker that dies mid-send leaves its job to be taken again
when its lease runs out; the claim then finds the failed message still the latest (the send
was never recorded) and sends, so the fallback is not lost. Only a reported failure can end
a verification as ``failed``: silence cannot, since some carriers never send receipts and
the SMS may have arrived. Nor can a failure while an earlier SMS of the verification was
delivered or may still arrive (``failed`` means no sender could deliver, API.md): its code
must keep working until the verification ends.
"""

from __future__ import annotations

import logging
import random
from typing import Final

from otp_service.adapters.redis_tenants import TenantStore
from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.adapters.redis_work import FallbackJob
from otp_service.clock import Clock
from otp_service.core.codes import generate_code
from otp_service.core.model import VerificationStatus
from otp_service.core.senders import route
from otp_service.errors import OtpError, StoreUnavailable
from otp_service.hashing_pool import HashingPool
from otp_service.usecases.delivery import Delivery

log = logging.getLogger("otp_service.usecases.fallback")

MAY_ARRIVE: Final = frozenset({"queued", "sending", "sent", "delivery_unconfirmed", "delivered"})
"""Statuses of an SMS that reached the phone or still may (``IN_FLIGHT`` in _lib.lua, and
``delivered``)."""


class Fallbacks:
    """Handles fallback jobs."""

    def __init__(
        self,
        *,
        store: VerificationStore,
        tenants: TenantStore,
        delivery: Delivery,
        hashing: HashingPool,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._delivery = delivery
        self._hashing = hashing
        self._clock = clock
        self._rng = rng

    async def handle(self, tenant_id: str, job: FallbackJob) -> None:
        """Re-send the job's verification through the sender after the one that failed."""
        tenant = await self._tenants.get(tenant_id)
        if tenant is None:
            return
        verification = await self._store.get(tenant_id, job.verification_id)
        if verification is None or verification.status is not VerificationStatus.PENDING:
            return
        silent = job.reason == "silent"
        chain = route(tenant.settings, verification.phone_number, verification.country)
        latest = verification.messages[-1] if verification.messages else None
        earlier_may_arrive = any(m.status in MAY_ARRIVE for m in verification.messages[:-1])
        if silent and (latest is None or latest.position + 1 >= len(chain)):
            return  # silence with no sender left: the SMS may well have arrived
        code = generate_code(self._rng, verification.code_length)
        code_hash = await self._hashing.hash(verification.id, code)
        position = await self._store.fallback_claim(
            verification,
            message_id=job.message_id,
            reason=job.reason,
            code_hash=code_hash,
            now_ms=self._clock.now_ms(),
        )
        if position is None:
            return
        fields = {"verification": verification.id, "message": job.message_id, "reason": job.reason}
        log.info("fallback", extra={"fields": fields})
        try:
            await self._delivery.send(
                tenant,
                verification,
                code,
                first_position=position + 1,
                fail_when_exhausted=not silent and not earlier_may_arrive,
            )
        except OtpError as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            ended = {"verification": verification.id, "code": exc.code}
            log.info("fallback ended", extra={"fields": ended})
