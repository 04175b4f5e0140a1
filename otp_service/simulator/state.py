"""The simulator's memory: sent messages, scripted behaviours and opt-outs, per app instance."""

from __future__ import annotations

import asyncio
import enum
import math
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from otp_service.core.model import SenderType

E164 = Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{1,14}$")]

POOL_NUMBER: Final = "+13125550199"
"""The number a number-pool send goes out from: the simulator's pool holds just this one."""

_OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
)
_OPT_IN_KEYWORDS: Final = frozenset({"START", "UNSTOP"})
_CODE: Final = re.compile(r"(?<![0-9])[0-9]{4,10}(?![0-9])")
"""A run of 4 to 10 ASCII digits: the code in a verification SMS, whatever its wording."""


class Action(enum.StrEnum):
    """What the simulator does with a send that a behaviour matches."""

    DELIVER = "deliver"
    FAIL = "fail"
    REJECT = "reject"
    TIMEOUT = "timeout"
    SILENT = "silent"
    RESET = "reset"
    HOLD = "hold"


class Outcome(enum.StrEnum):
    """How the inbox (a person playing the carrier) answers for a held message.

    ``delivered`` and ``failed`` finalize it now; ``late`` delivers it after a delay (past
    the service's receipt timeout, a fallback may already have gone out); ``silent`` sends
    no further receipt at all.
    """

    DELIVERED = "delivered"
    FAILED = "failed"
    LATE = "late"
    SILENT = "silent"


class Receipts(enum.StrEnum):
    """When and how the webhooks about an accepted send are posted.

    ``after``: in order, after the send is answered (what Telnyx usually does);
    ``before``: in order, each answered by the service before the send itself is answered;
    ``reversed``: after the answer, the last first (``message.finalized`` before
    ``message.sent``); ``twice``: after the answer, each event posted twice (Telnyx's
    redelivery of one event, same id).
    """

    AFTER = "after"
    BEFORE = "before"
    REVERSED = "reversed"
    TWICE = "twice"


class Behaviour(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A script for sends to one number: ``times`` sends (``None``: all) get ``action``.

    ``error_code`` is the Telnyx code of a ``reject`` (default 40305) or ``fail`` (default
    40008); ``http_status`` is the status of a ``reject``; ``final_status`` is how a ``fail``
    ends (``sending_failed`` also skips ``message.sent``). A ``reset`` takes the message (it
    is sent and reported) but the connection drops before the answer's body, as when the
    answer is lost on the way. A ``hold`` reports ``message.sent`` and then waits for the
    inbox page (or ``POST /_sim/messages/{id}/report``) to say how the carrier answers.
    ``delay_seconds`` passes before the send is acted on, whether or not the client still
    waits (so a slow send the client gave up on is still sent); ``receipts`` says when and
    how its webhooks come (``Receipts``).
    """

    to: E164
    action: Action
    sender_type: SenderType | None = None
    error_code: Annotated[str, Meta(pattern=r"^[0-9]{1,8}$")] | None = None
    http_status: Annotated[int, Meta(ge=400, le=599)] = 400
    times: Annotated[int, Meta(ge=1)] | None = None
    final_status: Literal["delivery_failed", "sending_failed", "expired"] = "delivery_failed"
    delay_seconds: Annotated[float, Meta(ge=0, le=60)] = 0.0
    receipts: Receipts = Receipts.AFTER


class OptOutRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A block rule to add: sends to ``to`` from ``from`` or through the profile are refused.

    With neither ``from`` nor ``messaging_profile_id``, every send to ``to`` is refused.
    """

    to: E164
    from_: str | None = msgspec.field(default=None, name="from")
    messaging_profile_id: str | None = None
    keyword: str | None = "STOP"


class InboundRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An SMS a handset sends to one of the account's numbers.

    Left out, ``to``, ``messaging_profile_id`` and ``webhook_url`` are those of the last
    message sent to the handset, as a reply reaches the number that texted it and Telnyx
    reports it with that number's profile (see ``SimulatorState.reply_context``).
    """

    from_: E164 = msgspec.field(name="from")
    to: Annotated[str, Meta(min_length=1)] | None = None
    text: str
    messaging_profile_id: str | None = None
    webhook_url: str | None = None


class Report(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The carrier's answer for a held message (``Outcome``).

    ``error_code`` is the Telnyx code of a ``failed`` (default 40008); ``delay_seconds`` is
    how long a ``late`` delivery takes.
    """

    outcome: Outcome
    error_code: Annotated[str, Meta(pattern=r"^[0-9]{1,8}$")] | None = None
    delay_seconds: Annotated[float, Meta(ge=0, le=600)] = 30.0


class Hold(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Whether every new message is held for the inbox to answer (unless scripted otherwise)."""

    hold: bool


class OptOut(msgspec.Struct, frozen=True, kw_only=True):
    """A block rule, shaped like Telnyx's ``OptOutItem``."""

    to: str
    from_: str | None = msgspec.field(name="from")
    messaging_profile_id: str | None
    keyword: str | None
    created_at: str

    def blocks(self, *, to: str, from_: str | None, messaging_profile_id: str | None) -> bool:
        """Whether this rule refuses a send; rules belong to a profile, as Telnyx's do."""
        if self.to != to:
            return False
        if self.from_ is None and self.messaging_profile_id is None:
            return True
        same_profile = self.messaging_profile_id is not None and (
            self.messaging_profile_id == messaging_profile_id
        )
        return same_profile or (self.from_ is not None and self.from_ == from_)


@dataclass(slots=True, kw_only=True)
class SimMessage:
    """One accepted outbound message and its progress through the simulated network."""

    id: str
    endpoint: str
    sender_type: SenderType
    from_: str
    to: str
    text: str
    messaging_profile_id: str | None
    webhook_url: str | None
    received_at: str
    status: str = "queued"
    sent_at: str | None = None
    completed_at: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    held: bool = False
    outcome: Outcome | None = None
    version: int = 0

    def payload(self) -> dict[str, Any]:
        """Render the message as Telnyx's ``OutboundMessagePayload``.

        The profile id is left out when the send named none: the simulator does not know
        which profile a long or short code belongs to, and the spec's field is not nullable.
        """
        gsm = self.text.isascii()
        per_part = 160 if gsm else 70
        payload: dict[str, Any] = {
            "record_type": "message",
            "direction": "outbound",
            "id": self.id,
            "type": "SMS",
            "organization_id": "b448f9cc-a842-4784-98e9-03c1a5872950",
            "from": {"phone_number": self.from_, "carrier": "TELNYX LLC", "line_type": "VoIP"},
            "to": [
                {
                    "phone_number": self.to,
                    "status": self.status,
                    "carrier": "SIMULATED MOBILE",
                    "line_type": "Wireless",
                }
            ],
            "cc": [],
            "text": self.text,
            "media": [],
            "subject": None,
            "encoding": "GSM-7" if gsm else "UCS-2",
            "num_chars": len(self.text),
            "parts": max(1, min(10, math.ceil(len(self.text) / per_part))),
            "tags": [],
            "cost": None,
            "cost_breakdown": None,
            "tcr_campaign_id": None,
            "tcr_campaign_billable": False,
            "tcr_campaign_registered": None,
            "received_at": self.received_at,
            "sent_at": self.sent_at,
            "completed_at": self.completed_at,
            "valid_until": None,
            "wait_seconds": 0.0,
            "errors": self.errors,
            "webhook_url": self.webhook_url,
            "webhook_failover_url": None,
        }
        if self.messaging_profile_id is not None:
            payload["messaging_profile_id"] = self.messaging_profile_id
        return payload

    def inbox_entry(self) -> dict[str, Any]:
        """Render the message for the developer inbox, code and all."""
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "sender_type": self.sender_type.value,
            "from": self.from_,
            "to": self.to,
            "text": self.text,
            "messaging_profile_id": self.messaging_profile_id,
            "status": self.status,
            "error_codes": [error["code"] for error in self.errors],
            "received_at": self.received_at,
            "webhook_url": self.webhook_url,
            "code": code_in(self.text),
            "held": self.held,
            "outcome": self.outcome,
        }


@dataclass(slots=True, kw_only=True)
class SimReply:
    """An inbound SMS the simulator posted to the service, kept for the inbox's threads."""

    id: str
    from_: str
    to: str
    text: str
    messaging_profile_id: str | None
    received_at: str
    delivered: bool | None = None
    """Whether the service acknowledged the webhook; ``None`` while it is being posted."""
    version: int = 0

    def inbox_entry(self) -> dict[str, Any]:
        """Render the reply for the inbox page."""
        return {
            "id": self.id,
            "from": self.from_,
            "to": self.to,
            "text": self.text,
            "messaging_profile_id": self.messaging_profile_id,
            "received_at": self.received_at,
            "delivered": self.delivered,
        }


def code_in(text: str) -> str | None:
    """Return the first run of 4 to 10 digits in an SMS text: its code, if it has one."""
    found = _CODE.search(text)
    return found.group() if found else None


def now_rfc3339() -> str:
    """Return the current UTC time as Telnyx writes it (milliseconds, ``Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_uuid() -> str:
    """Return a random UUID4 string, the form of Telnyx message and event ids."""
    return str(uuid.uuid4())


@dataclass(slots=True)
class _Script:
    behaviour: Behaviour
    remaining: int | None


@dataclass(slots=True)
class SimulatorState:
    """Everything the simulator remembers; one per app, lost when it stops."""

    messages: dict[str, SimMessage] = field(default_factory=dict)
    replies: dict[str, SimReply] = field(default_factory=dict)
    opt_outs: list[OptOut] = field(default_factory=list)
    hold: bool = False
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    version: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _scripts: list[_Script] = field(default_factory=list)

    def touch(self, item: SimMessage | SimReply | None = None) -> None:
        """Stamp a change (to ``item``, or to the inbox as a whole) and wake its watchers.

        Each change gets the next ``version``, so a watcher that saw version N asks for
        the items stamped after N; ``epoch`` changes when the inbox is emptied, so a
        watcher of the old one starts over.
        """
        self.version += 1
        if item is not None:
            item.version = self.version
        self._changed.set()
        self._changed = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """The event set by the next change (take it before reading, then wait on it)."""
        return self._changed

    def clear_messages(self) -> None:
        """Empty the inbox: messages and replies, under a new epoch."""
        self.messages.clear()
        self.replies.clear()
        self.epoch = secrets.token_hex(4)
        self.touch()

    def last_sent_to(self, handset: str, from_: str | None = None) -> SimMessage | None:
        """The last message sent to ``handset`` (from ``from_``, if given): what a reply answers."""
        return next(
            (
                m
                for m in reversed(self.messages.values())
                if m.to == handset and from_ in {None, m.from_}
            ),
            None,
        )

    def profile_for(self, handset: str, number: str | None) -> str | None:
        """The messaging profile a reply from ``handset`` to ``number`` is reported with.

        Telnyx reports the profile ``number`` belongs to; the simulator knows profiles only
        from sends, so it takes the last message to the handset that named one, preferring
        those from ``number`` (long-code sends name none, alphanumeric and pool sends do).
        """
        named = [
            m
            for m in reversed(self.messages.values())
            if m.to == handset and m.messaging_profile_id is not None
        ]
        same = next((m for m in named if m.from_ == number), None)
        chosen = same or next(iter(named), None)
        return None if chosen is None else chosen.messaging_profile_id

    def add_behaviour(self, behaviour: Behaviour) -> None:
        """Script the sends to a number, after any behaviours already scripted."""
        self._scripts.append(_Script(behaviour, behaviour.times))

    def clear_behaviours(self, to: str | None = None) -> None:
        """Forget every script (or those for one number): their sends are delivered again."""
        self._scripts = [s for s in self._scripts if to not in {None, s.behaviour.to}]

    def take_behaviour(self, to: str, sender_type: SenderType) -> Behaviour | None:
        """Return the behaviour for this send and use up one of its ``times``.

        A behaviour for this sender type wins over one for any sender type; among equals,
        the one scripted first applies until it is used up.
        """
        candidates = [
            script
            for script in self._scripts
            if script.behaviour.to == to
            and script.behaviour.sender_type in {None, sender_type}
            and (script.remaining is None or script.remaining > 0)
        ]
        if not candidates:
            return None
        script = next((s for s in candidates if s.behaviour.sender_type is not None), candidates[0])
        if script.remaining is not None:
            script.remaining -= 1
        return script.behaviour

    def blocking_opt_out(
        self, *, to: str, from_: str | None, messaging_profile_id: str | None
    ) -> OptOut | None:
        """Return the block rule that refuses this send, if any."""
        return next(
            (
                rule
                for rule in self.opt_outs
                if rule.blocks(to=to, from_=from_, messaging_profile_id=messaging_profile_id)
            ),
            None,
        )

    def add_opt_out(self, request: OptOutRequest) -> OptOut:
        """Record a block rule, as a STOP keyword or a carrier report would."""
        rule = OptOut(
            to=request.to,
            from_=request.from_,
            messaging_profile_id=request.messaging_profile_id,
            keyword=request.keyword,
            created_at=now_rfc3339(),
        )
        self.opt_outs.append(rule)
        return rule

    def apply_keyword(self, inbound: InboundRequest) -> None:
        """Create or lift a block rule for an inbound STOP or START, as Telnyx does."""
        keyword = " ".join(inbound.text.split()).upper()
        if keyword in _OPT_OUT_KEYWORDS:
            self.add_opt_out(
                OptOutRequest(
                    to=inbound.from_,
                    from_=inbound.to,
                    messaging_profile_id=inbound.messaging_profile_id,
                    keyword=keyword,
                )
            )
        elif keyword in _OPT_IN_KEYWORDS:
            self.opt_outs = [
                rule
                for rule in self.opt_outs
                if not rule.blocks(
                    to=inbound.from_,
                    from_=inbound.to,
                    messaging_profile_id=inbound.messaging_profile_id,
                )
            ]
