"""Sender chains: which senders a destination country uses, and whether a chain is valid.

Telnyx's rules (``shared/reference/telnyx-messaging.md`` §7): an alphanumeric sender ID is
3 to 11 letters, digits or spaces, not all digits, and cannot send to the US, Canada or
Puerto Rico; a short code is 5 or 6 digits; a long code is an E.164 number; a number pool
has no ``from`` and, like an alphanumeric sender, needs the tenant's messaging profile.
"""

from __future__ import annotations

import re

from otp_service.core import sandbox
from otp_service.core.model import Sender, SenderType, TenantSettings
from otp_service.core.phone import valid_e164

_ALPHANUMERIC = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{3,11}", re.ASCII)
_SHORT_CODE = re.compile(r"[0-9]{5,6}", re.ASCII)
_NO_ALPHANUMERIC = frozenset({"US", "CA", "PR"})
_NEEDS_PROFILE = frozenset({SenderType.ALPHANUMERIC_SENDER_ID, SenderType.NUMBER_POOL})


def chain_for(settings: TenantSettings, country: str) -> list[Sender]:
    """Return the ordered senders for ``country``: its own chain, else ``default``, else none."""
    return settings.senders.get(country) or settings.senders.get("default") or []


SANDBOX_SENDER = Sender(type=SenderType.SANDBOX)
"""The one sender of a sandbox number: the service itself, never Telnyx."""


def route(settings: TenantSettings, e164: str, country: str) -> list[Sender]:
    """Return the senders a code to ``e164`` goes through.

    A listed sandbox number has the sandbox alone (it never reaches Telnyx, and has no
    fallback); any other number has ``chain_for`` its country.
    """
    return [SANDBOX_SENDER] if e164 in settings.sandbox_numbers else chain_for(settings, country)


def country_allowed(settings: TenantSettings, country: str) -> bool:
    """Tell whether the tenant's ``allowed_countries`` admit ``country``."""
    return "*" in settings.allowed_countries or country in settings.allowed_countries


def _sender_problem(sender: Sender, country: str) -> str | None:
    source = sender.from_
    if sender.type is SenderType.SANDBOX:
        return "sandbox is not a sender to configure: list the numbers in sandbox_numbers"
    if sender.type is SenderType.NUMBER_POOL:
        return "a number_pool sender takes no 'from'" if source is not None else None
    if source is None:
        return f"a {sender.type} sender needs 'from'"
    if sender.type is SenderType.ALPHANUMERIC_SENDER_ID:
        if country in _NO_ALPHANUMERIC:
            return f"alphanumeric sender IDs cannot send to {country}"
        valid = _ALPHANUMERIC.fullmatch(source) is not None
        rule = "an alphanumeric sender ID is 3 to 11 letters, digits or spaces, not all digits"
    elif sender.type is SenderType.SHORT_CODE:
        valid, rule = _SHORT_CODE.fullmatch(source) is not None, "a short code is 5 or 6 digits"
    else:
        valid, rule = valid_e164(source) is not None, "a long code is a valid E.164 number"
    return None if valid else rule


def settings_problems(settings: TenantSettings) -> list[dict[str, str]]:
    """List what is wrong with ``settings`` beyond their schema, one entry per field.

    Each entry is ``{"field": <JSON path>, "message": <why>}``, the shape of the admin API's
    ``validation_error`` ``errors`` member.
    """
    problems: list[dict[str, str]] = []
    for country, chain in settings.senders.items():
        if not chain:
            problems.append({"field": f"settings.senders.{country}", "message": "empty chain"})
        for index, sender in enumerate(chain):
            field = f"settings.senders.{country}[{index}]"
            problem = _sender_problem(sender, country)
            if problem is not None:
                problems.append({"field": field, "message": problem})
            if sender.type in _NEEDS_PROFILE and settings.messaging_profile_id is None:
                problems.append(
                    {"field": field, "message": f"{sender.type} needs messaging_profile_id"}
                )
    default_alphanumeric = any(
        sender.type is SenderType.ALPHANUMERIC_SENDER_ID
        for sender in settings.senders.get("default", [])
    )
    reached = sorted(
        country
        for country in _NO_ALPHANUMERIC
        if country not in settings.senders and country_allowed(settings, country)
    )
    if default_alphanumeric and reached:
        problems.append(
            {
                "field": "settings.senders.default",
                "message": "alphanumeric sender IDs cannot send to "
                f"{', '.join(reached)}: give them a chain of their own or leave them out of "
                "allowed_countries",
            }
        )
    if "*" in settings.allowed_countries and len(settings.allowed_countries) > 1:
        problems.append({"field": "settings.allowed_countries", "message": "'*' must stand alone"})
    problems.extend(sandbox.problems(settings.sandbox_numbers, settings.code_length))
    return problems
