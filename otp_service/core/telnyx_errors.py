"""Telnyx messaging error codes, classified in one table by how the service reacts to them.

A send can fail synchronously (Telnyx refuses the API request) or asynchronously (a
``message.finalized`` webhook reports ``delivery_failed``, ``sending_failed`` or ``expired``
with ``errors[].code``). Either way the service must choose one of three reactions, and the
issue "classify Telnyx error codes in one table with a test for each row" asks for that choice
to live in a single place, so no caller grows its own partial list of codes. The codes and
their meanings are those of ``shared/reference/telnyx-messaging.md`` §3.3 (Telnyx's canonical
list); §6 (opt-outs) and §7 (sender types) explain the sender-related ones.

The grouping:

* ``NEXT_SENDER``: the failure belongs to the sender, or is transient on the way to the
  handset, so another sender of the tenant's chain (another type, ``from`` or number) could
  succeed: an invalid, unhealthy or unregistered ``from``, a sender type the destination does
  not accept, alphanumeric and 10DLC/toll-free problems, spam blocks of the sending number,
  queue and rate limits, and carrier or transit failures.
* ``OPTED_OUT``: 40300 only. The recipient replied STOP; Telnyx's block rule covers the whole
  messaging profile (§6), and sending through another sender would also ignore their wish.
* ``GIVE_UP``: no sender of ours can avoid it: the destination is invalid or unroutable, the
  content would be refused from any sender, the account, profile or API key is unusable,
  Telnyx has blocked 2FA traffic to the number (40020), or the request itself is malformed.

Codes missing from the table count as ``NEXT_SENDER``: trying the next configured sender costs
at most one SMS, while giving up on a code we do not know fails a user's login.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

import msgspec


class Reaction(enum.StrEnum):
    """What the service does after a send fails with a given Telnyx error code."""

    NEXT_SENDER = "next_sender"
    OPTED_OUT = "opted_out"
    GIVE_UP = "give_up"


class Rule(msgspec.Struct, frozen=True):
    """One row of the table: the reaction, and a short paraphrase of Telnyx's description."""

    reaction: Reaction
    meaning: str


_NEXT = Reaction.NEXT_SENDER
_STOP = Reaction.OPTED_OUT
_GIVE_UP = Reaction.GIVE_UP

RULES: Final[Mapping[str, Rule]] = MappingProxyType(
    {
        # Request and account level (synchronous).
        "10001": Rule(_GIVE_UP, "phone number inactive"),
        "10002": Rule(_GIVE_UP, "phone number invalid"),
        "10004": Rule(_GIVE_UP, "required parameter missing"),
        "10009": Rule(_GIVE_UP, "authentication failed"),
        "10010": Rule(_GIVE_UP, "authorization failed"),
        # HTTP 429 on our API key: it proves nothing was sent, so moving on cannot send a
        # duplicate, and the HTTP client has already made its one retry by then.
        "10011": Rule(_NEXT, "too many requests (API rate limit)"),
        "10015": Rule(_GIVE_UP, "bad request (malformed)"),
        # Ambiguous: Telnyx uses it for a bad `to` or `from`. Both are checked as E.164 before
        # a send (core.phone, core.senders), so Telnyx disagreeing is most likely about the
        # destination, which no sender can fix.
        "10016": Rule(_GIVE_UP, "number must be +E.164"),
        "20001": Rule(_GIVE_UP, "API key secret invalid"),
        "20002": Rule(_GIVE_UP, "API key revoked"),
        "20003": Rule(_GIVE_UP, "API key forbidden"),
        "20008": Rule(_GIVE_UP, "API key invalid"),
        "20012": Rule(_GIVE_UP, "account inactive (may be out of funds)"),
        "20013": Rule(_GIVE_UP, "account blocked"),
        # Only alphanumeric senders need Level-2 verification (§7): a number sender avoids it.
        "20017": Rule(_NEXT, "account not Level-2 verified (needed for alphanumeric senders)"),
        "20100": Rule(_GIVE_UP, "insufficient funds"),
        # Delivery (asynchronous, from message.finalized webhooks).
        "40001": Rule(_GIVE_UP, "not routable: landline or non-routable wireless number"),
        "40002": Rule(_NEXT, "spam block of the sending number, temporary"),
        "40003": Rule(_NEXT, "spam block of the sending number, permanent"),
        "40004": Rule(_NEXT, "rejected by destination, reason unknown"),
        "40005": Rule(_NEXT, "expired during transmission, after leaving Telnyx"),
        "40006": Rule(_NEXT, "recipient carrier server unavailable"),
        "40007": Rule(_GIVE_UP, "loop detected"),
        "40008": Rule(_NEXT, "undeliverable: the carrier did not accept it"),
        "40009": Rule(_GIVE_UP, "invalid message body by the carrier's rules"),
        "40010": Rule(_NEXT, "not 10DLC registered, but the carrier requires it"),
        "40011": Rule(_NEXT, "over the carrier's rate limit, treated as spam; temporary"),
        "40012": Rule(_GIVE_UP, "carrier rejected the destination number"),
        "40013": Rule(_NEXT, "carrier rejected the source number"),
        "40014": Rule(_NEXT, "expired in the Telnyx queue"),
        # Telnyx's filter judges the traffic of the sending number as much as the text; the
        # text is our fixed template, so another number is the only thing left to change.
        "40015": Rule(_NEXT, "Telnyx internal spam filter"),
        "40016": Rule(_NEXT, "T-Mobile 10DLC sending limit reached"),
        "40017": Rule(_NEXT, "AT&T 10DLC spam rejection"),
        "40018": Rule(_NEXT, "AT&T 10DLC sending limit reached"),
        "40019": Rule(_NEXT, "AT&T 10DLC tag data invalid"),
        "40020": Rule(_GIVE_UP, "possible artificial traffic inflation: 2FA blocked for 24 h"),
        "40100": Rule(_NEXT, "number not messaging-enabled"),
        # Sending (synchronous).
        "40300": Rule(_STOP, "blocked due to STOP message (opt-out block rule)"),
        "40301": Rule(_NEXT, "message type not supported from this sender to this 'to'"),
        "40302": Rule(_GIVE_UP, "too many parts"),
        "40304": Rule(_GIVE_UP, "invalid mix of content arguments"),
        "40305": Rule(_NEXT, "invalid 'from' (not on the profile, or an unhealthy pool number)"),
        "40306": Rule(_NEXT, "no alphanumeric sender configured on the profile"),
        "40307": Rule(_NEXT, "alphanumeric sender does not match the profile's"),
        "40308": Rule(_NEXT, "invalid 'from' for MMS"),
        "40309": Rule(_GIVE_UP, "destination region not in the profile's whitelisted destinations"),
        "40310": Rule(_GIVE_UP, "invalid 'to' address"),
        "40311": Rule(_GIVE_UP, "v1 profile secret invalid"),
        "40312": Rule(_GIVE_UP, "messaging profile disabled"),
        "40313": Rule(_GIVE_UP, "v1 profile secret missing"),
        "40314": Rule(_GIVE_UP, "messaging disabled on the account"),
        "40315": Rule(_NEXT, "unhealthy 'from' (failed the health check)"),
        "40316": Rule(_GIVE_UP, "no content"),
        "40317": Rule(_GIVE_UP, "invalid MMS content"),
        "40318": Rule(_NEXT, "message queue full"),
        "40319": Rule(_NEXT, "sender type incompatible with the 'to'"),
        "40320": Rule(_NEXT, "'from' temporarily unusable"),
        "40321": Rule(_NEXT, "no usable numbers on the profile (number pool)"),
        "40322": Rule(_GIVE_UP, "blocked because of content"),
        "40325": Rule(_NEXT, "invalid alphanumeric sender ID"),
        "40328": Rule(_GIVE_UP, "SMS over the recommended size"),
        "40329": Rule(_NEXT, "toll-free number not verified"),
        "40330": Rule(_NEXT, "toll-free number not provisioned"),
        "40331": Rule(_GIVE_UP, "profile has no whitelisted destinations"),
        "40333": Rule(_GIVE_UP, "messaging profile spend limit reached"),
    }
)


def reaction_to(codes: Sequence[str]) -> Reaction:
    """The reaction to a failure reported with ``codes`` (Telnyx's ``errors[].code``).

    ``OPTED_OUT`` if any code is an opt-out, else ``GIVE_UP`` if any code gives up, else
    ``NEXT_SENDER``; unknown codes, and a failure reported without any, count as
    ``NEXT_SENDER`` (see the module docstring).
    """
    reactions = {RULES[code].reaction if code in RULES else _NEXT for code in codes}
    for reaction in (_STOP, _GIVE_UP):
        if reaction in reactions:
            return reaction
    return _NEXT
