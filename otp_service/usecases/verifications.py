"""Use cases of the tenant API: start (and resend), check, read and cancel a verification.

Resends keep every code that was sent. Each SMS of a verification carries its own random
code and the verification keeps the argon2 hash of each (at most ``max_sends``), so a late
SMS still works and a check costs one argon2 run per code sent until one matches. The
alternative, re-deriving one code from the server secret, would make the secret plus a copy
of Redis enough to read every live code; with kept hashes even both together leave a
brute-force of argon2 per code. ``check_attempts`` belongs to the verification and no
resend resets it.

A check follows the Kratos order in two scripts: ``check_begin`` takes an attempt first
(so concurrent wrong guesses cannot exceed the limit), the code is compared off the event
loop, then ``check_finish`` approves only a verification that is still pending (so of many
concurrent right codes exactly one is approved). A check refused because every attempt is
taken by checks still comparing waits (briefly) for them to decide, so it reports the
status they end in rather than a guess.

Abuse protection (``core/limits.py``, ``core/fraud.py``) runs inside the same scripts: a
start's script checks and counts every send limit and range block before it writes, and
returns the fraud guard's counters, which ``FraudGuard`` judges; a check's first script
checks and counts the asker's and the number's check limits before taking an attempt.

Events and expiry timers are not emitted here: the scripts that change a verification queue
them in the same step (``usecases/events.py``); the use cases only hand them event ids.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Final

import msgspec

from otp_service.adapters.redis_optouts import OptOut, OptOutStore
from otp_service.adapters.redis_verifications import (
    CheckAbandoned,
    CheckFinished,
    CheckRefused,
    Conflict,
    Created,
    Guard,
    Limited,
    Malformed,
    PendingSnapshot,
    VerificationStore,
)
from otp_service.clock import Clock
from otp_service.core import codes, fraud, limits, phone, sandbox, senders
from otp_service.core.fraud import FraudGuardMode
from otp_service.core.ids import new_id
from otp_service.core.model import (
    Tenant,
    Verification,
    VerificationStatus,
)
from otp_service.core.policy import effective_status, retry_after_seconds
from otp_service.errors import (
    DestinationNotAllowed,
    InvalidCodeFormat,
    NotFound,
    RateLimited,
    RecipientOptedOut,
    VerificationNotPending,
)
from otp_service.hashing_pool import HashingPool
from otp_service.metrics import Metrics
from otp_service.usecases.delivery import Delivery, opt_out_scope
from otp_service.usecases.fraud import FraudGuard

log = logging.getLogger("otp_service.usecases.verifications")

_START_TRIES: Final = 3
_DECIDING_WAIT_S: Final = 0.02
_DECIDING_POLLS: Final = 100
"""A check refused while others hold every attempt polls this often (2 s in all) for the end."""
_JUDGED: Final = frozenset({VerificationStatus.PENDING, VerificationStatus.MAX_ATTEMPTS_REACHED})
"""Statuses in which a wrong code is still answered 200; any other end came from elsewhere.

A right code is answered 200 only by the one check that approved the verification."""
_REFUSALS: Final = {
    "resend_cooldown": "a code was sent to this number too recently",
    "max_sends": "no more codes can be sent for this verification",
    "phone_number": "too many codes were sent to this number",
    "tenant": "the tenant's send rate is exceeded",
    "country": "the daily send budget for this country is spent",
    "prefix": "the fraud guard has blocked this number range",
}
"""The ``detail`` of a start refused by each limit (``key:<name>`` limits share one)."""


class StartRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What a tenant asks for when it starts a verification (already schema-checked)."""

    phone_number: str
    locale: str | None = None
    code_length: int | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    rate_limit_keys: dict[str, str] = msgspec.field(default_factory=dict)
    brand: str | None = None
    """Named in this verification's SMS instead of the tenant's brand."""


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a check."""

    id: str
    status: VerificationStatus
    valid: bool
    check_attempts_remaining: int


class Verifications:
    """Start, check, read and cancel verifications for one tenant at a time."""

    def __init__(
        self,
        *,
        store: VerificationStore,
        optouts: OptOutStore,
        delivery: Delivery,
        hashing: HashingPool,
        clock: Clock,
        rng: random.Random,
        metrics: Metrics,
        guard: FraudGuard,
        first_send_ms: int,
    ) -> None:
        """``first_send_ms``: the longest a start's first send can take (its Telnyx calls)."""
        self._store = store
        self._optouts = optouts
        self._delivery = delivery
        self._hashing = hashing
        self._clock = clock
        self._rng = rng
        self._metrics = metrics
        self._guard = guard
        self._first_send_ms = first_send_ms

    async def start(self, tenant: Tenant, request: StartRequest) -> tuple[Verification, bool]:
        """Start a verification, or resend the number's pending one.

        Returns the verification and whether it is new.

        Raises:
            InvalidPhoneNumber, UnsupportedNumberType, DestinationNotAllowed: before anything
                is stored or sent.
            RateLimited: a resend within the cooldown or beyond ``max_sends``, a send limit
                reached, or a range the fraud guard blocked.
            RecipientOptedOut, ProviderError, ProviderUnavailable: Telnyx did not send.
        """
        settings = tenant.settings
        number = sandbox.parse_number(request.phone_number, settings.sandbox_numbers)
        script = settings.sandbox_numbers.get(number.e164)
        if not senders.country_allowed(settings, number.country):
            raise DestinationNotAllowed(f"sending to {number.country} is not allowed")
        if script is None:  # a sandbox number plays its script whatever its type
            phone.check_number_type(number, reject_landlines=settings.reject_landlines)
        chain = senders.route(settings, number.e164, number.country)
        if not chain:
            raise DestinationNotAllowed(f"no sender is configured for {number.country}")
        if await self._optouts.get(opt_out_scope(tenant), number.e164) is not None:
            raise RecipientOptedOut("the recipient has opted out of messages from this sender")

        now = self._clock.now_ms()
        for _ in range(_START_TRIES):
            seen = await self._store.pending_snapshot(tenant.id, number.e164, now)
            fixed = script.fixed_code if script else None
            draft = self._draft(tenant, request, number, now, seen, fixed_code=fixed)
            if fixed is None or len(fixed) != draft.code_length:
                code = codes.generate_code(self._rng, draft.code_length)
            else:
                code = fixed
            code_hash = await self._hashing.hash(draft.id, code)
            event_id = new_id("evt", self._rng)
            result = await self._store.start(
                tenant_id=tenant.id,
                e164=number.e164,
                seen=seen,
                new=draft,
                code_hash=code_hash,
                resend_cooldown_ms=settings.resend_cooldown_seconds * 1000,
                first_send_ms=self._first_send_ms,
                event_id=event_id,
                guard=self._guard_for(
                    tenant,
                    request,
                    number,
                    first_sender=chain[0].type.value,
                    event_id=event_id,
                    now=now,
                ),
            )
            if isinstance(result, Limited):
                raise self._refused(result)
            if not isinstance(result, Conflict):
                break
        else:
            raise RateLimited(
                "too many concurrent starts for this number", retry_after=1, limit="phone_number"
            )

        created = isinstance(result, Created)
        if isinstance(result, Created):
            await self._guard.judge(tenant, result.stats)
        # A new verification is stored exactly as drafted; a resend changed a stored one.
        verification = draft if created else await self.get(tenant, result.id)
        await self._delivery.send(
            tenant, verification, code, first_position=0, fail_when_exhausted=created
        )
        return await self.get(tenant, result.id), created

    def _guard_for(
        self,
        tenant: Tenant,
        request: StartRequest,
        number: phone.PhoneNumber,
        *,
        first_sender: str,
        event_id: str,
        now: int,
    ) -> Guard:
        """What the start's script enforces and counts besides the verification.

        The start's event id is random and unique, so it doubles as the start's token and,
        renamed, as the id of the circuit-breaker block the start may trip.
        """
        settings = tenant.settings
        watched = settings.fraud_guard is not FraudGuardMode.OFF
        fraud_settings = settings.fraud
        return Guard(
            rules=limits.send_rules(
                settings.limits,
                e164=number.e164,
                country=number.country,
                rate_limit_keys=request.rate_limit_keys,
                now_ms=now,
            ),
            token=event_id,
            asker=limits.asker(request.rate_limit_keys),
            mode=settings.fraud_guard.value,
            prefixes=fraud.prefixes(number.e164, number.calling_code) if watched else [],
            windows_ms=(
                fraud_settings.velocity_seconds * 1000,
                fraud_settings.window_seconds * 1000,
                fraud_settings.grace_seconds * 1000,
                fraud_settings.baseline_hours * 3600 * 1000,
            ),
            country=number.country,
            sender_type=first_sender,
            breaker_id="blk_" + event_id.removeprefix("evt_"),
        )

    def _refused(self, limited: Limited) -> RateLimited:
        """The 429 for a request a limit refused, counted in ``/metrics``."""
        self._metrics.count_refusal(limited.limit)
        if limited.limit.startswith("key:"):
            detail = f"too many requests from this {limited.limit.removeprefix('key:')}"
        else:
            detail = _REFUSALS.get(limited.limit, "a limit was reached")
        return RateLimited(
            detail, retry_after=retry_after_seconds(limited.retry_after_ms), limit=limited.limit
        )

    def _draft(
        self,
        tenant: Tenant,
        request: StartRequest,
        number: phone.PhoneNumber,
        now: int,
        seen: PendingSnapshot | None,
        *,
        fixed_code: str | None,
    ) -> Verification:
        """The verification a start would create (or the pending one it would resend).

        A sandbox number's fixed code sets the length of a new verification's codes.
        """
        settings = tenant.settings
        if seen is not None and seen.live:
            ident, length = seen.id, seen.code_length
        else:
            length = len(fixed_code) if fixed_code else request.code_length or settings.code_length
            ident = new_id("ver", self._rng)
        return Verification(
            id=ident,
            tenant_id=tenant.id,
            status=VerificationStatus.PENDING,
            phone_number=number.e164,
            country=number.country,
            locale=request.locale,
            code_length=length,
            created_at=now,
            expires_at=now + settings.code_ttl_seconds * 1000,
            ended_at=None,
            send_count=1,
            max_sends=settings.max_sends,
            next_send_at=now + settings.resend_cooldown_seconds * 1000,
            check_attempts=0,
            max_check_attempts=settings.max_check_attempts,
            messages=[],
            metadata=request.metadata,
            brand=request.brand,
        )

    async def opt_out(self, tenant: Tenant, phone_number: str) -> tuple[str, OptOut | None]:
        """Return the number (E.164) and its opt-out from the tenant's messaging profile.

        Raises:
            InvalidPhoneNumber: a malformed number.
        """
        number = sandbox.parse_number(phone_number, tenant.settings.sandbox_numbers)
        return number.e164, await self._optouts.get(opt_out_scope(tenant), number.e164)

    async def get(self, tenant: Tenant, verification_id: str) -> Verification:
        """Return one of the tenant's verifications.

        Raises:
            NotFound: none with this id, or another tenant's.
        """
        verification = await self._store.get(tenant.id, verification_id)
        if verification is None:
            raise NotFound("no such verification", "verification_not_found")
        status = effective_status(verification, self._clock.now_ms())
        if status is not verification.status:
            verification.status = status
            verification.ended_at = verification.expires_at
        return verification

    async def check(
        self,
        tenant: Tenant,
        verification_id: str,
        code: str,
        rate_limit_keys: dict[str, str] | None = None,
    ) -> CheckResult:
        """Check a submitted code against the verification.

        Raises:
            NotFound: no such verification.
            VerificationNotPending: it has ended (including by a concurrent right code).
            InvalidCodeFormat: not exactly the verification's number of digits; no attempt
                is used.
            RateLimited: the asker's check limits, or the number's streak of wrong codes;
                no attempt is used.
        """
        submitted = len(code) if codes.is_well_formed(code, len(code)) else -1
        begun = await self._store.check_begin(
            tenant.id,
            verification_id,
            code_length=submitted,
            now_ms=self._clock.now_ms(),
            rules=limits.check_rules(tenant.settings.limits, rate_limit_keys=rate_limit_keys or {}),
            token=new_id("tok", self._rng),
        )
        if begun is None:
            raise NotFound("no such verification", "verification_not_found")
        if isinstance(begun, Limited):
            self._metrics.otp_checks_total.labels(outcome="rate_limited").inc()
            raise self._refused(begun)
        if isinstance(begun, Malformed):
            raise InvalidCodeFormat(f"code must be exactly {begun.code_length} digits (0-9)")
        if isinstance(begun, CheckAbandoned):
            abandoned = await self._store.check_finish(
                tenant.id,
                verification_id,
                phone_number=begun.phone_number,
                attempt=begun.attempt,
                approve=False,
                now_ms=self._clock.now_ms(),
                event_id=new_id("evt", self._rng),
                conversion_window_ms=tenant.settings.fraud.window_seconds * 1000,
            )
            self._count_if_ended(abandoned)
            self._metrics.otp_checks_total.labels(outcome="not_pending").inc()
            raise self._not_pending(
                abandoned.status if abandoned else VerificationStatus.MAX_ATTEMPTS_REACHED
            )
        if isinstance(begun, CheckRefused):
            self._metrics.otp_checks_total.labels(outcome="not_pending").inc()
            status = begun.status
            if begun.deciding:
                status = await self._decided_status(tenant.id, verification_id)
            raise self._not_pending(status)
        valid = await self._hashing.matches_any(verification_id, code, begun.hashes)
        finished = await self._store.check_finish(
            tenant.id,
            verification_id,
            phone_number=begun.phone_number,
            attempt=begun.attempts,
            approve=valid,
            now_ms=self._clock.now_ms(),
            event_id=new_id("evt", self._rng),
            conversion_window_ms=tenant.settings.fraud.window_seconds * 1000,
        )
        if finished is None:
            raise NotFound("no such verification", "verification_not_found")
        self._count_if_ended(finished)
        ended_elsewhere = not finished.ended_now and (valid or finished.status not in _JUDGED)
        if ended_elsewhere:
            self._metrics.otp_checks_total.labels(outcome="not_pending").inc()
            raise self._not_pending(finished.status)
        outcome = "approved" if valid else "wrong_code"
        if finished.status is VerificationStatus.MAX_ATTEMPTS_REACHED:
            outcome = "max_attempts_reached"
        self._metrics.otp_checks_total.labels(outcome=outcome).inc()
        return CheckResult(
            id=verification_id,
            status=finished.status,
            valid=valid,
            check_attempts_remaining=max(finished.max_attempts - finished.attempts, 0),
        )

    async def check_by_phone(
        self,
        tenant: Tenant,
        phone_number: str,
        code: str,
        rate_limit_keys: dict[str, str] | None = None,
    ) -> CheckResult:
        """Check a code against the tenant's pending verification for a number.

        Raises:
            InvalidPhoneNumber: a malformed number.
            NotFound: no verification is pending for the number.
        """
        number = sandbox.parse_number(phone_number, tenant.settings.sandbox_numbers)
        verification_id = await self._store.pending_id(tenant.id, number.e164)
        if verification_id is None:
            raise NotFound("no verification is pending for this number", "verification_not_found")
        return await self.check(tenant, verification_id, code, rate_limit_keys)

    async def cancel(self, tenant: Tenant, verification_id: str) -> Verification:
        """Cancel a pending verification.

        Raises:
            NotFound: no such verification.
            VerificationNotPending: it has already ended.
        """
        return await self._close(tenant, verification_id, VerificationStatus.CANCELED)

    async def approve(self, tenant: Tenant, verification_id: str) -> Verification:
        """Approve a pending verification without a code.

        For a tenant that verified the user some other way (Twilio's ``Status=approved``).

        Raises:
            NotFound: no such verification.
            VerificationNotPending: it has already ended.
        """
        return await self._close(tenant, verification_id, VerificationStatus.APPROVED)

    async def _close(
        self, tenant: Tenant, verification_id: str, status: VerificationStatus
    ) -> Verification:
        verification = await self.get(tenant, verification_id)
        outcome = await self._store.close(
            verification, status, self._clock.now_ms(), new_id("evt", self._rng)
        )
        if outcome is None:
            raise NotFound("no such verification", "verification_not_found")
        closed, ended = outcome
        if not closed:
            raise self._not_pending(ended)
        self._metrics.count_ended(status)
        return await self.get(tenant, verification_id)

    def _count_if_ended(self, finished: CheckFinished | None) -> None:
        """Count the verification's end when this check is the one that ended it."""
        if finished is not None and finished.ended_now:
            self._metrics.count_ended(finished.status)

    async def _decided_status(self, tenant_id: str, verification_id: str) -> VerificationStatus:
        """The status once the checks holding every attempt have finished comparing.

        If they never finish (their process died), every attempt is used all the same.
        """
        for _ in range(_DECIDING_POLLS):
            status = await self._store.status(tenant_id, verification_id)
            if status is not VerificationStatus.PENDING:
                return status or VerificationStatus.MAX_ATTEMPTS_REACHED
            await asyncio.sleep(_DECIDING_WAIT_S)
        return VerificationStatus.MAX_ATTEMPTS_REACHED

    @staticmethod
    def _not_pending(status: VerificationStatus) -> VerificationNotPending:
        return VerificationNotPending(f"the verification is {status.value}", status.value)
