"""TelnyxClient over httpx.MockTransport: endpoints, bodies, errors and the narrow retries.

(And one over a real server: how long the service keeps an idle connection to Telnyx.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post

from otp_service.adapters.telnyx import OutboundSms, SentMessage, TelnyxClient
from otp_service.core.model import Sender, SenderType
from otp_service.errors import ProviderError, ProviderUnavailable
from otp_service.log import TextFormatter
from otp_service.runtime import TELNYX_LIMITS
from tests.servers import serve

BASE_URL = "https://api.telnyx.test/v2"
PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
TEXT = "Your Acme code is 482913"
ACCEPTED = {"data": {"id": "40385f64-5717-4562-b3fc-2c963f66afa6", "to": [{"status": "queued"}]}}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a script and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def client_for(handler: Handler) -> TelnyxClient:
    http = httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(handler))
    return TelnyxClient(http, api_key="KEY_secret")


def sms(
    sender_type: SenderType = SenderType.LONG_CODE,
    sender: str | None = "+13125550100",
    webhook_url: str | None = None,
) -> OutboundSms:
    return OutboundSms(
        sender=Sender(type=sender_type, from_=sender),
        to="+447400123456",
        text=TEXT,
        messaging_profile_id=PROFILE,
        webhook_url=webhook_url,
    )


def refusal(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("sender_type", "sender", "path", "expected"),
    [
        (
            SenderType.LONG_CODE,
            "+13125550100",
            "/v2/messages/long_code",
            {"from": "+13125550100", "to": "+447400123456", "text": TEXT},
        ),
        (
            SenderType.SHORT_CODE,
            "12345",
            "/v2/messages/short_code",
            {"from": "12345", "to": "+447400123456", "text": TEXT},
        ),
        (
            SenderType.ALPHANUMERIC_SENDER_ID,
            "ACME",
            "/v2/messages/alphanumeric_sender_id",
            {"from": "ACME", "to": "+447400123456", "text": TEXT, "messaging_profile_id": PROFILE},
        ),
        (
            SenderType.NUMBER_POOL,
            "+13125550100",
            "/v2/messages/number_pool",
            {"to": "+447400123456", "text": TEXT, "messaging_profile_id": PROFILE},
        ),
    ],
)
async def test_send_posts_exactly_the_fields_of_the_sender_types_endpoint(
    sender_type: SenderType, sender: str, path: str, expected: dict[str, str]
) -> None:
    """Each sender type posts to its own endpoint under the base URL with only its fields."""
    recorder = Recorder(httpx.Response(200, json=ACCEPTED))

    sent = await client_for(recorder).send(sms(sender_type, sender))

    request = recorder.requests[0]
    assert request.method == "POST"
    assert request.url.path == path
    assert json.loads(request.content) == expected
    assert request.headers["authorization"] == "Bearer KEY_secret"
    assert request.headers["content-type"] == "application/json"
    assert sent == SentMessage(id="40385f64-5717-4562-b3fc-2c963f66afa6", status="queued")


async def test_send_includes_webhook_url_only_when_given() -> None:
    """A per-message webhook URL is sent as ``webhook_url``; without one the key is absent."""
    recorder = Recorder(httpx.Response(200, json=ACCEPTED))
    client = client_for(recorder)

    await client.send(sms(webhook_url="https://otp.example/webhooks/telnyx"))
    await client.send(sms())

    assert json.loads(recorder.requests[0].content)["webhook_url"] == (
        "https://otp.example/webhooks/telnyx"
    )
    assert "webhook_url" not in json.loads(recorder.requests[1].content)


async def test_send_reports_queued_when_telnyx_gives_no_recipient_status() -> None:
    """A 200 without ``to[].status`` reads as ``queued``; a given status is passed through."""
    bare = httpx.Response(200, json={"data": {"id": "m-1"}})
    sending = httpx.Response(200, json={"data": {"id": "m-2", "to": [{"status": "sending"}]}})

    assert await client_for(Recorder(bare)).send(sms()) == SentMessage(id="m-1", status="queued")
    assert await client_for(Recorder(sending)).send(sms()) == SentMessage(
        id="m-2", status="sending"
    )


@pytest.mark.parametrize(
    ("response", "codes"),
    [
        (
            refusal(
                403,
                {
                    "errors": [
                        {"code": "40300", "title": "Blocked due to STOP message"},
                        {"code": 40310, "title": "Invalid 'to' address"},
                    ]
                },
            ),
            ("40300", "40310"),
        ),
        (refusal(400, {"code": "40305", "title": "Invalid 'from' address"}), ("40305",)),
        (httpx.Response(422, text="<html>Unprocessable</html>"), ()),
        (
            refusal(401, {"errors": [{"code": "10009", "title": "Authentication failed"}]}),
            ("10009",),
        ),
    ],
)
async def test_a_4xx_refusal_raises_provider_error_with_telnyx_codes(
    response: httpx.Response, codes: tuple[str, ...]
) -> None:
    """A 4xx answer becomes ProviderError carrying every ``errors[].code`` as a string."""
    recorder = Recorder(response)

    with pytest.raises(ProviderError) as caught:
        await client_for(recorder).send(sms())

    assert caught.value.error_codes == codes
    assert len(recorder.requests) == 1


async def test_a_refusal_names_telnyx_titles_but_never_the_message_text() -> None:
    """ProviderError's detail keeps Telnyx's title but masks the text if Telnyx echoes it."""
    body = {"errors": [{"code": "40322", "title": "Blocked by content", "detail": TEXT}]}

    with pytest.raises(ProviderError) as caught:
        await client_for(Recorder(refusal(400, body))).send(sms())

    assert "Blocked by content" in caught.value.detail
    assert TEXT not in caught.value.detail


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_server_error_is_unavailable_and_not_retried(status: int) -> None:
    """A 5xx may come after the SMS went out, so it is reported as unavailable, not retried."""
    recorder = Recorder(httpx.Response(status, json={"errors": []}))

    with pytest.raises(ProviderUnavailable):
        await client_for(recorder).send(sms())

    assert len(recorder.requests) == 1


async def test_a_2xx_with_an_unreadable_body_is_unavailable() -> None:
    """A 200 whose body has no ``data.id`` cannot be tracked, so it is reported as unavailable."""
    with pytest.raises(ProviderUnavailable):
        await client_for(Recorder(httpx.Response(200, text="OK"))).send(sms())


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.PoolTimeout("no free connection"),
    ],
)
async def test_a_request_that_never_left_is_retried_once(failure: Exception) -> None:
    """Connect and pool failures carry no request, so one retry is made and can succeed."""
    recorder = Recorder(failure, httpx.Response(200, json=ACCEPTED))

    sent = await client_for(recorder).send(sms())

    assert sent.id == ACCEPTED["data"]["id"]
    assert len(recorder.requests) == 2


async def test_a_request_that_never_left_twice_is_unavailable() -> None:
    """After the one retry also fails to connect, the send is reported as unavailable."""
    recorder = Recorder(httpx.ConnectError("connection refused"))

    with pytest.raises(ProviderUnavailable):
        await client_for(recorder).send(sms())

    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
async def test_a_request_that_may_have_arrived_is_not_retried(failure: Exception) -> None:
    """A failure after the request may have reached Telnyx is not retried: that could send twice."""
    recorder = Recorder(failure)

    with pytest.raises(ProviderUnavailable):
        await client_for(recorder).send(sms())

    assert len(recorder.requests) == 1


async def test_too_many_requests_is_retried_once_after_retry_after() -> None:
    """A 429 with code 10011 and a short ``Retry-After`` is retried once and can succeed."""
    limited = refusal(
        429, {"errors": [{"code": "10011", "title": "Too many requests"}]}, {"Retry-After": "0"}
    )
    recorder = Recorder(limited, httpx.Response(200, json=ACCEPTED))

    sent = await client_for(recorder).send(sms())

    assert sent.status == "queued"
    assert len(recorder.requests) == 2


async def test_too_many_requests_twice_is_unavailable() -> None:
    """A second 429 after the one retry is reported as unavailable."""
    limited = refusal(
        429, {"errors": [{"code": "10011", "title": "Too many requests"}]}, {"Retry-After": "0"}
    )
    recorder = Recorder(limited)

    with pytest.raises(ProviderUnavailable):
        await client_for(recorder).send(sms())

    assert len(recorder.requests) == 2


async def test_a_send_gets_one_retry_in_all() -> None:
    """A connect failure uses up the one retry, so a 429 after it is not retried again."""
    limited = refusal(
        429, {"errors": [{"code": "10011", "title": "Too many requests"}]}, {"Retry-After": "0"}
    )
    recorder = Recorder(httpx.ConnectError("connection refused"), limited, httpx.Response(200))

    with pytest.raises(ProviderUnavailable):
        await client_for(recorder).send(sms())

    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"errors": [{"code": "10011", "title": "Too many requests"}]}, {"Retry-After": "5"}),
        ({"errors": [{"code": "10011", "title": "Too many requests"}]}, {"Retry-After": "soon"}),
        ({"errors": [{"code": "40318", "title": "Message queue full"}]}, {"Retry-After": "0"}),
    ],
)
async def test_too_many_requests_is_not_retried_when_long_or_not_10011(
    body: object, headers: dict[str, str]
) -> None:
    """A 429 asking for more than a second, or without code 10011, is unavailable at once."""
    recorder = Recorder(refusal(429, body, headers))

    with pytest.raises(ProviderUnavailable):
        await client_for(recorder).send(sms())

    assert len(recorder.requests) == 1


async def test_retries_and_failures_never_log_the_message_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logs written while retrying and failing do not contain the message text (the code)."""
    recorder = Recorder(httpx.ConnectError(f"refused {TEXT}"))
    caplog.set_level(logging.DEBUG, logger="otp_service")

    with pytest.raises(ProviderUnavailable) as caught:
        await client_for(recorder).send(sms())

    assert caplog.records
    assert all(TEXT not in TextFormatter().format(record) for record in caplog.records)
    assert TEXT not in caught.value.detail


async def test_a_connection_idle_for_3_s_is_not_used_again() -> None:
    """The send after 3 s idle opens a new connection (not a timing assertion: which one).

    uvicorn, the simulator's server, closes an idle connection at 5 s; a send written to it
    as it closes fails without an answer, which the service must report as 503 (the SMS may
    have left). Under load that happened with httpx's default of keeping connections 5 s.
    """
    ports: list[int] = []

    @post("/messages/long_code", status_code=200, sync_to_thread=False)
    def accept(request: Request[Any, Any, Any]) -> dict[str, Any]:
        assert request.client is not None
        ports.append(request.client.port)
        return ACCEPTED

    with serve(Litestar([accept], logging_config=None)) as url:
        async with httpx.AsyncClient(base_url=url, limits=TELNYX_LIMITS) as http:
            telnyx = TelnyxClient(http, api_key="KEY_secret")
            await telnyx.send(sms())
            await asyncio.sleep(3)
            await telnyx.send(sms())

    first, second = ports
    assert first != second
