"""A Telnyx Messaging API v2 stand-in, for development and tests, with no account anywhere.

It answers the send endpoints the service uses, under ``/`` and ``/v2`` alike (so
``TELNYX_BASE_URL`` can look like the real one), validates each request against Telnyx's own
OpenAPI schemas, and reports on accepted messages with signed ``message.sent`` and
``message.finalized`` webhooks, sent in the background as Telnyx does.

Beside the Telnyx API, ``/_sim/...`` endpoints script what happens to sends to a number
(``deliver``, ``fail``, ``reject``, ``timeout``, ``silent``, ``reset``, after a delay, with
receipts before the answer, out of order or twice, or held for a person to answer), manage
opt-outs, list what was sent (a developer inbox with the codes in it, also as a live page at
``/``: ``simulator.inbox``), and send inbound SMS (e.g. STOP) as webhooks.
All state lives in the app instance and is gone when it stops.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx
import msgspec
import uvicorn
from litestar import Litestar, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.logging import LoggingConfig
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Send
from nacl.signing import SigningKey

from otp_service.core.model import SenderType
from otp_service.simulator import inbox
from otp_service.simulator.spec import TelnyxSpec, sender_type_of, telnyx_error
from otp_service.simulator.state import (
    POOL_NUMBER,
    Action,
    Behaviour,
    Hold,
    InboundRequest,
    OptOut,
    OptOutRequest,
    Outcome,
    Receipts,
    Report,
    SimMessage,
    SimReply,
    SimulatorState,
    new_uuid,
    now_rfc3339,
)
from otp_service.simulator.webhooks import WebhookSender

HOLD_SECONDS: Final = 30.0
"""How long a scripted ``timeout`` holds a send before giving up, unless the client leaves."""

_WEBHOOK_TIMEOUT_SECONDS: Final = 2.0
_MAX_PAGE_SIZE: Final = 250

SEND_PATHS: Final[dict[str, SenderType | None]] = {
    "/messages": None,
    "/messages/long_code": SenderType.LONG_CODE,
    "/messages/short_code": SenderType.SHORT_CODE,
    "/messages/alphanumeric_sender_id": SenderType.ALPHANUMERIC_SENDER_ID,
    "/messages/number_pool": SenderType.NUMBER_POOL,
}
"""Each send endpoint and the sender type it sends with (``/messages`` infers it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """How one simulator instance behaves.

    ``signing_seed`` is the 32-byte Ed25519 seed that signs webhooks; ``api_key``, when set,
    is the only Bearer token the Telnyx endpoints accept; ``default_webhook_url`` stands in
    for the messaging profile's webhook URL and ``messaging_profile_id`` for the profile of
    the account's numbers, when no send tells (see ``SimulatorState.profile_for``);
    ``webhook_delay_seconds`` passes before each webhook; ``http`` sends the webhooks (the
    app opens and closes its own when ``None``).
    """

    signing_seed: bytes
    api_key: str | None = None
    default_webhook_url: str | None = None
    messaging_profile_id: str | None = None
    webhook_delay_seconds: float = 0.0
    http: httpx.AsyncClient | None = None


def _json(content: object, status_code: int = 200) -> Response[Any]:
    return Response(content=content, status_code=status_code, media_type="application/json")


def _errors(status_code: int, *errors: dict[str, Any]) -> Response[Any]:
    return _json({"errors": list(errors)}, status_code)


async def _wait_for_disconnect(request: Request[Any, Any, Any]) -> None:
    """Return when the client closes the connection (its body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _CutOffBody(ASGIResponse):
    """An answer that stops after its headers: the body they announce never comes.

    The server then closes the connection, so the client sees it drop mid-answer.
    """

    async def send_body(self, send: Send, receive: Receive) -> None:
        """Send no body at all."""


class _LostAnswer(Response[Any]):
    """A send's answer lost on the way: status line and headers, then the connection drops."""

    def to_asgi_response(self, *_args: object, **_kwargs: object) -> ASGIResponse:
        """Answer with the headers of the JSON content only."""
        return _CutOffBody(body=msgspec.json.encode(self.content), media_type="application/json")


async def _scripted_refusal(
    behaviour: Behaviour, request: Request[Any, Any, Any]
) -> Response[Any] | None:
    """Answer a send scripted to be refused or to time out; ``None`` for the others."""
    if behaviour.action is Action.REJECT:
        detail = f"Sends to {behaviour.to} are scripted to be refused."
        code = behaviour.error_code or "40305"
        return _errors(behaviour.http_status, telnyx_error(code, detail))
    if behaviour.action is Action.TIMEOUT:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HOLD_SECONDS):
                await _wait_for_disconnect(request)
        return _errors(504, telnyx_error("10007", "The send was held until it timed out."))
    return None


class Simulator:
    """The simulator's behaviour, over its state; the route handlers only delegate here."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.spec = TelnyxSpec()
        self.state = SimulatorState()
        self.signing_key = SigningKey(config.signing_seed)
        self.webhooks = WebhookSender(self.signing_key)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Litestar) -> AsyncIterator[None]:
        """Open the webhook client (unless one was given) and stop deliveries on shutdown."""
        async with contextlib.AsyncExitStack() as stack:
            http = self.config.http
            if http is None:
                http = await stack.enter_async_context(
                    httpx.AsyncClient(timeout=_WEBHOOK_TIMEOUT_SECONDS, trust_env=False)
                )
            self.webhooks.http = http
            try:
                yield
            finally:
                await self.webhooks.aclose()

    def authorised(self, request: Request[Any, Any, Any]) -> bool:
        """Whether the request carries the configured API key (any request does if none)."""
        if self.config.api_key is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.config.api_key}".encode())

    async def send(self, path: str, request: Request[Any, Any, Any]) -> Response[Any]:
        """Answer a send: refuse it as Telnyx would, or accept it and start its webhooks."""
        if not self.authorised(request):
            return _errors(401, telnyx_error("10009", "The API key is missing or wrong."))
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return _errors(400, telnyx_error("10015", "The request body is not valid JSON."))
        if errors := self.spec.request_errors(path, body):
            return _errors(422, *errors)
        sender_type = SEND_PATHS[path] or sender_type_of(body)
        sender = POOL_NUMBER if sender_type is SenderType.NUMBER_POOL else body["from"]
        profile = body.get("messaging_profile_id")
        if self.state.blocking_opt_out(to=body["to"], from_=sender, messaging_profile_id=profile):
            detail = f"Messages from {sender} to {body['to']} are blocked by a block rule."
            return _errors(403, telnyx_error("40300", detail, pointer="/to"))
        behaviour = self.state.take_behaviour(body["to"], sender_type)
        if behaviour is not None:
            await asyncio.sleep(behaviour.delay_seconds)
            scripted = await _scripted_refusal(behaviour, request)
            if scripted is not None:
                return scripted
        return await self._accept(path, body, sender_type, sender, behaviour)

    async def _accept(
        self,
        path: str,
        body: dict[str, Any],
        sender_type: SenderType,
        sender: str,
        behaviour: Behaviour | None,
    ) -> Response[Any]:
        """Take a send: keep the message, report on it as scripted, answer with it."""
        message = SimMessage(
            id=new_uuid(),
            endpoint=path,
            sender_type=sender_type,
            from_=sender,
            to=body["to"],
            text=body.get("text", ""),
            messaging_profile_id=body.get("messaging_profile_id"),
            webhook_url=body.get("webhook_url"),
            received_at=now_rfc3339(),
        )
        self.state.messages[message.id] = message
        self.state.touch(message)
        answer = {"data": message.payload()}
        if behaviour is None or behaviour.action is not Action.SILENT:
            if behaviour is not None and behaviour.receipts is Receipts.BEFORE:
                await self._progress(message, behaviour)
            else:
                self.webhooks.spawn(self._progress(message, behaviour))
        if behaviour is not None and behaviour.action is Action.RESET:
            return _LostAnswer(answer)
        return _json(answer)

    async def _progress(self, message: SimMessage, behaviour: Behaviour | None) -> None:
        """Move a message to ``sent`` and then its final status, reporting each step.

        Each event shows the message as it was at its step, even when it is posted late
        (``reversed``) or again (``twice``, the same event id). A held message stops at
        ``sent`` until ``report`` finalizes it.
        """
        holding = (behaviour is None and self.state.hold) or (
            behaviour is not None and behaviour.action is Action.HOLD
        )
        failing = behaviour is not None and behaviour.action is Action.FAIL
        final_status = behaviour.final_status if behaviour is not None and failing else "delivered"
        receipts = behaviour.receipts if behaviour is not None else Receipts.AFTER
        steps = [("sent", "message.sent")] if final_status != "sending_failed" else []
        if not holding:
            steps.append((final_status, "message.finalized"))
        held: list[dict[str, Any]] = []
        for status, event_type in steps:
            await asyncio.sleep(self.config.webhook_delay_seconds)
            message.status = status
            if event_type == "message.sent":
                message.sent_at = now_rfc3339()
            else:
                message.completed_at = now_rfc3339()
                if behaviour is not None and failing:
                    message.errors = [_undelivered(behaviour.error_code)]
            message.held = holding and event_type == "message.sent"
            self.state.touch(message)
            event = _event(event_type, message)
            if receipts is Receipts.REVERSED:
                held.insert(0, event)
                continue
            for _ in range(2 if receipts is Receipts.TWICE else 1):
                await self._report(message, event)
        for event in held:
            await self._report(message, event)

    async def _report(self, message: SimMessage, event: dict[str, Any]) -> None:
        url = message.webhook_url or self.config.default_webhook_url
        if url is not None:
            await self.webhooks.deliver(url, event)

    def report(self, message_id: str, report: Report) -> SimMessage:
        """Answer for a held message as its carrier would (``Outcome``), in the background.

        Only a held message can be answered: a final receipt is never taken back, by Telnyx
        or by the service, so answering any other message would show what cannot happen.
        """
        message = self.state.messages.get(message_id)
        if message is None:
            raise NotFoundException(f"no message with id {message_id}")
        if not message.held:
            raise ClientException(
                f"message {message_id} is not held (it is {message.status}): only a held"
                " message waits for an answer; hold new messages first",
                status_code=409,
            )
        message.held = False
        message.outcome = report.outcome
        self.state.touch(message)
        if report.outcome is not Outcome.SILENT:
            self.webhooks.spawn(self._finalize(message, report))
        return message

    async def _finalize(self, message: SimMessage, report: Report) -> None:
        """Report the final status the inbox chose, after the delay of a late delivery."""
        if report.outcome is Outcome.LATE:
            await asyncio.sleep(report.delay_seconds)
        failed = report.outcome is Outcome.FAILED
        message.status = "delivery_failed" if failed else "delivered"
        message.completed_at = now_rfc3339()
        if failed:
            message.errors = [_undelivered(report.error_code)]
        self.state.touch(message)
        await self._report(message, _event("message.finalized", message))

    def get_message(self, message_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
        """Answer ``GET /messages/{id}`` for a message this simulator accepted."""
        if not self.authorised(request):
            return _errors(401, telnyx_error("10009", "The API key is missing or wrong."))
        message = self.state.messages.get(message_id)
        if message is None:
            detail = f"No message with id {message_id}."
            return _errors(404, telnyx_error("10005", detail, pointer="/id"))
        return _json({"data": message.payload()})

    def list_opt_outs(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Answer ``GET /messaging_optouts``: filtered, paginated, optionally redacted.

        Its errors are single error objects, not ``{"errors": [...]}``: the spec declares
        them so for this endpoint.
        """
        if not self.authorised(request):
            return _json(telnyx_error("10009", "The API key is missing or wrong."), 401)
        query = request.query_params
        try:
            number = int(query.get("page[number]", "1"))
            size = int(query.get("page[size]", "20"))
        except ValueError:
            number = size = 0
        if number < 1 or not 1 <= size <= _MAX_PAGE_SIZE:
            error = telnyx_error("10015", "page[number] must be 1 or more and page[size] 1 to 250.")
            error["source"] = {"parameter": "page"}
            return _json(error, 400)
        rules = [
            rule
            for rule in self.state.opt_outs
            if query.get("filter[messaging_profile_id]") in {None, rule.messaging_profile_id}
            and query.get("filter[from]") in {None, rule.from_}
        ]
        page = rules[(number - 1) * size : number * size]
        redact = query.get("redaction_enabled", "false").lower() == "true"
        meta = {
            "page_number": number,
            "page_size": size,
            "total_pages": math.ceil(len(rules) / size),
            "total_results": len(rules),
        }
        return _json({"data": [_opt_out_item(rule, redact=redact) for rule in page], "meta": meta})

    def _resolve(self, inbound: InboundRequest) -> tuple[InboundRequest, str, str]:
        """Fill in what a reply leaves out from the last message sent to the handset.

        Telnyx reports an inbound message with the messaging profile of the number it
        reaches and posts it to that profile's webhook URL: here the profile of the last
        message to the handset that named one (else the configured one), and that message's
        webhook URL (else the default one). Returns the filled-in request, its ``to`` and
        its webhook URL.
        """
        last = self.state.last_sent_to(inbound.from_, inbound.to)
        to = inbound.to or (last.from_ if last is not None else None)
        if to is None:
            raise ValidationException(f"no 'to' given and nothing was sent to {inbound.from_}")
        profile = inbound.messaging_profile_id or self.state.profile_for(inbound.from_, to)
        url = inbound.webhook_url or (last.webhook_url if last is not None else None)
        url = url or self.config.default_webhook_url
        if url is None:
            raise ValidationException("no webhook_url given and no default_webhook_url set")
        profile = profile or self.config.messaging_profile_id
        resolved = msgspec.structs.replace(
            inbound, to=to, messaging_profile_id=profile, webhook_url=url
        )
        return resolved, to, url

    async def inbound(self, request: InboundRequest) -> dict[str, Any]:
        """Send a ``message.received`` webhook now, applying STOP/START as Telnyx does.

        Unlike delivery reports it is sent before the answer, so a caller can act on the
        outcome (``delivered``) without polling.
        """
        inbound, to, url = self._resolve(request)
        self.state.apply_keyword(inbound)
        now = now_rfc3339()
        payload: dict[str, Any] = {
            "record_type": "message",
            "direction": "inbound",
            "id": new_uuid(),
            "type": "SMS",
            "from": {
                "phone_number": inbound.from_,
                "carrier": "SIMULATED MOBILE",
                "line_type": "Wireless",
                "status": "received",
            },
            "to": [{"phone_number": to, "status": "webhook_delivered"}],
            "cc": [],
            "text": inbound.text,
            "media": [],
            "encoding": "GSM-7" if inbound.text.isascii() else "UCS-2",
            "parts": 1,
            "errors": [],
            "received_at": now,
            "webhook_url": url,
        }
        if inbound.messaging_profile_id is not None:
            payload["messaging_profile_id"] = inbound.messaging_profile_id
        event_id = new_uuid()
        event = {
            "event_type": "message.received",
            "id": event_id,
            "occurred_at": now,
            "payload": payload,
            "record_type": "event",
        }
        reply = SimReply(
            id=event_id,
            from_=inbound.from_,
            to=to,
            text=inbound.text,
            messaging_profile_id=inbound.messaging_profile_id,
            received_at=now,
        )
        self.state.replies[reply.id] = reply
        self.state.touch(reply)
        reply.delivered = await self.webhooks.deliver(url, event)
        self.state.touch(reply)
        return {
            "event_id": event_id,
            "delivered": reply.delivered,
            "webhook_url": url,
            "to": to,
            "messaging_profile_id": inbound.messaging_profile_id,
        }


def _undelivered(error_code: str | None) -> dict[str, Any]:
    """The error a failed delivery reports (Telnyx's 40008, unless scripted otherwise)."""
    detail = "The simulated carrier did not deliver the message."
    return telnyx_error(error_code or "40008", detail)


def _event(event_type: str, message: SimMessage) -> dict[str, Any]:
    """A delivery event about ``message`` as it is now."""
    return {
        "event_type": event_type,
        "id": new_uuid(),
        "occurred_at": now_rfc3339(),
        "payload": message.payload(),
        "record_type": "event",
    }


def _opt_out_item(rule: OptOut, *, redact: bool) -> dict[str, Any]:
    """Render a rule as an ``OptOutItem``, whose ``from`` is a string when present."""
    item: dict[str, Any] = {
        "to": rule.to[:-4] + "****" if redact else rule.to,
        "messaging_profile_id": rule.messaging_profile_id,
        "keyword": rule.keyword,
        "created_at": rule.created_at,
    }
    if rule.from_ is not None:
        item["from"] = rule.from_
    return item


def _both(path: str) -> list[str]:
    """Serve a Telnyx path at the root and under ``/v2``, where the real API has it."""
    return [path, f"/v2{path}"]


def _send_handler(path: str) -> HTTPRouteHandler:
    async def send(
        request: Request[Any, Any, Any], sim: NamedDependency[Simulator]
    ) -> Response[Any]:
        return await sim.send(path, request)

    name = path.strip("/").replace("/", "_")
    return post(_both(path), name=name)(send)


@get(_both("/messages/{message_id:str}"), sync_to_thread=False)
def get_message(
    message_id: FromPath[str], request: Request[Any, Any, Any], sim: NamedDependency[Simulator]
) -> Response[Any]:
    """Return one sent message, as Telnyx's ``GET /messages/{id}`` does."""
    return sim.get_message(message_id, request)


@get(_both("/messaging_optouts"), sync_to_thread=False)
def list_opt_outs(
    request: Request[Any, Any, Any], sim: NamedDependency[Simulator]
) -> Response[Any]:
    """List the block rules, as Telnyx's ``GET /messaging_optouts`` does."""
    return sim.list_opt_outs(request)


@post("/_sim/behaviours", status_code=201, sync_to_thread=False)
def add_behaviour(data: JSONBody[Behaviour], sim: NamedDependency[Simulator]) -> Behaviour:
    """Script what happens to the next sends to a number."""
    sim.state.add_behaviour(data)
    return data


@delete("/_sim/behaviours", sync_to_thread=False)
def clear_behaviours(sim: NamedDependency[Simulator], to: FromQuery[str | None] = None) -> None:
    """Forget every script (``?to=``: those for one number), so their sends are delivered."""
    sim.state.clear_behaviours(to)


@get("/_sim/hold", sync_to_thread=False)
def get_hold(sim: NamedDependency[Simulator]) -> Hold:
    """Whether new messages are held for the inbox to answer."""
    return Hold(hold=sim.state.hold)


@post("/_sim/hold", status_code=200, sync_to_thread=False)
def set_hold(data: JSONBody[Hold], sim: NamedDependency[Simulator]) -> Hold:
    """Hold every new message at ``sent`` (unless a behaviour scripts it) until answered."""
    sim.state.hold = data.hold
    sim.state.touch()
    return data


@post("/_sim/messages/{message_id:str}/report", status_code=202)
async def report_message(
    message_id: FromPath[str], data: JSONBody[Report], sim: NamedDependency[Simulator]
) -> dict[str, Any]:
    """Answer for a held message as its carrier would: delivered, failed, late or silent."""
    return sim.report(message_id, data).inbox_entry()


@post("/_sim/opt-outs", status_code=201, sync_to_thread=False)
def add_opt_out(data: JSONBody[OptOutRequest], sim: NamedDependency[Simulator]) -> OptOut:
    """Add a block rule, as if the recipient had sent STOP."""
    return sim.state.add_opt_out(data)


@delete("/_sim/opt-outs", sync_to_thread=False)
def clear_opt_outs(sim: NamedDependency[Simulator]) -> None:
    """Lift every block rule."""
    sim.state.opt_outs.clear()


@get("/_sim/messages", sync_to_thread=False)
def list_messages(
    sim: NamedDependency[Simulator], to: FromQuery[str | None] = None
) -> list[dict[str, Any]]:
    """List the accepted messages, oldest first, optionally only those to one number."""
    return [m.inbox_entry() for m in sim.state.messages.values() if to in {None, m.to}]


@delete("/_sim/messages", sync_to_thread=False)
def clear_messages(sim: NamedDependency[Simulator]) -> None:
    """Empty the inbox (messages and replies)."""
    sim.state.clear_messages()


@get("/_sim/public-key", sync_to_thread=False)
def public_key(sim: NamedDependency[Simulator]) -> dict[str, str]:
    """Return the base64 Ed25519 key that verifies this simulator's webhooks."""
    return {"public_key": base64.b64encode(bytes(sim.signing_key.verify_key)).decode()}


@post("/_sim/inbound", status_code=200)
async def send_inbound(
    data: JSONBody[InboundRequest], sim: NamedDependency[Simulator]
) -> dict[str, Any]:
    """Deliver an inbound SMS (e.g. STOP) as a signed ``message.received`` webhook.

    ``to``, ``messaging_profile_id`` and ``webhook_url`` default to those of the last
    message sent to the handset (``Simulator._resolve``).
    """
    return await sim.inbound(data)


def create_simulator_app(config: SimulatorConfig) -> Litestar:
    """Build a simulator app whose state lives and dies with it.

    The app logs its own failures (not the client errors it raises: bad scripts, unknown
    paths) but leaves the root logger to whoever runs it, as it may share a process with the
    service (``otp-service dev``).
    """
    sim = Simulator(config)
    handlers: Sequence[HTTPRouteHandler] = [
        *(_send_handler(path) for path in SEND_PATHS),
        get_message,
        list_opt_outs,
        add_behaviour,
        clear_behaviours,
        add_opt_out,
        clear_opt_outs,
        list_messages,
        clear_messages,
        public_key,
        send_inbound,
        get_hold,
        set_hold,
        report_message,
        *inbox.HANDLERS,
    ]
    return Litestar(
        route_handlers=handlers,
        dependencies={
            "sim": Provide(lambda: sim, use_cache=True, sync_to_thread=False),
            "inbox": Provide(lambda: sim.state, use_cache=True, sync_to_thread=False),
        },
        lifespan=[sim.lifespan],
        openapi_config=None,
        logging_config=LoggingConfig(
            configure_root_logger=False,
            log_exceptions="always",
            disable_stack_trace={400, 404, 405},
        ),
    )


def run_simulator(host: str, port: int, config: SimulatorConfig) -> None:
    """Serve the simulator with uvicorn until interrupted."""
    uvicorn.run(create_simulator_app(config), host=host, port=port, log_level="info")
