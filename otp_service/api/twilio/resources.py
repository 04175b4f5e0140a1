"""Twilio's Verification and VerificationCheck resources, rendered from our verification.

The fields are those Twilio's SDK reads (``VerificationInstance`` and
``VerificationCheckInstance`` of twilio-python); fields with no counterpart here are
present and null, as Twilio sends them for features not in use (PSD2 ``amount`` and
``payee``, silent network auth). Dates are ISO 8601 in UTC to the second, the format the
SDK parses (``%Y-%m-%dT%H:%M:%SZ``); the status words are ours, which are Twilio's.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec

from otp_service.core import twilio_ids
from otp_service.core.model import Verification, VerificationStatus


class CodeAttempt(msgspec.Struct, kw_only=True):
    """One SMS sent (or tried) for the verification: Twilio's ``send_code_attempts`` entry."""

    attempt_sid: str
    channel: str
    time: str


class Lookup(msgspec.Struct, kw_only=True):
    """Twilio's carrier lookup; the service looks up no carrier."""

    carrier: None = None


class VerificationResource(msgspec.Struct, kw_only=True):
    """Twilio's Verification resource."""

    sid: str
    service_sid: str
    account_sid: str
    to: str
    channel: str
    status: str
    valid: bool
    lookup: Lookup
    amount: None
    payee: None
    send_code_attempts: list[CodeAttempt]
    date_created: str
    date_updated: str
    sna: None
    url: str


class VerificationCheckResource(msgspec.Struct, kw_only=True):
    """Twilio's VerificationCheck resource: the verification as the check left it."""

    sid: str
    service_sid: str
    account_sid: str
    to: str
    channel: str
    status: str
    valid: bool
    amount: None
    payee: None
    date_created: str
    date_updated: str
    sna_attempts_error_codes: None


def twilio_time(milliseconds: int) -> str:
    """Epoch milliseconds as Twilio writes a date: ``2026-01-25T12:34:56Z``."""
    return datetime.fromtimestamp(milliseconds // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _updated(verification: Verification) -> int:
    """The last change: its end, or its latest message's latest news, or its creation."""
    times = [verification.created_at, verification.ended_at or 0]
    times += [message.updated_at for message in verification.messages]
    return max(times)


def _attempt_sid(verification_id: str, position: int) -> str:
    """A stable ``VL`` SID for the verification's ``position``-th message.

    Telnyx's message ids are not Twilio SIDs (and a message Telnyx refused has none), so
    the SID is derived from the verification and the message's place in it.
    """
    digest = hashlib.sha256(f"{verification_id}/{position}".encode()).hexdigest()
    return "VL" + digest[:32]


def verification_resource(
    verification: Verification, *, account_sid: str, service_sid: str, base_url: str
) -> VerificationResource:
    """Render a verification as Twilio's Verification resource.

    ``base_url`` is where the surface is served (``…/twilio``), for the resource's ``url``.
    """
    sid = twilio_ids.sid_of(twilio_ids.VERIFICATION, verification.id)
    return VerificationResource(
        sid=sid,
        service_sid=service_sid,
        account_sid=account_sid,
        to=verification.phone_number,
        channel="sms",
        status=verification.status.value,
        valid=verification.status is VerificationStatus.APPROVED,
        lookup=Lookup(),
        amount=None,
        payee=None,
        send_code_attempts=[
            CodeAttempt(
                attempt_sid=_attempt_sid(verification.id, position),
                channel="sms",
                time=twilio_time(message.created_at),
            )
            for position, message in enumerate(verification.messages)
        ],
        date_created=twilio_time(verification.created_at),
        date_updated=twilio_time(_updated(verification)),
        sna=None,
        url=f"{base_url}/v2/Services/{service_sid}/Verifications/{sid}",
    )


def check_resource(
    verification: Verification,
    *,
    status: VerificationStatus,
    valid: bool,
    account_sid: str,
    service_sid: str,
) -> VerificationCheckResource:
    """Render the answer to a check: ``status`` and ``valid`` are this check's verdict."""
    return VerificationCheckResource(
        sid=twilio_ids.sid_of(twilio_ids.VERIFICATION, verification.id),
        service_sid=service_sid,
        account_sid=account_sid,
        to=verification.phone_number,
        channel="sms",
        status=status.value,
        valid=valid,
        amount=None,
        payee=None,
        date_created=twilio_time(verification.created_at),
        date_updated=twilio_time(_updated(verification)),
        sna_attempts_error_codes=None,
    )
