"""The sandbox carrier: plays Telnyx for a tenant's sandbox numbers (``core/sandbox.py``).

A send to a sandbox number is answered here, never by Telnyx: refused at once with 40300
(``opted_out``), or taken with an ``sbx_`` message id. The receipts its script calls for are
queued in the tenant's outbox by the same script that records the message, and the worker
reports each when it falls due through ``TelnyxWebhooks.apply``, the path of Telnyx's own
receipts: fallback, silence timers, ``message.status`` events and stats cannot tell the
difference. Being jobs, they survive a restart, and a delay follows the service's clock.
"""

from __future__ import annotations

import random

import msgspec

from otp_service.adapters.redis_work import Job, SandboxReceiptJob
from otp_service.adapters.telnyx import SentMessage
from otp_service.clock import Clock
from otp_service.core import sandbox
from otp_service.core.ids import new_id
from otp_service.core.sandbox import SandboxScript
from otp_service.errors import ProviderError
from otp_service.usecases.receipts import TelnyxWebhooks


class SandboxCarrier:
    """Takes the sends to sandbox numbers and reports their scripted receipts."""

    def __init__(self, *, receipts: TelnyxWebhooks, clock: Clock, rng: random.Random) -> None:
        self._receipts = receipts
        self._clock = clock
        self._rng = rng

    def send(self, script: SandboxScript) -> tuple[SentMessage, SandboxReceiptJob | None]:
        """Take a send as its script says; return the message and its receipts job, if any.

        Raises:
            ProviderError: the number is scripted ``opted_out`` (Telnyx's 40300).
        """
        refused = sandbox.refusal(script)
        if refused:
            raise ProviderError(
                "the sandbox number is scripted as opted out (Telnyx 40300)", error_codes=refused
            )
        message_id = new_id("sbx", self._rng)
        receipts = sandbox.receipts(script, self._clock.now_ms())
        job = SandboxReceiptJob(message_id=message_id, receipts=receipts) if receipts else None
        return SentMessage(id=message_id, status="queued"), job

    async def report(self, job: SandboxReceiptJob) -> tuple[Job, int] | None:
        """Apply the job's receipts that are due, in order; return the rest and when."""
        now = self._clock.now_ms()
        due = 0
        while due < len(job.receipts) and job.receipts[due].due <= now:
            receipt = job.receipts[due]
            await self._receipts.apply(job.message_id, receipt.status, tuple(receipt.error_codes))
            due += 1
        rest = job.receipts[due:]
        if not rest:
            return None
        return msgspec.structs.replace(job, receipts=rest), rest[0].due
