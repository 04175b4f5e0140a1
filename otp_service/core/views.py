"""The verification as tenants see it: in API answers and in the body of tenant events.

Both the HTTP layer and the event use case render verifications, so the wire shape lives
here, below both, rather than in ``api/``. Times are RFC 3339 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from otp_service.core.fraud import Block
from otp_service.core.model import Message, SenderType, Verification


class MessageOut(msgspec.Struct, kw_only=True):
    """One send attempt of a verification."""

    id: str | None
    sender_type: SenderType
    from_: str | None = msgspec.field(name="from")
    status: str
    error_codes: list[str]
    created_at: str
    updated_at: str


class VerificationOut(msgspec.Struct, kw_only=True):
    """The verification object of API.md."""

    id: str
    status: str
    phone_number: str
    country: str
    channel: str
    locale: str | None
    created_at: str
    expires_at: str
    ended_at: str | None
    send_count: int
    max_sends: int
    next_send_at: str | None
    check_attempts: int
    check_attempts_remaining: int
    messages: list[MessageOut]
    metadata: dict[str, str]


def rfc3339(milliseconds: int) -> str:
    """Render epoch milliseconds as an RFC 3339 UTC time."""
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_out(message: Message) -> MessageOut:
    """Render a send attempt."""
    return MessageOut(
        id=message.id,
        sender_type=message.sender_type,
        from_=message.from_,
        status=message.status,
        error_codes=message.error_codes,
        created_at=rfc3339(message.created_at),
        updated_at=rfc3339(message.updated_at),
    )


def verification_out(verification: Verification) -> VerificationOut:
    """Render a verification; ``next_send_at`` is null once it has ended or has no sends left."""
    pending = verification.status == "pending"
    can_resend = pending and verification.send_count < verification.max_sends
    return VerificationOut(
        id=verification.id,
        status=verification.status.value,
        phone_number=verification.phone_number,
        country=verification.country,
        channel="sms",
        locale=verification.locale,
        created_at=rfc3339(verification.created_at),
        expires_at=rfc3339(verification.expires_at),
        ended_at=rfc3339(verification.ended_at) if verification.ended_at else None,
        send_count=verification.send_count,
        max_sends=verification.max_sends,
        next_send_at=rfc3339(verification.next_send_at) if can_resend else None,
        check_attempts=verification.check_attempts,
        check_attempts_remaining=max(
            verification.max_check_attempts - verification.check_attempts, 0
        ),
        messages=[message_out(m) for m in verification.messages],
        metadata=verification.metadata,
    )


class BlockOut(msgspec.Struct, kw_only=True):
    """A block as the admin API lists it and the `fraud.blocked` event carries it.

    `limit` is `prefix` (a number range the fraud guard blocked; `value` is the range) or
    `country` (the country's daily budget is spent; `value` is its ISO code). `mode`
    `monitor`: recorded only, nothing is refused. `strikes`: how many times the range was
    blocked within a day of the block before (each block lasts twice the one before).
    """

    id: str
    limit: str
    value: str
    mode: str
    reason: str
    created_at: str
    expires_at: str
    strikes: int | None = None


def block_out(block: Block) -> BlockOut:
    """Render a block."""
    return BlockOut(
        id=block.id,
        limit=block.limit,
        value=block.value,
        mode=block.mode.value,
        reason=block.reason,
        created_at=rfc3339(block.created_at),
        expires_at=rfc3339(block.expires_at),
        strikes=block.strikes,
    )
