"""Verifying a tenant event: that a POST really comes from the service, and lately.

The service signs each event the way Telnyx signs its webhooks: an Ed25519 signature over
``<otp-timestamp>|<raw body>``, base64 in ``otp-signature-ed25519``, with ``otp-timestamp``
in Unix seconds, by the key of ``GET /v1/webhook-public-key``. The timestamp is signed, so a
recorded event replayed later fails the tolerance check; libsodium's verification takes the
same time however the signature differs from a valid one.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from otp_service.client.errors import ExpiredSignature, InvalidSignature, OtpError
from otp_service.client.models import Block, Event, Verification

TIMESTAMP_HEADER: Final = "otp-timestamp"
SIGNATURE_HEADER: Final = "otp-signature-ed25519"
DEFAULT_TOLERANCE_SECONDS: Final = 300
"""How far an event's timestamp may be from now: Telnyx's own tolerance for its webhooks."""


class _Envelope(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    created_at: datetime
    data: msgspec.Raw


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by its name in any case: frameworks hand headers over capitalised or not."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if value is None:
        raise InvalidSignature(f"the {name} header is missing")
    return value


def verify_event(
    raw_body: bytes,
    headers: Mapping[str, str],
    public_key: str | Sequence[str],
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> Event:
    """Verify a tenant event's signature and return the event it carries.

    ``raw_body`` is the request body exactly as received (verify before parsing: a parsed
    and re-encoded body does not match); ``headers`` the request's headers (any case);
    ``public_key`` the base64 key of ``GET /v1/webhook-public-key``, or several (its
    ``keys``, e.g. ``webhook_public_keys()``: during a rotation either key is accepted);
    ``now`` the time in Unix seconds (default: the clock's). Raises ``InvalidSignature``
    when the event is signed by none of the keys, and ``ExpiredSignature`` when its
    timestamp is more than ``tolerance_seconds`` away from ``now``.
    """
    timestamp = _header(headers, TIMESTAMP_HEADER).strip()
    if not timestamp.isascii() or not timestamp.isdigit():
        raise InvalidSignature(f"the {TIMESTAMP_HEADER} header is not Unix seconds")
    try:
        signature = base64.b64decode(_header(headers, SIGNATURE_HEADER), validate=True)
        keys = [
            VerifyKey(base64.b64decode(key, validate=True))
            for key in ([public_key] if isinstance(public_key, str) else public_key)
        ]
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature(f"the signature or the public key is not base64: {exc}") from exc
    if not any(_signed_by(key, timestamp.encode() + b"|" + raw_body, signature) for key in keys):
        raise InvalidSignature("the signature does not match the body and timestamp")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance_seconds:
        when = f"{abs(age):.0f} s {'ago' if age > 0 else 'ahead'}"
        raise ExpiredSignature(f"signed {when}, beyond the {tolerance_seconds} s tolerated")
    return _event(raw_body)


def _signed_by(key: VerifyKey, signed: bytes, signature: bytes) -> bool:
    try:
        key.verify(signed, signature)
    except (BadSignatureError, ValueError):
        return False
    return True


def _event(raw_body: bytes) -> Event:
    """The event of a verified body, its ``data`` decoded by the event's type."""
    try:
        envelope = msgspec.json.decode(raw_body, type=_Envelope)
        data: Verification | Block | dict[str, Any]
        if envelope.type.startswith("verification.") or envelope.type == "message.status":
            data = msgspec.json.decode(envelope.data, type=Verification)
        elif envelope.type == "fraud.blocked":
            data = msgspec.json.decode(envelope.data, type=Block)
        else:  # a type this client does not know yet: its data as plain JSON
            data = msgspec.json.decode(envelope.data, type=dict[str, Any])
    except msgspec.DecodeError as exc:
        raise OtpError(
            f"a genuine event this client cannot read: {exc}", code="unreadable_event"
        ) from exc
    return Event(id=envelope.id, type=envelope.type, created_at=envelope.created_at, data=data)
