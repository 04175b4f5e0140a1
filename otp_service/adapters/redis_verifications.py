"""Verifications in Redis: each read-modify-write is one Lua script on the tenant's slot.

A verification is a hash. Code hashes live in its ``hashes`` field and never leave this
module; messages are a JSON array whose ``error_codes`` are kept comma-joined because
Redis's cjson encodes an empty array as ``{}``. Scripts that change a verification also
queue the work that follows (events, expiry, fallback) in the tenant's outbox
(``redis_work``), and the store then hints the workers.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from otp_service.adapters import redis_keys as keys
from otp_service.adapters.redis_scripts import load_script, text, translated
from otp_service.adapters.redis_work import SandboxReceiptJob, WorkQueue
from otp_service.core.fraud import PrefixStats
from otp_service.core.limits import DAY_MS, Rule
from otp_service.core.model import Message, SenderType, Verification, VerificationStatus

ENDED_RETENTION_MS: Final = 24 * 3600 * 1000
"""How long an ended verification stays readable."""

COMPARE_MS: Final = 30_000
"""Longer than any check takes between its two scripts (argon2, even queued under load)."""

EARLY_RECEIPT_MS: Final = 3600 * 1000
"""How long a receipt for a message not yet linked to its verification is kept."""

_encoder: Final = msgspec.json.Encoder()


class _StoredMessage(msgspec.Struct, kw_only=True):
    id: str | None
    position: int
    sender_type: SenderType
    from_: str | None = msgspec.field(name="from")
    status: str
    error_codes: str
    created_at: int
    updated_at: int


ReceiptOutcome = Literal["updated", "unchanged", "parked", "unknown"]
"""What a receipt did; ``parked``: kept until its message is recorded."""


class _KeptReceipt(msgspec.Struct, frozen=True):
    """A receipt kept until its message is known (the shape the Lua scripts apply)."""

    status: str
    error_codes: str
    at: int


class PendingSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What a start needs to know of the number's pending verification before hashing."""

    id: str
    live: bool
    code_length: int


class Guard(msgspec.Struct, frozen=True, kw_only=True):
    """What a start's script enforces and counts besides the verification itself.

    ``rules``: the limits of one send (``core.limits.send_rules``); ``token``: unique to the
    start (names its sliding-log entries); ``asker``: who asks (``core.limits.asker``);
    ``mode``: the fraud guard's; ``prefixes``: the destination's watched prefixes (empty
    when the guard is off); ``windows_ms``: velocity, conversion, grace and baseline time
    constant of the fraud guard; ``country`` and ``sender_type`` (the chain's first) label
    the stats; ``breaker_id``: the block id to use should the start trip the country's
    circuit breaker.
    """

    rules: list[Rule]
    token: str
    asker: str
    mode: str
    prefixes: list[str]
    windows_ms: tuple[int, int, int, int]
    country: str
    sender_type: str
    breaker_id: str


class Created(msgspec.Struct, frozen=True):
    """A new verification was stored; ``stats``: the fraud guard's counts for its prefixes."""

    id: str
    stats: list[PrefixStats] = msgspec.field(default_factory=list)


class Resent(msgspec.Struct, frozen=True):
    """The pending verification took a new code for a resend."""

    id: str


class Limited(msgspec.Struct, frozen=True):
    """A limit refused the request (its API name: ``max_sends``, ``prefix``, ``key:ip``...)."""

    limit: str
    retry_after_ms: int


class Conflict(msgspec.Struct, frozen=True):
    """The number's pending verification changed since it was read: read again."""


StartResult = Created | Resent | Limited | Conflict


class CheckBegun(msgspec.Struct, frozen=True, kw_only=True):
    """An attempt was taken; compare the code against ``hashes``."""

    attempts: int
    max_attempts: int
    hashes: list[str]
    phone_number: str


class Malformed(msgspec.Struct, frozen=True, kw_only=True):
    """No attempt was taken: the code is not ``code_length`` ASCII digits."""

    code_length: int


class CheckRefused(msgspec.Struct, frozen=True, kw_only=True):
    """No attempt was taken: the verification has ended, or every attempt is in use.

    ``deciding``: every attempt is taken but the verification is still pending, so checks
    holding them are still comparing; ``status`` is what it becomes if none matches.
    """

    status: VerificationStatus
    deciding: bool = False


class CheckAbandoned(msgspec.Struct, frozen=True, kw_only=True):
    """Every attempt is used, and the check that took the last one died before finishing.

    The caller ends the verification for it (``check_finish`` with that attempt).
    """

    phone_number: str
    attempt: int


class CheckFinished(msgspec.Struct, frozen=True, kw_only=True):
    """The verification after the check: its status, attempts used, and ``ended_now``.

    ``ended_now`` is true only for the check whose own finish ended the verification.
    """

    status: VerificationStatus
    attempts: int
    max_attempts: int
    ended_now: bool


def _decode_messages(raw: str) -> list[Message]:
    stored = msgspec.json.decode(raw, type=list[_StoredMessage])
    return [
        Message(
            id=m.id,
            position=m.position,
            sender_type=m.sender_type,
            from_=m.from_,
            status=m.status,
            error_codes=[code for code in m.error_codes.split(",") if code],
            created_at=m.created_at,
            updated_at=m.updated_at,
        )
        for m in stored
    ]


def _encode_message(message: Message) -> bytes:
    stored = _StoredMessage(
        id=message.id,
        position=message.position,
        sender_type=message.sender_type,
        from_=message.from_,
        status=message.status,
        error_codes=",".join(message.error_codes),
        created_at=message.created_at,
        updated_at=message.updated_at,
    )
    return msgspec.json.encode(stored)


def _prefix_stats(flat: list[Any]) -> list[PrefixStats]:
    """The start script's fraud counters, six values per prefix (``fraud_observe``)."""
    return [
        PrefixStats(
            text(flat[i]),
            int(flat[i + 1]),
            float(text(flat[i + 2])),
            int(flat[i + 3]),
            int(flat[i + 4]),
            int(flat[i + 5]) == 1,
        )
        for i in range(0, len(flat), 6)
    ]


def verification_from_fields(raw: dict[str, str]) -> Verification:
    """A verification from its stored fields (as read, or as an event's snapshot holds them)."""
    return Verification(
        id=raw["id"],
        tenant_id=raw["tenant_id"],
        status=VerificationStatus(raw["status"]),
        phone_number=raw["phone_number"],
        country=raw["country"],
        locale=raw["locale"] or None,
        brand=raw.get("brand") or None,
        code_length=int(raw["code_length"]),
        created_at=int(raw["created_at"]),
        expires_at=int(raw["expires_at"]),
        ended_at=int(raw["ended_at"]) if "ended_at" in raw else None,
        send_count=int(raw["send_count"]),
        max_sends=int(raw["max_sends"]),
        next_send_at=int(raw["next_send_at"]),
        check_attempts=int(raw["check_attempts"]),
        max_check_attempts=int(raw["max_check_attempts"]),
        messages=_decode_messages(raw["messages"]),
        metadata=msgspec.json.decode(raw["metadata"], type=dict[str, str]),
    )


class VerificationStore:
    """Verifications, their phone-number index, idempotency records and message pointers."""

    def __init__(self, redis: Redis, work: WorkQueue) -> None:
        self._redis = redis
        self._work = work
        self._route_receipt = load_script(redis, "receipt_route")
        self._link_message = load_script(redis, "message_link")
        self._start = load_script(redis, "start")
        self._record_send = load_script(redis, "record_send")
        self._check_begin = load_script(redis, "check_begin")
        self._check_finish = load_script(redis, "check_finish")
        self._close = load_script(redis, "close")
        self._message_status = load_script(redis, "message_status")
        self._idempotency_begin = load_script(redis, "idempotency_begin")
        self._fallback_claim = load_script(redis, "fallback_claim")
        self._fail = load_script(redis, "fail")
        self._expire = load_script(redis, "expire")

    async def pending_snapshot(
        self, tenant_id: str, e164: str, now_ms: int
    ) -> PendingSnapshot | None:
        """Read the number's pending verification, if the index names one."""
        async with translated():
            found = await self._redis.get(keys.pending(tenant_id, e164))
            if found is None:
                return None
            current = text(found)
            status, expires_at, code_length = await self._redis.hmget(
                keys.verification(tenant_id, current), ["status", "expires_at", "code_length"]
            )
        live = status == VerificationStatus.PENDING and now_ms < int(expires_at or 0)
        return PendingSnapshot(id=current, live=live, code_length=int(code_length or 0))

    async def start(
        self,
        *,
        tenant_id: str,
        e164: str,
        seen: PendingSnapshot | None,
        new: Verification,
        code_hash: str,
        resend_cooldown_ms: int,
        first_send_ms: int,
        event_id: str,
        guard: Guard,
    ) -> StartResult:
        """Create ``new``, or resend the live verification ``seen`` with ``code_hash``.

        ``new`` is used only when ``seen`` is absent or no longer live; its id must be the
        one ``code_hash`` was made for. A new verification's expiry timer and its
        ``verification.created`` event (``event_id``) are queued with it. A verification
        with no send recorded ``first_send_ms`` after its start is resent despite the cooldown.
        The limits and fraud guard of ``guard`` are checked and counted in the same script.
        """
        resend = seen is not None and seen.live
        seen_key = keys.verification(tenant_id, seen.id) if seen else keys.pending(tenant_id, e164)
        fields = {
            "tenant_id": tenant_id,
            "phone_number": new.phone_number,
            "country": new.country,
            "locale": new.locale or "",
            "brand": new.brand or "",
            "code_length": new.code_length,
            "max_sends": new.max_sends,
            "max_check_attempts": new.max_check_attempts,
            "metadata": msgspec.json.encode(new.metadata).decode(),
        }
        reply = await self._changed(
            self._start,
            tenant_id,
            new.created_at,
            keys=[
                keys.pending(tenant_id, e164),
                seen_key,
                keys.verification(tenant_id, new.id),
                keys.tenant(tenant_id),
                *keys.outbox(tenant_id),
            ],
            args=[
                "resend" if resend else "create",
                seen.id if seen else "",
                new.created_at,
                code_hash,
                resend_cooldown_ms,
                new.id,
                msgspec.json.encode(fields),
                new.expires_at,
                ENDED_RETENTION_MS,
                event_id,
                first_send_ms,
                _encoder.encode(guard.rules),
                guard.token,
                guard.asker,
                guard.mode,
                _encoder.encode(guard.prefixes),
                _encoder.encode(guard.windows_ms),
                guard.country,
                guard.sender_type,
                guard.breaker_id,
            ],
        )
        match reply:
            case ["created", ident, *stats]:
                return Created(ident, _prefix_stats(stats))
            case ["resent", ident]:
                return Resent(ident)
            case ["limited", limit, retry_after]:
                return Limited(limit, int(retry_after))
            case _:
                return Conflict()

    async def get(self, tenant_id: str, verification_id: str) -> Verification | None:
        """Return the stored verification, or ``None`` (never another tenant's)."""
        async with translated():
            reply = await self._redis.hgetall(keys.verification(tenant_id, verification_id))
        raw = {text(name): text(value) for name, value in reply.items()}
        if not raw or raw.get("tenant_id") != tenant_id:
            return None
        return verification_from_fields(raw)

    async def pending_id(self, tenant_id: str, e164: str) -> str | None:
        """Return the id of the number's pending verification, if any."""
        async with translated():
            found = await self._redis.get(keys.pending(tenant_id, e164))
        return None if found is None else text(found)

    async def record_send(
        self,
        verification: Verification,
        message: Message,
        *,
        fail: bool,
        now_ms: int,
        event_id: str,
        silence_ms: int | None,
        sandbox_receipts: SandboxReceiptJob | None = None,
    ) -> bool:
        """Append a send attempt; ``fail`` ends the verification as ``failed``.

        Returns whether this call ended the verification (so its end is counted once).

        A message Telnyx took gets its pointer first
        (so receipts find the verification), and the receipts that came before the pointer
        are applied as the message is appended; ``silence_ms`` sets its silence timer.
        A sandbox message's scripted receipts are queued with it (``sandbox_receipts``).
        """
        kept: list[_KeptReceipt] = []
        if message.id is not None:
            async with translated():
                raw = await self._link_message(
                    keys=[keys.message(message.id), keys.early_receipts(message.id)],
                    args=[
                        f"{verification.tenant_id} {verification.id}",
                        verification.expires_at - now_ms + ENDED_RETENTION_MS,
                    ],
                )
            kept = [msgspec.json.decode(text(r), type=_KeptReceipt) for r in raw]
        reply = await self._changed(
            self._record_send,
            verification.tenant_id,
            now_ms,
            keys=self._keys_of(verification.tenant_id, verification.id, verification.phone_number),
            args=[
                _encode_message(message),
                "1" if fail else "0",
                now_ms,
                ENDED_RETENTION_MS,
                event_id,
                "" if silence_ms is None else silence_ms,
                _encoder.encode(kept),
                b"" if sandbox_receipts is None else _encoder.encode(sandbox_receipts),
            ],
        )
        return bool(reply == ["ended"])

    async def check_begin(  # noqa: PLR0911  (one return per answer of the script)
        self,
        tenant_id: str,
        verification_id: str,
        *,
        code_length: int,
        now_ms: int,
        rules: list[Rule],
        token: str,
    ) -> CheckBegun | CheckRefused | CheckAbandoned | Malformed | Limited | None:
        """Take one check attempt; ``None`` when the verification is gone (or another's).

        ``code_length`` is the submitted code's length, -1 when it is not all ASCII digits.
        ``rules`` (``core.limits.check_rules``) are checked and counted first; ``token`` is
        unique to the check.
        """
        async with translated():
            reply = await self._check_begin(
                keys=[keys.verification(tenant_id, verification_id), keys.tenant(tenant_id)],
                args=[now_ms, code_length, COMPARE_MS, _encoder.encode(rules), token],
            )
        match reply:
            case ["limited", limit, retry_after]:
                return Limited(text(limit), int(retry_after))
            case ["ok", attempts, max_attempts, hashes, phone_number]:
                return CheckBegun(
                    attempts=int(attempts),
                    max_attempts=int(max_attempts),
                    hashes=msgspec.json.decode(hashes, type=list[str]),
                    phone_number=text(phone_number),
                )
            case ["malformed", expected]:
                return Malformed(code_length=int(expected))
            case ["ended", status]:
                return CheckRefused(status=VerificationStatus(status))
            case ["exhausted", _, max_attempts, phone_number, 1]:
                return CheckAbandoned(phone_number=text(phone_number), attempt=int(max_attempts))
            case ["exhausted", *_]:
                return CheckRefused(status=VerificationStatus.MAX_ATTEMPTS_REACHED, deciding=True)
            case _:
                return None

    async def check_finish(
        self,
        tenant_id: str,
        verification_id: str,
        *,
        phone_number: str,
        attempt: int,
        approve: bool,
        now_ms: int,
        event_id: str,
        conversion_window_ms: int,
    ) -> CheckFinished | None:
        """Record the outcome of a compared code; ``None`` when the verification is gone.

        The check that ends the verification queues its event (``event_id``). A right code
        tells the fraud guard the start converted (kept ``conversion_window_ms``); the
        number's streak of wrong codes grows or ends.
        """
        reply = await self._changed(
            self._check_finish,
            tenant_id,
            now_ms,
            keys=self._keys_of(tenant_id, verification_id, phone_number),
            args=[
                "approve" if approve else "reject",
                now_ms,
                ENDED_RETENTION_MS,
                attempt,
                event_id,
                DAY_MS,
                conversion_window_ms,
            ],
        )
        match reply:
            case [status, attempts, max_attempts, ended_now]:
                return CheckFinished(
                    status=VerificationStatus(status),
                    attempts=int(attempts),
                    max_attempts=int(max_attempts),
                    ended_now=ended_now == 1,
                )
            case _:
                return None

    async def status(self, tenant_id: str, verification_id: str) -> VerificationStatus | None:
        """The stored status of a verification (``None`` when gone)."""
        async with translated():
            found = await self._redis.hget(keys.verification(tenant_id, verification_id), "status")
        return None if found is None else VerificationStatus(text(found))

    async def close(
        self,
        verification: Verification,
        status: VerificationStatus,
        now_ms: int,
        event_id: str,
    ) -> tuple[bool, VerificationStatus] | None:
        """End a pending verification as ``status`` (canceled, or approved out of band).

        Returns whether this call ended it and the status it has; ``None`` when it is gone.
        """
        reply = await self._changed(
            self._close,
            verification.tenant_id,
            now_ms,
            keys=self._keys_of(verification.tenant_id, verification.id, verification.phone_number),
            args=[now_ms, ENDED_RETENTION_MS, event_id, status.value],
        )
        match reply:
            case ["closed"]:
                return True, status
            case ["ended", ended]:
                return False, VerificationStatus(ended)
            case _:
                return None

    async def apply_receipt(
        self,
        message_id: str,
        status: str,
        error_codes: tuple[str, ...],
        now_ms: int,
        event_id: str,
    ) -> ReceiptOutcome:
        """Apply a Telnyx delivery receipt to the message it is about.

        A receipt for a message whose pointer is not written yet is kept with the pointer
        (``parked``); ``unknown`` is a message this service never sent (or long forgotten).
        """
        codes = ",".join(error_codes)
        kept = _KeptReceipt(status=status, error_codes=codes, at=now_ms)
        async with translated():
            pointer = await self._route_receipt(
                keys=[keys.message(message_id), keys.early_receipts(message_id)],
                args=[_encoder.encode(kept), EARLY_RECEIPT_MS],
            )
        if not pointer:
            return "parked"
        tenant_id, verification_id = text(pointer).split(" ", 1)
        reply = await self._changed(
            self._message_status,
            tenant_id,
            now_ms,
            keys=self._keys_of(tenant_id, verification_id)[:5],
            args=[message_id, status, codes, now_ms, event_id],
        )
        outcome: ReceiptOutcome = reply[0]
        return outcome

    async def event_seen(self, event_id: str) -> bool:
        """Tell whether a webhook event was already handled."""
        async with translated():
            return bool(await self._redis.exists(keys.webhook_event(event_id)))

    async def mark_event_seen(self, event_id: str) -> None:
        """Remember a handled webhook event for a day, so a duplicate is skipped."""
        async with translated():
            await self._redis.set(keys.webhook_event(event_id), "1", ex=86400)

    async def fallback_claim(
        self,
        verification: Verification,
        *,
        message_id: str,
        reason: Literal["failed", "silent"],
        code_hash: str,
        now_ms: int,
    ) -> int | None:
        """Claim the fallback of ``message_id``; return its chain position, ``None`` if moot.

        The claim also keeps ``code_hash``, the hash of the code the fallback SMS carries.
        """
        async with translated():
            position = await self._fallback_claim(
                keys=[keys.verification(verification.tenant_id, verification.id)],
                args=[message_id, reason, now_ms, code_hash],
            )
        return None if int(position) < 0 else int(position)

    async def expire(
        self, tenant_id: str, verification_id: str, e164: str, now_ms: int, event_id: str
    ) -> bool:
        """Record a due expiry and queue its event; ``True`` when this call ended it."""
        reply = await self._changed(
            self._expire,
            tenant_id,
            now_ms,
            keys=self._keys_of(tenant_id, verification_id, e164),
            args=[now_ms, ENDED_RETENTION_MS, event_id],
        )
        return bool(reply == [1])

    async def fail(self, verification: Verification, now_ms: int, event_id: str) -> bool:
        """End a pending verification as ``failed``; ``True`` when this call ended it."""
        reply = await self._changed(
            self._fail,
            verification.tenant_id,
            now_ms,
            keys=self._keys_of(verification.tenant_id, verification.id, verification.phone_number),
            args=[now_ms, ENDED_RETENTION_MS, event_id],
        )
        return bool(reply == [1])

    async def idempotency_begin(
        self, tenant_id: str, key: str, fingerprint: str, claim_ms: int
    ) -> tuple[Literal["claimed", "conflict", "in_flight", "done"], bytes | None]:
        """Claim ``key`` for this request, or return what the first request answered."""
        async with translated():
            reply = await self._idempotency_begin(
                keys=[keys.idempotency(tenant_id, key)], args=[fingerprint, claim_ms]
            )
        match reply:
            case ["done", response]:
                return "done", response.encode()
            case [state]:
                return state, None
            case _:
                return "in_flight", None

    async def idempotency_finish(
        self, tenant_id: str, key: str, fingerprint: str, response: bytes | None
    ) -> None:
        """Store the response for 24 h, or release the claim when ``response`` is ``None``."""
        record_key = keys.idempotency(tenant_id, key)
        async with translated():
            if response is None:
                await self._redis.delete(record_key)
                return
            record = {"fingerprint": fingerprint, "response": response.decode()}
            await self._redis.set(record_key, msgspec.json.encode(record), ex=86400)

    async def _changed(
        self, script: AsyncScript, tenant_id: str, now_ms: int, *, keys: list[str], args: list[Any]
    ) -> list[Any]:
        """Run a script that may queue work, hint the workers if it did; return the rest.

        Such scripts answer ``{hint, ...}``: the earliest due time of the jobs they queued.
        """
        async with translated():
            reply: list[Any] = await script(keys=keys, args=args)
        hint = int(reply[0])
        if hint >= 0:
            await self._work.hint(tenant_id, hint, now_ms)
        return [text(item) if isinstance(item, bytes) else item for item in reply[1:]]

    @staticmethod
    def _keys_of(tenant_id: str, verification_id: str, e164: str = "") -> list[str]:
        """The verification, the tenant's record and outbox, then the number's pending index."""
        return [
            keys.verification(tenant_id, verification_id),
            keys.tenant(tenant_id),
            *keys.outbox(tenant_id),
            keys.pending(tenant_id, e164),
        ]
