"""The Telnyx simulator over real HTTP: spec validation, signed webhooks, scripts and opt-outs."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post
from litestar.params import FromPath

from otp_service.adapters.telnyx import OutboundSms, TelnyxClient
from otp_service.adapters.telnyx_webhook import (
    DeliveryEvent,
    InboundEvent,
    parse_event,
    verify_signature,
)
from otp_service.core.model import Sender, SenderType
from otp_service.errors import ProviderError, ProviderUnavailable
from otp_service.simulator import SimulatorConfig, create_simulator_app
from otp_service.simulator.inbox import events
from otp_service.simulator.spec import TelnyxSpec
from otp_service.simulator.state import POOL_NUMBER, SimulatorState
from tests.servers import serve

SEED = bytes(range(100, 132))
API_KEY = "KEY_simulator_test"
PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
TO = "+447400123456"
LONG_CODE = "+13125550100"
SPEC = TelnyxSpec()

VALID_BODIES: dict[str, dict[str, str]] = {
    "/messages": {"from": LONG_CODE, "to": TO, "text": "Code 123456"},
    "/messages/long_code": {"from": LONG_CODE, "to": TO, "text": "Code 123456"},
    "/messages/short_code": {"from": "12345", "to": TO, "text": "Code 123456"},
    "/messages/alphanumeric_sender_id": {
        "from": "ACME",
        "to": TO,
        "text": "Code 123456",
        "messaging_profile_id": PROFILE,
    },
    "/messages/number_pool": {"to": TO, "text": "Code 123456", "messaging_profile_id": PROFILE},
}


@dataclass(frozen=True)
class Hook:
    """One webhook request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)["data"]
        return data


class Receiver:
    """A webhook endpoint that records every delivery attempt and can fail the next few."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self.failures_left = 0
        self.url = ""

    def app(self) -> Litestar:
        receiver = self

        @post("/{name:str}", status_code=200)
        async def hook(name: FromPath[str], request: Request[Any, Any, Any]) -> Response[str]:
            body = await request.body()
            receiver.hooks.append(Hook(name, dict(request.headers), body))
            if receiver.failures_left > 0:
                receiver.failures_left -= 1
                return Response("busy", status_code=503)
            return Response("ok")

        return Litestar([hook], openapi_config=None, logging_config=None)

    def for_message(self, message_id: str) -> list[Hook]:
        return [h for h in self.hooks if h.data.get("payload", {}).get("id") == message_id]


async def eventually(check: Callable[[], bool]) -> None:
    """Poll for up to 5 s: webhooks arrive on the receiver's thread, not this loop."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not come true within 5 s")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with serve(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture(scope="module")
def simulator_url(receiver: Receiver) -> Iterator[str]:
    config = SimulatorConfig(
        signing_seed=SEED, api_key=API_KEY, default_webhook_url=f"{receiver.url}/default"
    )
    with serve(create_simulator_app(config)) as url:
        yield url


@pytest.fixture(scope="module")
def public_key(simulator_url: str) -> bytes:
    answer = httpx.get(f"{simulator_url}/_sim/public-key").json()
    return base64.b64decode(answer["public_key"])


@pytest.fixture(scope="module")
async def api(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=simulator_url, headers=headers) as client:
        yield client


@pytest.fixture(autouse=True)
async def clean(api: httpx.AsyncClient, receiver: Receiver) -> None:
    for path in ("/_sim/behaviours", "/_sim/opt-outs", "/_sim/messages"):
        (await api.delete(path)).raise_for_status()
    (await api.post("/_sim/hold", json={"hold": False})).raise_for_status()
    receiver.failures_left = 0
    receiver.hooks.clear()


async def script(api: httpx.AsyncClient, **behaviour: object) -> None:
    (await api.post("/_sim/behaviours", json={"to": TO, **behaviour})).raise_for_status()


async def send(api: httpx.AsyncClient, path: str = "/messages/long_code", **extra: str) -> str:
    answer = await api.post(path, json={**VALID_BODIES[path], **extra})
    assert answer.status_code == 200, answer.text
    message_id: str = answer.json()["data"]["id"]
    return message_id


def assert_signed(hook: Hook, public_key: bytes) -> None:
    verify_signature(
        public_key,
        timestamp=hook.headers.get("telnyx-timestamp"),
        signature=hook.headers.get("telnyx-signature-ed25519"),
        body=hook.body,
        now=time.time(),
    )


@pytest.mark.parametrize("path", list(VALID_BODIES))
async def test_a_valid_send_answers_a_spec_shaped_queued_message(
    api: httpx.AsyncClient, path: str
) -> None:
    """Every send endpoint accepts a valid body with Telnyx's OutboundMessageResponse."""
    answer = await api.post(path, json=VALID_BODIES[path])

    assert answer.status_code == 200
    SPEC.schema("OutboundMessageResponse").validate(answer.json())
    data = answer.json()["data"]
    assert data["record_type"] == "message"
    assert data["direction"] == "outbound"
    assert data["type"] == "SMS"
    assert data["text"] == "Code 123456"
    assert data["errors"] == []
    assert data["to"][0]["phone_number"] == TO
    assert data["to"][0]["status"] == "queued"
    expected_from = VALID_BODIES[path].get("from", POOL_NUMBER)
    assert data["from"]["phone_number"] == expected_from


async def test_the_same_api_is_served_under_v2(api: httpx.AsyncClient) -> None:
    """Paths under ``/v2`` behave like the root ones, so the base URL can mirror Telnyx's."""
    message_id = await send(api, "/messages/number_pool")

    answer = await api.get(f"/v2/messages/{message_id}")

    assert answer.status_code == 200
    assert answer.json()["data"]["messaging_profile_id"] == PROFILE
    invalid = await api.post("/v2/messages/number_pool", json={"to": TO, "text": "x"})
    assert invalid.status_code == 422


MISSING_FIELD_CASES = [
    (path, field)
    for path, fields in {
        "/messages": ["to", "text", "from"],
        "/messages/long_code": ["from", "to", "text"],
        "/messages/short_code": ["from", "to", "text"],
        "/messages/alphanumeric_sender_id": ["from", "to", "text", "messaging_profile_id"],
        "/messages/number_pool": ["to", "text", "messaging_profile_id"],
    }.items()
    for field in fields
]


@pytest.mark.parametrize(("path", "field"), MISSING_FIELD_CASES)
async def test_a_send_missing_a_required_field_is_refused_with_10004(
    api: httpx.AsyncClient, path: str, field: str
) -> None:
    """Leaving out a field the endpoint requires answers 422, code 10004, pointing at it."""
    body = {k: v for k, v in VALID_BODIES[path].items() if k != field}

    answer = await api.post(path, json=body)

    assert answer.status_code == 422
    SPEC.schema("messaging_Errors").validate(answer.json())
    errors = answer.json()["errors"]
    assert [(e["code"], e["source"]["pointer"]) for e in errors] == [("10004", f"/{field}")]


@pytest.mark.parametrize(
    ("path", "change", "code", "pointer"),
    [
        ("/messages/long_code", {"to": "07400123456"}, "40310", "/to"),
        ("/messages/long_code", {"from": "3125550100"}, "10016", "/from"),
        ("/messages/long_code", {"text": ""}, "10004", "/text"),
        ("/messages/long_code", {"to": 447400123456}, "10015", "/to"),
        ("/messages/short_code", {"from": "SHORT"}, "40305", "/from"),
        ("/messages/alphanumeric_sender_id", {"from": "TOO LONG A NAME"}, "40325", "/from"),
        ("/messages/alphanumeric_sender_id", {"messaging_profile_id": "p1"}, "10015", None),
        ("/messages/number_pool", {"encoding": "latin1"}, "10015", "/encoding"),
    ],
)
async def test_a_send_breaking_the_spec_is_refused(
    api: httpx.AsyncClient, path: str, change: dict[str, object], code: str, pointer: str | None
) -> None:
    """Wrong types, enums, formats, empty text and non-E.164 addresses answer 422 with a code."""
    answer = await api.post(path, json={**VALID_BODIES[path], **change})

    assert answer.status_code == 422
    error = answer.json()["errors"][0]
    assert error["code"] == code
    assert pointer is None or error["source"]["pointer"] == pointer


async def test_malformed_json_is_refused_with_400(api: httpx.AsyncClient) -> None:
    """A body that is not JSON answers 400 with code 10015."""
    answer = await api.post("/messages/long_code", content=b'{"to": ')

    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "10015"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}]
)
async def test_requests_without_the_api_key_are_refused_with_10009(
    simulator_url: str, headers: dict[str, str]
) -> None:
    """A missing or wrong Bearer key answers 401 with code 10009 and sends nothing."""
    async with httpx.AsyncClient(base_url=simulator_url, headers=headers) as client:
        sent = await client.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])
        opt_outs = await client.get("/messaging_optouts")
        inbox = await client.get("/_sim/messages")

    assert sent.status_code == 401
    assert sent.json()["errors"][0]["code"] == "10009"
    assert opt_outs.status_code == 401
    assert opt_outs.json()["code"] == "10009"
    assert inbox.json() == []


async def test_an_accepted_message_is_reported_sent_then_delivered_with_signed_webhooks(
    api: httpx.AsyncClient, receiver: Receiver, public_key: bytes
) -> None:
    """message.sent then message.finalized (delivered) reach the default URL, signed by the key."""
    message_id = await send(api)

    await eventually(lambda: len(receiver.for_message(message_id)) == 2)

    sent, finalized = receiver.for_message(message_id)
    for hook in (sent, finalized):
        assert hook.path == "default"
        assert_signed(hook, public_key)
        SPEC.schema("OutboundMessageEvent").validate(json.loads(hook.body))
        assert json.loads(hook.body)["meta"] == {
            "attempt": 1,
            "delivered_to": f"{receiver.url}/default",
        }
    assert sent.data["event_type"] == "message.sent"
    assert finalized.data["event_type"] == "message.finalized"
    assert sent.data["id"] != finalized.data["id"]
    event = parse_event(finalized.body)
    assert isinstance(event, DeliveryEvent)
    assert (event.message_id, event.status, event.error_codes) == (message_id, "delivered", ())


async def test_a_message_webhook_url_is_used_instead_of_the_default(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A send naming a webhook_url gets its reports there, not at the default URL."""
    message_id = await send(api, webhook_url=f"{receiver.url}/per-message")

    await eventually(lambda: len(receiver.for_message(message_id)) == 2)

    assert {hook.path for hook in receiver.for_message(message_id)} == {"per-message"}


async def test_a_failed_webhook_delivery_is_retried_with_the_attempt_number(
    api: httpx.AsyncClient, receiver: Receiver, public_key: bytes
) -> None:
    """A webhook answered with 503 is sent again, re-signed, with ``meta.attempt`` counting up."""
    receiver.failures_left = 2
    message_id = await send(api)

    await eventually(lambda: len(receiver.for_message(message_id)) == 4)

    hooks = receiver.for_message(message_id)
    attempts = [(h.data["event_type"], json.loads(h.body)["meta"]["attempt"]) for h in hooks]
    assert attempts == [
        ("message.sent", 1),
        ("message.sent", 2),
        ("message.sent", 3),
        ("message.finalized", 1),
    ]
    for hook in hooks:
        assert_signed(hook, public_key)


async def test_a_reject_behaviour_refuses_sends_synchronously_for_its_times(
    api: httpx.AsyncClient,
) -> None:
    """A scripted reject answers Telnyx's error with the given code and status, ``times`` times."""
    await script(api, action="reject", error_code="40309", http_status=403, times=1)

    refused = await api.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])
    accepted = await api.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])

    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "40309"
    assert accepted.status_code == 200
    inbox = (await api.get("/_sim/messages")).json()
    assert [m["id"] for m in inbox] == [accepted.json()["data"]["id"]]


async def test_a_behaviour_for_one_sender_type_leaves_the_others_alone(
    api: httpx.AsyncClient,
) -> None:
    """A reject scripted for alphanumeric senders does not touch a long-code send to the number."""
    await script(api, action="reject", sender_type="alphanumeric_sender_id")

    path = "/messages/alphanumeric_sender_id"
    alpha = await api.post(path, json=VALID_BODIES[path])
    long_code = await api.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])

    assert alpha.status_code == 400
    assert alpha.json()["errors"][0]["code"] == "40305"
    assert long_code.status_code == 200


async def test_a_fail_behaviour_accepts_then_finalizes_as_delivery_failed(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A scripted fail is accepted, then finalized delivery_failed with the error code."""
    await script(api, action="fail", error_code="40001")
    message_id = await send(api)

    await eventually(lambda: len(receiver.for_message(message_id)) == 2)

    finalized = receiver.for_message(message_id)[1]
    SPEC.schema("OutboundMessageEvent").validate(json.loads(finalized.body))
    event = parse_event(finalized.body)
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.error_codes) == ("delivery_failed", ("40001",))
    inbox = (await api.get("/_sim/messages", params={"to": TO})).json()
    assert (inbox[0]["status"], inbox[0]["error_codes"]) == ("delivery_failed", ["40001"])


async def test_a_sending_failed_behaviour_skips_message_sent(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A fail ending in sending_failed never reached a carrier, so only message.finalized comes."""
    await script(api, action="fail", final_status="sending_failed")
    message_id = await send(api)

    await eventually(lambda: len(receiver.for_message(message_id)) == 1)
    await asyncio.sleep(0.1)

    hooks = receiver.for_message(message_id)
    assert [h.data["event_type"] for h in hooks] == ["message.finalized"]
    assert hooks[0].data["payload"]["to"][0]["status"] == "sending_failed"
    assert hooks[0].data["payload"]["errors"][0]["code"] == "40008"


async def test_a_silent_behaviour_accepts_and_never_reports(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A scripted silent send is accepted and no webhook about it is ever sent."""
    await script(api, action="silent", times=1)
    silent_id = await send(api)
    delivered_id = await send(api)

    await eventually(lambda: len(receiver.for_message(delivered_id)) == 2)
    await asyncio.sleep(0.1)

    assert receiver.for_message(silent_id) == []
    inbox = {m["id"]: m["status"] for m in (await api.get("/_sim/messages")).json()}
    assert inbox == {silent_id: "queued", delivered_id: "delivered"}


async def test_a_timeout_behaviour_holds_the_send_until_the_client_gives_up(
    api: httpx.AsyncClient,
) -> None:
    """A scripted timeout never answers in time and sends nothing."""
    await script(api, action="timeout", times=1)

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await api.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"], timeout=0.3)

    assert time.monotonic() - started < 2
    assert (await api.get("/_sim/messages")).json() == []


async def test_a_reset_behaviour_takes_the_message_but_drops_the_answer(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A scripted reset sends the message and reports it, but the connection drops mid-answer."""
    await script(api, action="reset", times=1)

    with pytest.raises(httpx.RemoteProtocolError):
        await api.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])

    [message] = (await api.get("/_sim/messages")).json()
    await eventually(lambda: len(receiver.for_message(message["id"])) == 2)
    assert (
        await api.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])
    ).is_success


async def test_a_delayed_send_is_answered_late_and_sent_even_if_the_client_left(
    api: httpx.AsyncClient,
) -> None:
    """delay_seconds holds the answer; a send whose client gave up meanwhile is still sent."""
    await script(api, action="deliver", delay_seconds=0.3, times=2)
    body = VALID_BODIES["/messages/long_code"]

    started = time.monotonic()
    answered = await api.post("/messages/long_code", json=body)
    waited = time.monotonic() - started
    with pytest.raises(httpx.ReadTimeout):
        await api.post("/messages/long_code", json=body, timeout=0.05)
    inbox_when_given_up = (await api.get("/_sim/messages")).json()
    for _ in range(100):
        if len((await api.get("/_sim/messages")).json()) == 2:
            break
        await asyncio.sleep(0.01)

    assert answered.status_code == 200
    assert waited >= 0.3
    assert [m["id"] for m in inbox_when_given_up] == [answered.json()["data"]["id"]]
    assert len((await api.get("/_sim/messages")).json()) == 2


async def test_receipts_before_the_answer_are_acknowledged_before_the_send_returns(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """receipts=before posts message.sent and message.finalized before answering the send."""
    await script(api, action="fail", receipts="before")

    message_id = await send(api)

    hooks = receiver.for_message(message_id)
    assert [h.data["event_type"] for h in hooks] == ["message.sent", "message.finalized"]
    assert hooks[1].data["payload"]["to"][0]["status"] == "delivery_failed"


async def test_reversed_receipts_come_last_first_each_as_of_its_step(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """receipts=reversed posts message.finalized first; the late message.sent still says sent."""
    await script(api, action="deliver", receipts="reversed")

    message_id = await send(api)
    await eventually(lambda: len(receiver.for_message(message_id)) == 2)

    hooks = receiver.for_message(message_id)
    assert [(h.data["event_type"], h.data["payload"]["to"][0]["status"]) for h in hooks] == [
        ("message.finalized", "delivered"),
        ("message.sent", "sent"),
    ]


async def test_receipts_twice_post_each_event_again_with_its_id(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """receipts=twice posts every event two times, as Telnyx's redelivery (same event id)."""
    await script(api, action="deliver", receipts="twice")

    message_id = await send(api)
    await eventually(lambda: len(receiver.for_message(message_id)) == 4)
    await asyncio.sleep(0.1)

    hooks = receiver.for_message(message_id)
    types = [h.data["event_type"] for h in hooks]
    assert types == ["message.sent", "message.sent", "message.finalized", "message.finalized"]
    assert hooks[0].data["id"] == hooks[1].data["id"]
    assert hooks[2].data["id"] == hooks[3].data["id"]


async def test_the_inbox_lists_sends_oldest_first_and_filters_by_number(
    api: httpx.AsyncClient,
) -> None:
    """``GET /_sim/messages`` shows every accepted send, code included, and ``?to=`` filters."""
    first = await send(api, "/messages/alphanumeric_sender_id")
    other = await send(api, "/messages/long_code", to="+447400123457")
    last = await send(api, "/messages/short_code")

    everything = (await api.get("/_sim/messages")).json()
    to_one = (await api.get("/_sim/messages", params={"to": TO})).json()

    assert [m["id"] for m in everything] == [first, other, last]
    assert [m["id"] for m in to_one] == [first, last]
    assert to_one[0] == {
        "id": first,
        "endpoint": "/messages/alphanumeric_sender_id",
        "sender_type": "alphanumeric_sender_id",
        "from": "ACME",
        "to": TO,
        "text": "Code 123456",
        "messaging_profile_id": PROFILE,
        "status": to_one[0]["status"],
        "error_codes": [],
        "received_at": to_one[0]["received_at"],
        "webhook_url": None,
        "code": "123456",
        "held": False,
        "outcome": None,
    }
    (await api.delete("/_sim/messages")).raise_for_status()
    assert (await api.get("/_sim/messages")).json() == []


async def test_messages_endpoint_infers_the_sender_type_from_from(api: httpx.AsyncClient) -> None:
    """``POST /messages`` classifies the sender as Telnyx does: number, short code, ID or pool."""
    await send(api, "/messages")
    await send(api, "/messages", **{"from": "12345"})
    await send(api, "/messages", **{"from": "ACME", "messaging_profile_id": PROFILE})
    body = {"to": TO, "text": "Code", "messaging_profile_id": PROFILE}
    assert (await api.post("/messages", json=body)).status_code == 200

    inbox = (await api.get("/_sim/messages")).json()

    assert [m["sender_type"] for m in inbox] == [
        "long_code",
        "short_code",
        "alphanumeric_sender_id",
        "number_pool",
    ]


async def test_get_message_answers_the_current_state_or_404(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """``GET /messages/{id}`` returns the message with its latest status; unknown ids are 404."""
    message_id = await send(api)
    await eventually(lambda: len(receiver.for_message(message_id)) == 2)

    found = await api.get(f"/messages/{message_id}")
    missing = await api.get("/messages/00000000-0000-4000-8000-000000000000")

    assert found.json()["data"]["to"][0]["status"] == "delivered"
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "10005"


async def test_an_opt_out_blocks_sends_through_its_profile_with_40300(
    api: httpx.AsyncClient,
) -> None:
    """A block rule on a profile refuses sends via that profile with 40300, not other senders."""
    rule = {"to": TO, "messaging_profile_id": PROFILE}
    assert (await api.post("/_sim/opt-outs", json=rule)).status_code == 201

    pool = await api.post("/messages/number_pool", json=VALID_BODIES["/messages/number_pool"])
    long_code = await api.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])

    assert pool.status_code == 403
    error = pool.json()["errors"][0]
    assert (error["code"], error["title"]) == ("40300", "Blocked due to STOP message")
    assert long_code.status_code == 200
    (await api.delete("/_sim/opt-outs")).raise_for_status()
    again = await api.post("/messages/number_pool", json=VALID_BODIES["/messages/number_pool"])
    assert again.status_code == 200


async def test_messaging_optouts_lists_rules_paginated_per_spec(api: httpx.AsyncClient) -> None:
    """``GET /messaging_optouts`` filters by profile, pages with ``page[...]`` and can redact."""
    for number in ("+447400100001", "+447400100002", "+447400100003"):
        await api.post("/_sim/opt-outs", json={"to": number, "messaging_profile_id": PROFILE})
    await api.post("/_sim/opt-outs", json={"to": TO, "from": LONG_CODE})

    page = await api.get(
        "/v2/messaging_optouts",
        params={
            "filter[messaging_profile_id]": PROFILE,
            "page[number]": "2",
            "page[size]": "2",
            "redaction_enabled": "true",
        },
    )
    bad = await api.get("/messaging_optouts", params={"page[size]": "251"})

    assert page.status_code == 200
    SPEC.schema("OptOutListResponse").validate(page.json())
    assert page.json()["meta"] == {
        "page_number": 2,
        "page_size": 2,
        "total_pages": 2,
        "total_results": 3,
    }
    assert [item["to"] for item in page.json()["data"]] == ["+44740010****"]
    assert bad.status_code == 400
    SPEC.schema("messaging_Error").validate(bad.json())


async def test_an_inbound_stop_is_a_signed_message_received_and_blocks_replies(
    api: httpx.AsyncClient, receiver: Receiver, public_key: bytes
) -> None:
    """``POST /_sim/inbound`` delivers a signed message.received; STOP then blocks the pair."""
    inbound = {"from": TO, "to": LONG_CODE, "text": "stop ", "messaging_profile_id": PROFILE}

    answer = await api.post("/_sim/inbound", json=inbound)

    assert answer.status_code == 200
    assert answer.json()["delivered"] is True
    (hook,) = [h for h in receiver.hooks if h.data["id"] == answer.json()["event_id"]]
    assert_signed(hook, public_key)
    SPEC.schema("InboundMessageEvent").validate(json.loads(hook.body))
    assert parse_event(hook.body) == InboundEvent(
        event_id=answer.json()["event_id"],
        from_number=TO,
        to_number=LONG_CODE,
        text="stop ",
        messaging_profile_id=PROFILE,
    )
    blocked = await api.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])
    assert blocked.json()["errors"][0]["code"] == "40300"
    await api.post("/_sim/inbound", json={**inbound, "text": "START"})
    unblocked = await api.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])
    assert unblocked.status_code == 200


async def test_behaviour_scripts_are_validated(api: httpx.AsyncClient) -> None:
    """A behaviour with an unknown action or a non-E.164 number is refused with 400."""
    unknown = await api.post("/_sim/behaviours", json={"to": TO, "action": "explode"})
    bad_number = await api.post("/_sim/behaviours", json={"to": "12", "action": "fail"})
    negative = {"to": TO, "action": "deliver", "delay_seconds": -1}
    bad_receipts = {"to": TO, "action": "deliver", "receipts": "sideways"}
    answers = [await api.post("/_sim/behaviours", json=b) for b in (negative, bad_receipts)]

    assert (unknown.status_code, bad_number.status_code) == (400, 400)
    assert [a.status_code for a in answers] == [400, 400]


@pytest.mark.parametrize(
    ("sender", "path"),
    [
        (Sender(type=SenderType.LONG_CODE, from_=LONG_CODE), "/messages/long_code"),
        (Sender(type=SenderType.SHORT_CODE, from_="12345"), "/messages/short_code"),
        (
            Sender(type=SenderType.ALPHANUMERIC_SENDER_ID, from_="ACME"),
            "/messages/alphanumeric_sender_id",
        ),
        (Sender(type=SenderType.NUMBER_POOL), "/messages/number_pool"),
    ],
)
async def test_telnyx_client_sends_through_the_simulator(
    simulator_url: str, receiver: Receiver, sender: Sender, path: str
) -> None:
    """TelnyxClient's requests pass the simulator's spec checks for every sender type."""
    async with httpx.AsyncClient(base_url=f"{simulator_url}/v2", timeout=2) as http:
        client = TelnyxClient(http, api_key=API_KEY)
        sent = await client.send(
            OutboundSms(
                sender=sender,
                to=TO,
                text="Your code is 123456",
                messaging_profile_id=PROFILE,
                webhook_url=f"{receiver.url}/client",
            )
        )
        inbox = (await http.get(f"{simulator_url}/_sim/messages")).json()

    assert sent.status == "queued"
    assert [(m["id"], m["endpoint"]) for m in inbox] == [(sent.id, path)]
    await eventually(lambda: len(receiver.for_message(sent.id)) == 2)
    assert {h.path for h in receiver.for_message(sent.id)} == {"client"}


async def test_telnyx_client_maps_simulated_refusals_and_outages(
    api: httpx.AsyncClient, simulator_url: str
) -> None:
    """Rejects raise ProviderError, a 429 is retried once, 5xx and holds are unavailable."""
    sms = OutboundSms(
        sender=Sender(type=SenderType.LONG_CODE, from_=LONG_CODE),
        to=TO,
        text="Your code is 123456",
        messaging_profile_id=None,
        webhook_url=None,
    )
    await script(api, action="reject", error_code="40305", times=1)
    await script(api, action="reject", error_code="10011", http_status=429, times=1)
    async with httpx.AsyncClient(base_url=f"{simulator_url}/v2", timeout=0.5) as http:
        client = TelnyxClient(http, api_key=API_KEY)
        with pytest.raises(ProviderError) as refused:
            await client.send(sms)
        rate_limited_then_sent = await client.send(sms)
        await script(api, action="reject", error_code="10007", http_status=500, times=1)
        with pytest.raises(ProviderUnavailable):
            await client.send(sms)
        await script(api, action="timeout", times=1)
        with pytest.raises(ProviderUnavailable):
            await client.send(sms)

    assert refused.value.error_codes == ("40305",)
    inbox = (await api.get("/_sim/messages")).json()
    assert [m["id"] for m in inbox] == [rate_limited_then_sent.id]


async def test_shutdown_cancels_pending_webhook_deliveries(receiver: Receiver) -> None:
    """Stopping the simulator cancels webhooks still waiting to be sent instead of hanging."""
    config = SimulatorConfig(
        signing_seed=SEED,
        api_key=None,
        default_webhook_url=f"{receiver.url}/slow",
        webhook_delay_seconds=30,
    )
    with serve(create_simulator_app(config)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            sent = await http.post("/messages/long_code", json=VALID_BODIES["/messages/long_code"])
        stopping = time.monotonic()

    assert sent.status_code == 200
    assert time.monotonic() - stopping < 3
    assert [h for h in receiver.hooks if h.path == "slow"] == []


def statuses(receiver: Receiver, message_id: str) -> list[str]:
    return [h.data["payload"]["to"][0]["status"] for h in receiver.for_message(message_id)]


async def test_a_held_message_waits_at_sent_until_reported_failed(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """``hold`` reports message.sent only; reporting it failed finalizes it with 40008."""
    await script(api, action="hold", times=1)
    held_id = await send(api)
    await eventually(lambda: statuses(receiver, held_id) == ["sent"])
    [entry] = (await api.get("/_sim/messages")).json()
    assert (entry["status"], entry["held"]) == ("sent", True)

    answer = await api.post(f"/_sim/messages/{held_id}/report", json={"outcome": "failed"})

    assert answer.status_code == 202
    assert (answer.json()["held"], answer.json()["outcome"]) == (False, "failed")
    await eventually(lambda: statuses(receiver, held_id) == ["sent", "delivery_failed"])
    final = receiver.for_message(held_id)[-1].data
    assert final["event_type"] == "message.finalized"
    assert [e["code"] for e in final["payload"]["errors"]] == ["40008"]
    again = await api.post(f"/_sim/messages/{held_id}/report", json={"outcome": "delivered"})
    assert again.status_code == 409


async def test_the_hold_switch_holds_every_new_send_until_answered(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """With hold on, sends stop at sent; late delivers after its delay, silent never reports."""
    assert (await api.post("/_sim/hold", json={"hold": True})).json() == {"hold": True}
    assert (await api.get("/_sim/hold")).json() == {"hold": True}
    late_id, silent_id = await send(api), await send(api)
    await eventually(
        lambda: statuses(receiver, late_id) == statuses(receiver, silent_id) == ["sent"]
    )

    late = {"outcome": "late", "delay_seconds": 0.2}
    assert (await api.post(f"/_sim/messages/{late_id}/report", json=late)).status_code == 202
    silent = {"outcome": "silent"}
    assert (await api.post(f"/_sim/messages/{silent_id}/report", json=silent)).status_code == 202

    await eventually(lambda: statuses(receiver, late_id) == ["sent", "delivered"])
    await asyncio.sleep(0.3)
    assert statuses(receiver, silent_id) == ["sent"]
    inbox = {m["id"]: (m["status"], m["outcome"]) for m in (await api.get("/_sim/messages")).json()}
    assert inbox == {late_id: ("delivered", "late"), silent_id: ("sent", "silent")}


async def test_reports_are_validated(api: httpx.AsyncClient) -> None:
    """Unknown messages are 404, messages not held 409, bad outcomes and delays 400."""
    delivered_id = await send(api)
    unknown = await api.post("/_sim/messages/nope/report", json={"outcome": "failed"})
    not_held = await api.post(f"/_sim/messages/{delivered_id}/report", json={"outcome": "failed"})
    bad = [
        await api.post(f"/_sim/messages/{delivered_id}/report", json=body)
        for body in ({"outcome": "lost"}, {"outcome": "late", "delay_seconds": -1}, {})
    ]
    bad_hold = await api.post("/_sim/hold", json={"hold": "yes"})

    assert (unknown.status_code, not_held.status_code) == (404, 409)
    assert [b.status_code for b in bad] == [400, 400, 400]
    assert bad_hold.status_code == 400


async def test_clearing_the_behaviours_of_one_number_leaves_the_others(
    api: httpx.AsyncClient,
) -> None:
    """``DELETE /_sim/behaviours?to=`` forgets that number's scripts only."""
    other = "+447400123457"
    await script(api, action="reject")
    await api.post("/_sim/behaviours", json={"to": other, "action": "reject"})

    (await api.delete("/_sim/behaviours", params={"to": TO})).raise_for_status()

    body = VALID_BODIES["/messages/long_code"]
    assert (await api.post("/messages/long_code", json=body)).status_code == 200
    refused = await api.post("/messages/long_code", json={**body, "to": other})
    assert refused.status_code == 400


async def test_a_reply_is_sent_to_the_last_sender_with_the_numbers_profile(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """An inbound STOP naming only the handset reaches the number that texted it last,
    with the profile of the last send that named one and that send's webhook URL."""
    await send(api, "/messages/alphanumeric_sender_id")
    await send(api, webhook_url=f"{receiver.url}/profile-hook")

    answer = await api.post("/_sim/inbound", json={"from": TO, "text": "STOP"})

    assert answer.status_code == 200, answer.text
    assert (answer.json()["to"], answer.json()["messaging_profile_id"]) == (LONG_CODE, PROFILE)
    (hook,) = [h for h in receiver.hooks if h.data["id"] == answer.json()["event_id"]]
    assert hook.path == "profile-hook"
    event = parse_event(hook.body)
    assert isinstance(event, InboundEvent)
    assert (event.to_number, event.messaging_profile_id) == (LONG_CODE, PROFILE)
    nothing_sent = await api.post("/_sim/inbound", json={"from": "+447400999999", "text": "STOP"})
    assert nothing_sent.status_code == 400


async def test_a_reply_to_a_number_no_send_named_takes_the_configured_profile(
    receiver: Receiver,
) -> None:
    """With no send to tell the number's profile, the simulator's configured one is used."""
    config = SimulatorConfig(
        signing_seed=SEED,
        default_webhook_url=f"{receiver.url}/default",
        messaging_profile_id=PROFILE,
    )
    with serve(create_simulator_app(config)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            inbound = {"from": TO, "to": LONG_CODE, "text": "STOP"}
            answer = await client.post("/_sim/inbound", json=inbound)
    assert answer.json()["messaging_profile_id"] == PROFILE
    (hook,) = [h for h in receiver.hooks if h.data["id"] == answer.json()["event_id"]]
    assert hook.data["payload"]["messaging_profile_id"] == PROFILE


async def next_event(lines: AsyncIterator[str]) -> dict[str, str]:
    """Read one server-sent event (its fields) from a stream's lines."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in fields:
                return fields
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    raise AssertionError("the stream ended before an event")


async def test_the_stream_sends_a_snapshot_then_only_what_changed(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A new page gets everything; one reconnecting with its last id gets only the news."""
    first = await send(api)
    # Its receipts change it; once both are out, nothing about it is news any more.
    await eventually(lambda: len(receiver.for_message(first)) == 2)
    async with api.stream("GET", "/_sim/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        snapshot = await next_event(response.aiter_lines())
    second = await send(api)
    headers = {"Last-Event-ID": snapshot["id"]}
    async with api.stream("GET", "/_sim/stream", headers=headers) as response:
        update = await next_event(response.aiter_lines())

    assert snapshot["event"] == "snapshot"
    assert [m["id"] for m in json.loads(snapshot["data"])["messages"]] == [first]
    assert update["event"] == "update"
    assert second in [m["id"] for m in json.loads(update["data"])["messages"]]
    assert first not in [m["id"] for m in json.loads(update["data"])["messages"]]


async def test_a_stream_ends_by_itself_and_starts_over_after_a_clear() -> None:
    """Streams are short (a stopping server waits for them); a new epoch sends a snapshot."""
    state = SimulatorState()
    state.touch()
    seen = f"{state.epoch}.{state.version}"
    assert [e async for e in events(state, seen, seconds=0.05)] == []
    state.clear_messages()
    [again] = [e async for e in events(state, seen, seconds=0.05)]
    assert again.event == "snapshot"


async def test_the_inbox_page_loads_nothing_from_elsewhere(api: httpx.AsyncClient) -> None:
    """``GET /`` and its assets come from the simulator itself: no CDN, works offline."""
    page = await api.get("/")
    assets = [await api.get(f"/_sim/static/{name}") for name in ("inbox.css", "inbox.js")]
    missing = await api.get("/_sim/static/secrets.txt")

    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert [a.status_code for a in assets] == [200, 200]
    for text in (page.text, *(a.text for a in assets)):
        assert not re.search(r"(src|href)=\"(https?:)?//", text)
        assert "@import" not in text
    assert missing.status_code == 404
