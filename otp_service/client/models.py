"""What the API answers, as typed, immutable structs (the wire schemas of API.md).

These mirror ``otp_service/api/schemas.py`` and ``core/views.py`` without importing them:
a client user installs the package for this module and needs none of the server's
dependencies. The structs ignore members they do not know, so a newer service that adds
fields never breaks an older client. Statuses stay plain strings for the same reason: a new
status word must reach the caller, not fail the decoding. Times are decoded to aware UTC
``datetime``s. Each struct states ``frozen`` and ``kw_only`` itself, since type checkers do
not carry them over from a base class.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One SMS sent (or refused at once) for a verification, fallbacks included.

    ``status`` is Telnyx's: ``queued``, ``sending``, ``sent``, ``delivered``,
    ``sending_failed``, ``delivery_failed``, ``delivery_unconfirmed`` or ``expired``.
    ``id`` is Telnyx's message id; ``None`` when Telnyx refused the send at once, whose
    reasons are then in ``error_codes``.
    """

    id: str | None
    sender_type: str
    from_: str | None = msgspec.field(default=None, name="from")
    status: str
    error_codes: list[str] = msgspec.field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """A verification: a code sent by SMS to ``phone_number``, and what became of it.

    ``status`` is ``pending``, ``approved``, ``canceled``, ``expired``,
    ``max_attempts_reached`` or ``failed`` (no sender could deliver). ``send_count`` counts
    the start and the resends; ``send_count > 1`` after a start means it re-sent the
    number's pending verification.
    """

    id: str
    status: str
    phone_number: str
    country: str
    channel: str = "sms"
    locale: str | None = None
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    send_count: int
    max_sends: int
    next_send_at: datetime | None = None
    check_attempts: int
    check_attempts_remaining: int
    messages: list[Message] = msgspec.field(default_factory=list)
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a check: ``valid`` tells whether the code was right.

    A wrong code is an answer, not an error: ``valid`` is false and
    ``check_attempts_remaining`` one less; the check that uses the last attempt answers
    ``status == "max_attempts_reached"``.
    """

    id: str
    status: str
    valid: bool
    check_attempts_remaining: int


class OptOut(msgspec.Struct, frozen=True, kw_only=True):
    """Whether a number opted out of the tenant's messaging profile.

    ``source`` is ``keyword`` (the recipient replied STOP), ``carrier`` (Telnyx error
    40300) or ``import``; ``since`` and ``source`` are ``None`` when not opted out.
    """

    phone_number: str
    opted_out: bool
    since: datetime | None = None
    source: str | None = None


class StatsRow(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of one destination country and sender type over the report's window."""

    country: str
    sender_type: str
    started: int
    sent: int
    delivered: int
    approved: int
    conversion_rate: float | None
    failed_sends: int
    blocked: int


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """Conversion counts over ``[from_, to)``, one row per country and sender type."""

    from_: datetime = msgspec.field(name="from")
    to: datetime
    rows: list[StatsRow]


class Block(msgspec.Struct, frozen=True, kw_only=True):
    """A block the fraud guard (``limit == "prefix"``) or a country budget put in force.

    The ``data`` of a ``fraud.blocked`` event.
    """

    id: str
    limit: str
    value: str
    mode: str
    reason: str
    created_at: datetime
    expires_at: datetime
    strikes: int | None = None


class PublicKeyEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One base64 Ed25519 key that verifies tenant events, with its short id."""

    key_id: str
    public_key: str


class PublicKey(msgspec.Struct, frozen=True, kw_only=True):
    """The base64 Ed25519 key that signs tenant events.

    ``keys`` (empty from servers that predate it) lists every key to accept, the signing
    one first; while the service's signing key is rotated, the former key follows.
    """

    public_key: str
    key_id: str = ""
    keys: list[PublicKeyEntry] = msgspec.field(default_factory=list)


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant event, once its signature is verified (``verify_event``).

    ``data`` is a ``Verification`` for ``verification.*`` and ``message.status`` events, a
    ``Block`` for ``fraud.blocked``, and the plain decoded JSON for a type this client does
    not know yet. De-duplicate by ``id``: delivery is at least once.
    """

    id: str
    type: str
    created_at: datetime
    data: Verification | Block | dict[str, Any]


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """An RFC 9457 problem document, as the service writes its errors."""

    type: str = "about:blank"
    title: str = ""
    status: int | None = None
    detail: str = ""
    code: str | None = None
    errors: list[dict[str, str]] | None = None
    retry_after: int | None = None
    limit: str | None = None
    verification_status: str | None = None
    verification_id: str | None = None
    error_codes: list[str] | None = None
