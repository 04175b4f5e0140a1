"""Getting a code to the phone: walk the destination's sender chain until one sender takes it.

Each attempt is recorded in the verification's ``messages`` before the next one is made.
How a refusal is met comes from one table (``core.telnyx_errors``): an error another sender
could avoid moves on to the next sender; an opt-out (40300) stops at once and is recorded,
so that no other sender of the profile tries either; an error every sender would meet
stops too. A Telnyx that could not be reached moves on only when the request provably
never left; after a timeout the SMS may be on its way, and a second sender would send a
second code. When the chain is used up, the verification fails (for a start or a
fallback; a refused resend leaves a verification whose earlier codes still work).

A tenant's sandbox number has one sender, the sandbox carrier (``usecases/sandbox.py``),
which answers in Telnyx's stead; the rest of the walk is the same.
"""

from __future__ import annotations

import logging
import random
import time

from otp_service.adapters.redis_optouts import OptOut, OptOutStore, profile_scope
from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.adapters.redis_work import SandboxReceiptJob
from otp_service.adapters.telnyx import OutboundSms, SentMessage, TelnyxClient
from otp_service.clock import Clock
from otp_service.core import phone, senders, sms
from otp_service.core.ids import new_id
from otp_service.core.model import Message, Sender, Tenant, Verification, VerificationStatus
from otp_service.core.telnyx_errors import Reaction, reaction_to
from otp_service.errors import ProviderError, ProviderUnavailable, RecipientOptedOut
from otp_service.metrics import Metrics
from otp_service.usecases.sandbox import SandboxCarrier

log = logging.getLogger("otp_service.usecases.delivery")


def opt_out_scope(tenant: Tenant) -> str:
    """Opt-outs belong to the messaging profile (Telnyx's scope), else to the tenant alone."""
    profile = tenant.settings.messaging_profile_id
    return profile_scope(profile) if profile else f"tenant:{tenant.id}"


class Delivery:
    """Sends a verification's code through its sender chain, recording every attempt."""

    def __init__(
        self,
        *,
        store: VerificationStore,
        optouts: OptOutStore,
        telnyx: TelnyxClient,
        sandbox: SandboxCarrier,
        clock: Clock,
        rng: random.Random,
        metrics: Metrics,
        webhook_url: str | None,
    ) -> None:
        self._store = store
        self._optouts = optouts
        self._telnyx = telnyx
        self._sandbox = sandbox
        self._clock = clock
        self._rng = rng
        self._metrics = metrics
        self._webhook_url = webhook_url

    async def send(
        self,
        tenant: Tenant,
        verification: Verification,
        code: str,
        *,
        first_position: int,
        fail_when_exhausted: bool,
    ) -> Message:
        """Send ``code`` through the chain from ``first_position`` on; return the message sent.

        Raises:
            RecipientOptedOut: Telnyx answered 40300 (the opt-out is recorded).
            ProviderError: every remaining sender refused, or one refused for a reason no
                sender can avoid.
            ProviderUnavailable: Telnyx could not be reached by any remaining sender, or
                timed out after the request left (the SMS may still arrive).
        """
        chain = senders.route(tenant.settings, verification.phone_number, verification.country)
        text = sms.render_text(
            code,
            brand=verification.brand or tenant.settings.brand or tenant.name,
            locale=verification.locale,
            domain=tenant.settings.webotp_domain,
        )
        refused: ProviderError | None = None
        for position in range(first_position, len(chain)):
            sender = chain[position]
            last = position == len(chain) - 1
            try:
                sent, receipts = await self._transmit(tenant, verification, sender, text)
            except (ProviderError, ProviderUnavailable) as exc:
                failure = exc
            else:
                return await self._record(
                    tenant,
                    verification,
                    position=position,
                    sender=sender,
                    sent=sent,
                    failure=None,
                    fail=False,
                    receipts=receipts,
                )
            if isinstance(failure, ProviderError):
                reaction = reaction_to(failure.error_codes)
                ends = reaction is not Reaction.NEXT_SENDER or last
                fail = ends and fail_when_exhausted
            else:
                reaction = None
                ends = failure.maybe_sent or last
                fail = ends and fail_when_exhausted and not failure.maybe_sent
            await self._record(
                tenant,
                verification,
                position=position,
                sender=sender,
                sent=None,
                failure=failure,
                fail=fail,
            )
            if reaction is Reaction.OPTED_OUT:
                await self._opted_out(tenant, verification)
                raise RecipientOptedOut(
                    "the recipient has opted out of messages from this sender"
                ) from failure
            if isinstance(failure, ProviderError):
                refused = ProviderError(
                    "Telnyx refused to send the code",
                    error_codes=failure.error_codes,
                    verification_id=verification.id,
                )
                if ends:
                    raise refused from failure
            elif ends:
                raise ProviderUnavailable(
                    failure.detail, maybe_sent=failure.maybe_sent, verification_id=verification.id
                ) from failure
        if fail_when_exhausted:
            await self._fail(verification)
        raise refused or ProviderError("no sender is left to try", verification_id=verification.id)

    async def _fail(self, verification: Verification) -> None:
        """End the verification as failed, counting its end if this call ended it."""
        if await self._store.fail(verification, self._clock.now_ms(), new_id("evt", self._rng)):
            self._metrics.count_ended(VerificationStatus.FAILED)

    async def _transmit(
        self, tenant: Tenant, verification: Verification, sender: Sender, text: str
    ) -> tuple[SentMessage, SandboxReceiptJob | None]:
        """Hand one SMS to Telnyx, or to the sandbox carrier when the number is a sandbox one.

        The check is on the number itself, not on the sender: a listed number never
        reaches Telnyx, whatever chain a send was planned with.
        """
        script = tenant.settings.sandbox_numbers.get(verification.phone_number)
        if script is not None:
            return self._sandbox.send(script)
        sms = OutboundSms(
            sender=sender,
            to=verification.phone_number,
            text=text,
            messaging_profile_id=tenant.settings.messaging_profile_id,
            webhook_url=self._webhook_url,
        )
        start = time.perf_counter()
        outcome = "unavailable"
        try:
            sent = await self._telnyx.send(sms)
            outcome = "sent"
        except ProviderError:
            outcome = "rejected"
            raise
        finally:
            self._metrics.observe_telnyx(sender.type.value, outcome, time.perf_counter() - start)
        return sent, None

    async def _record(
        self,
        tenant: Tenant,
        verification: Verification,
        *,
        position: int,
        sender: Sender,
        sent: SentMessage | None,
        failure: ProviderError | ProviderUnavailable | None,
        fail: bool,
        receipts: SandboxReceiptJob | None = None,
    ) -> Message:
        now = self._clock.now_ms()
        message = Message(
            id=sent.id if sent else None,
            position=position,
            sender_type=sender.type,
            from_=sender.from_,
            status=sent.status if sent else "sending_failed",
            error_codes=list(failure.error_codes) if isinstance(failure, ProviderError) else [],
            created_at=now,
            updated_at=now,
        )
        timeout = tenant.settings.delivery_timeout_seconds
        ended = await self._store.record_send(
            verification,
            message,
            fail=fail,
            now_ms=now,
            event_id=new_id("evt", self._rng),
            silence_ms=None if timeout is None else timeout * 1000,
            sandbox_receipts=receipts,
        )
        outcome = (
            "sent"
            if failure is None
            else "rejected"
            if isinstance(failure, ProviderError)
            else "unavailable"
        )
        self._metrics.count_send(verification.country, sender.type.value, outcome)
        if ended:
            self._metrics.count_ended(VerificationStatus.FAILED)
        if log.isEnabledFor(logging.INFO):
            fields = {
                "tenant": tenant.id,
                "verification": verification.id,
                "to": phone.mask(verification.phone_number),
                "sender": sender.type.value,
                "position": position,
                "outcome": outcome,
                "telnyx_errors": ",".join(message.error_codes),
            }
            log.info("send", extra={"fields": fields})
        return message

    async def _opted_out(self, tenant: Tenant, verification: Verification) -> None:
        await self._optouts.record(
            opt_out_scope(tenant),
            verification.phone_number,
            OptOut(since=self._clock.now_ms(), source="carrier"),
        )
