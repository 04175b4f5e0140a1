"""Sandbox numbers: a tenant's numbers that never reach Telnyx, each playing a scripted outcome.

Developers, CI and app-store reviewers need numbers that behave predictably without an SMS
(or a Telnyx account) in the loop. A listed number takes the place of the destination's
whole sender chain: the service itself plays the carrier (``usecases/sandbox.py``), and its
receipts go through the same receipt path as Telnyx's webhooks, so fallback, silence
timers, events and stats behave as for a real number. Everything before the send (limits,
attempts, the fraud guard, opt-outs) is the real thing.

A fixed code is a password for its number: whoever knows it passes verification for that
number, for as long as it is listed. The admin API warns about each one (``warnings``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from otp_service.core import phone
from otp_service.errors import InvalidPhoneNumber

MAX_SANDBOX_NUMBERS: Final = 100
"""Sandbox numbers per tenant: enough for a test suite, few enough to read in one answer."""

DEFAULT_ERROR_CODE: Final = "40008"
"""An undeliverable number's error code by default: Telnyx's "undeliverable: the carrier did
not accept it", the commonest delivery failure (``core.telnyx_errors``)."""

OPT_OUT_CODE: Final = "40300"
"""Telnyx's refusal of a number that replied STOP, which the ``opted_out`` outcome plays."""


class SandboxOutcome(enum.StrEnum):
    """What happens to a code sent to a sandbox number."""

    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    SILENT = "silent"
    OPTED_OUT = "opted_out"


SandboxNumber = Annotated[
    str,
    Meta(
        pattern=r"^\+[1-9][0-9]{7,14}$",
        description="E.164-shaped: '+' and 8 to 15 digits; need not be a valid number",
    ),
]


class SandboxScript(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a sandbox number does with the codes sent to it.

    `delivered`: a `message.sent` receipt, then `delivered` after `delay_seconds`.
    `undeliverable`: `message.sent`, then `delivery_failed` with `error_code` (so the
    verification fails, as it does when no sender could deliver). `silent`: no receipt at
    all (the tenant's `delivery_timeout_seconds` applies). `opted_out`: refused at once as
    Telnyx refuses a number that replied STOP (40300): the opt-out is recorded and starts
    answer 409. `fixed_code`, when set, is the code every send carries instead of a
    random one: it is a password for the number.
    """

    outcome: SandboxOutcome = SandboxOutcome.DELIVERED
    delay_seconds: Annotated[
        int, Meta(ge=0, le=3600, description="`delivered` only: wait before the receipt")
    ] = 0
    error_code: (
        Annotated[
            str,
            Meta(
                pattern=r"^[0-9]{5}$",
                description="`undeliverable` only: the Telnyx error code of the failure "
                f"({DEFAULT_ERROR_CODE} if null)",
            ),
        ]
        | None
    ) = None
    fixed_code: (
        Annotated[
            str,
            Meta(
                pattern=r"^[0-9]{4,10}$",
                description="The code every send carries; exactly the tenant's `code_length` "
                "digits. Anyone who knows it passes verification for this number.",
            ),
        ]
        | None
    ) = None


class ScriptedReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """A receipt the sandbox reports for a message when ``due`` (epoch ms) comes."""

    status: str
    error_codes: list[str]
    due: int


def parse_number(raw: str, listed: Mapping[str, SandboxScript]) -> phone.PhoneNumber:
    """Parse a destination as ``phone.parse_e164`` does, but accept listed fictional numbers.

    Raises:
        InvalidPhoneNumber: an invalid number that is not one of ``listed``.
    """
    try:
        return phone.parse_e164(raw)
    except InvalidPhoneNumber:
        if raw not in listed:
            raise
        return phone.parse_fictional(raw)


def refusal(script: SandboxScript) -> tuple[str, ...]:
    """The Telnyx error codes a send to the number is refused with at once (none: accepted)."""
    return (OPT_OUT_CODE,) if script.outcome is SandboxOutcome.OPTED_OUT else ()


def receipts(script: SandboxScript, now_ms: int) -> list[ScriptedReceipt]:
    """The receipts an accepted send gets, in order of ``due``."""
    match script.outcome:
        case SandboxOutcome.DELIVERED:
            final = ScriptedReceipt(
                status="delivered", error_codes=[], due=now_ms + script.delay_seconds * 1000
            )
        case SandboxOutcome.UNDELIVERABLE:
            code = script.error_code or DEFAULT_ERROR_CODE
            final = ScriptedReceipt(status="delivery_failed", error_codes=[code], due=now_ms)
        case _:
            return []
    return [ScriptedReceipt(status="sent", error_codes=[], due=now_ms), final]


def problems(listed: Mapping[str, SandboxScript], code_length: int) -> list[dict[str, str]]:
    """What is wrong with the sandbox numbers beyond their schema, one entry per field."""
    found: list[dict[str, str]] = []
    for number, script in listed.items():
        field = f"settings.sandbox_numbers.{number}"
        try:
            phone.parse_fictional(number)
        except InvalidPhoneNumber:
            found.append({"field": field, "message": "no country has this calling code"})
        if script.fixed_code is not None and len(script.fixed_code) != code_length:
            found.append(
                {
                    "field": f"{field}.fixed_code",
                    "message": f"must be exactly code_length ({code_length}) digits",
                }
            )
        if script.error_code is not None and script.outcome is not SandboxOutcome.UNDELIVERABLE:
            found.append(
                {"field": f"{field}.error_code", "message": "only an undeliverable number has one"}
            )
        if script.error_code == OPT_OUT_CODE:
            found.append(
                {
                    "field": f"{field}.error_code",
                    "message": f"{OPT_OUT_CODE} is an opt-out: use the outcome opted_out",
                }
            )
        if script.delay_seconds and script.outcome is not SandboxOutcome.DELIVERED:
            found.append(
                {"field": f"{field}.delay_seconds", "message": "only a delivered number waits"}
            )
    return found


def warnings(listed: Mapping[str, SandboxScript]) -> list[str]:
    """What an operator should know about the sandbox numbers: each fixed code is a password."""
    return [
        f"sandbox number {number} has a fixed_code: anyone who knows it passes verification "
        "for that number; treat it as a password and list only numbers you own or "
        "fictional ones"
        for number, script in listed.items()
        if script.fixed_code is not None
    ]
