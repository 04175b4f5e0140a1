"""Posting tenant events: signatures, request-forgery checks and address pinning."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import httpx
import pytest
from nacl.signing import SigningKey

from otp_service.adapters.event_poster import EventPoster
from otp_service.log import TextFormatter, configure_logging

KEY = SigningKey(bytes(range(32)))


def poster(
    seen: list[httpx.Request], addresses: dict[str, list[str]], *, allow_private: bool = False
) -> EventPoster:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def resolver(host: str) -> list[str]:
        return addresses.get(host, [])

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return EventPoster(http, key=KEY, allow_private=allow_private, resolver=resolver)


async def test_an_event_is_signed_over_timestamp_and_raw_body() -> None:
    """The request carries otp-timestamp and a signature that verifies over 'ts|body'."""
    seen: list[httpx.Request] = []
    sent = await poster(seen, {"hooks.acme.example": ["93.184.215.14"]}).post(
        "https://hooks.acme.example/otp", b'{"id":"evt_1"}', 1_800_000_000
    )
    assert sent is True
    [request] = seen
    assert request.headers["otp-timestamp"] == "1800000000"
    signature = base64.b64decode(request.headers["otp-signature-ed25519"])
    KEY.verify_key.verify(b'1800000000|{"id":"evt_1"}', signature)
    assert request.content == b'{"id":"evt_1"}'


async def test_the_request_goes_to_the_checked_address_with_the_name_for_tls() -> None:
    """The connection is pinned to the vetted IP; Host and SNI keep the tenant's name."""
    seen: list[httpx.Request] = []
    await poster(seen, {"hooks.acme.example": ["93.184.215.14"]}).post(
        "https://hooks.acme.example:8443/otp?x=1", b"{}", 1
    )
    [request] = seen
    assert str(request.url) == "https://93.184.215.14:8443/otp?x=1"
    assert request.headers["host"] == "hooks.acme.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.acme.example"


async def test_names_that_resolve_inside_are_never_contacted() -> None:
    """A host resolving to a private, loopback or metadata address gets no request."""
    seen: list[httpx.Request] = []
    inside = {
        "a.example": ["10.0.0.7"],
        "b.example": ["127.0.0.1"],
        "c.example": ["169.254.169.254"],
        "d.example": ["93.184.215.14", "192.168.1.1"],
    }
    for host in inside:
        assert await poster(seen, inside).post(f"https://{host}/x", b"{}", 1) is False
    assert await poster(seen, {}).post("https://nowhere.example/x", b"{}", 1) is False
    assert await poster(seen, inside).post("http://93.184.215.14/x", b"{}", 1) is False
    assert seen == []


async def test_private_addresses_are_allowed_when_the_operator_says_so() -> None:
    """With OTP_ALLOW_PRIVATE_WEBHOOKS, the URL is used as given."""
    seen: list[httpx.Request] = []
    sent = await poster(seen, {}, allow_private=True).post("http://127.0.0.1:9/x", b"{}", 1)
    assert sent is True
    assert str(seen[0].url) == "http://127.0.0.1:9/x"


async def test_a_receiver_error_is_not_a_delivery() -> None:
    """Anything but a 2xx (or no answer) counts as not delivered."""

    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500)

    http = httpx.AsyncClient(transport=httpx.MockTransport(failing))
    events = EventPoster(http, key=KEY, allow_private=True)
    assert await events.post("http://127.0.0.1/x", b"{}", 1) is False

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(unreachable))
    events = EventPoster(http, key=KEY, allow_private=True)
    assert await events.post("http://127.0.0.1/x", b"{}", 1) is False


@pytest.fixture
def service_logging() -> Iterator[None]:
    """The processes' logging set-up (at DEBUG, the most talkative), undone afterwards."""
    configure_logging("DEBUG")
    yield
    logging.getLogger("httpx").setLevel(logging.NOTSET)
    logging.getLogger("httpcore").setLevel(logging.NOTSET)


@pytest.mark.usefixtures("service_logging")
@pytest.mark.parametrize("allow_private", [False, True])
async def test_credentials_and_query_of_an_event_url_are_never_logged(
    caplog: pytest.LogCaptureFixture, allow_private: bool
) -> None:
    """httpx's request line logged the URL whole; only the receiver's origin is logged now."""
    caplog.set_level(logging.DEBUG)
    caplog.handler.setFormatter(TextFormatter())
    seen: list[httpx.Request] = []
    addresses = {"hooks.acme.example": ["93.184.215.14"]}
    events = poster(seen, addresses, allow_private=allow_private)
    url = "https://hook-user:hunter2@hooks.acme.example:8443/otp/p4th-s3cret?token=sekrit"
    assert await events.post(url, b"{}", 1) is True
    assert seen[0].url.query == b"token=sekrit"  # sent, just not logged

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(unreachable))
    failing = EventPoster(http, key=KEY, allow_private=True)
    assert await failing.post(url, b"{}", 1) is False
    logged = caplog.text
    for secret in ("hook-user", "hunter2", "sekrit", "token", "p4th-s3cret"):
        assert secret not in logged, logged
    assert "event posted origin=https://hooks.acme.example:8443 status=204" in logged
    assert "failed origin=https://hooks.acme.example:8443 error=ConnectError" in logged
