"""Telnyx messaging webhooks: Ed25519 signature checks and minimal event views.

Telnyx signs ``<telnyx-timestamp>|<raw body>`` with Ed25519 and sends the base64 signature in
``telnyx-signature-ed25519``. The body is verified exactly as received (never re-serialised),
and the timestamp must lie within a tolerance of now, in either direction, so a captured
webhook cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from otp_service.core.json_body import parse_json_body
from otp_service.errors import InvalidSignature

TIMESTAMP_HEADER: Final = "telnyx-timestamp"
SIGNATURE_HEADER: Final = "telnyx-signature-ed25519"

_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_SIGNATURE_BYTES = 64
_DELIVERY_EVENTS = frozenset({"message.sent", "message.finalized"})
_INBOUND_EVENT = "message.received"


def verify_signature(
    public_key: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance_seconds: int = 300,
) -> None:
    """Check that Telnyx signed this body at a time close to ``now``.

    ``timestamp`` and ``signature`` are the raw header values (``None`` when absent);
    ``public_key`` is the 32-byte Ed25519 key of the Telnyx account.

    Raises:
        InvalidSignature: a header is missing or malformed, the timestamp is more than
            ``tolerance_seconds`` away from ``now``, or the signature does not verify.
    """
    if timestamp is None or signature is None:
        raise InvalidSignature("the telnyx-timestamp or telnyx-signature-ed25519 header is missing")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise InvalidSignature("telnyx-timestamp is not a Unix time in seconds")
    if abs(now - int(timestamp)) > tolerance_seconds:
        raise InvalidSignature("telnyx-timestamp is too far from the current time")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except binascii.Error as exc:
        raise InvalidSignature("telnyx-signature-ed25519 is not base64") from exc
    if len(raw_signature) != _SIGNATURE_BYTES:
        raise InvalidSignature("telnyx-signature-ed25519 is not a 64-byte Ed25519 signature")
    try:
        VerifyKey(public_key).verify(f"{timestamp}|".encode() + body, raw_signature)
    except BadSignatureError as exc:
        raise InvalidSignature("the webhook signature does not verify") from exc


class DeliveryEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A ``message.sent`` or ``message.finalized`` event: the status of one outbound message."""

    event_id: str
    event_type: str
    message_id: str
    status: str
    error_codes: tuple[str, ...]
    occurred_at: str | None


class InboundEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A ``message.received`` event: an SMS sent to one of our numbers (e.g. STOP)."""

    event_id: str
    from_number: str
    to_number: str | None
    text: str
    messaging_profile_id: str | None


class _AddressView(msgspec.Struct):
    phone_number: str | None = None
    status: str | None = None


class _ErrorView(msgspec.Struct):
    code: str | int | None = None


class _PayloadView(msgspec.Struct):
    id: str | None = None
    from_: _AddressView | None = msgspec.field(default=None, name="from")
    to: list[_AddressView] = msgspec.field(default_factory=list)
    text: str | None = None
    messaging_profile_id: str | None = None
    errors: list[_ErrorView] = msgspec.field(default_factory=list)


class _DataView(msgspec.Struct):
    id: str
    event_type: str
    payload: _PayloadView
    occurred_at: str | None = None


class _EnvelopeView(msgspec.Struct):
    data: _DataView


def parse_event(body: bytes) -> DeliveryEvent | InboundEvent | None:
    """Read the fields the service uses from a (signed) webhook body.

    Returns ``None`` for event types the service does not handle (e.g. link clicks) and for
    JSON missing what the event needs, so the caller can acknowledge them and move on.

    Raises:
        MalformedBody: the body is not JSON at all (syntax, UTF-8, nesting): no event of
            Telnyx's, so it is refused rather than acknowledged.
    """
    try:
        data = msgspec.convert(parse_json_body(body), _EnvelopeView).data
    except msgspec.ValidationError:
        return None
    payload = data.payload
    first_to = payload.to[0] if payload.to else None
    if data.event_type in _DELIVERY_EVENTS:
        if payload.id is None or first_to is None or first_to.status is None:
            return None
        return DeliveryEvent(
            event_id=data.id,
            event_type=data.event_type,
            message_id=payload.id,
            status=first_to.status,
            error_codes=tuple(str(e.code) for e in payload.errors if e.code is not None),
            occurred_at=data.occurred_at,
        )
    if data.event_type == _INBOUND_EVENT:
        if payload.from_ is None or payload.from_.phone_number is None:
            return None
        return InboundEvent(
            event_id=data.id,
            from_number=payload.from_.phone_number,
            to_number=first_to.phone_number if first_to else None,
            text=payload.text or "",
            messaging_profile_id=payload.messaging_profile_id,
        )
    return None
