"""The Twilio Verify surface in raw form-encoded HTTP, as curl or any HTTP library sends it.

Each answer is checked field by field against Twilio's resources and error body, and the
surface is shown to share ``/v1``'s guarantees: the same verifications (one id, two
spellings), the same events, limits and hashed codes.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post
from redis.asyncio import Redis

from otp_service.core import twilio_ids
from otp_service.core.ids import new_id
from tests.conftest import (
    MakeTenant,
    Service,
    Simulator,
    TenantHandle,
    fresh_number,
    sent_codes,
    service_on,
)
from tests.servers import serve
from tests.test_secrets_at_rest import dump

FORM = "application/x-www-form-urlencoded"
VERIFICATION_FIELDS = {
    "sid",
    "service_sid",
    "account_sid",
    "to",
    "channel",
    "status",
    "valid",
    "lookup",
    "amount",
    "payee",
    "send_code_attempts",
    "date_created",
    "date_updated",
    "sna",
    "url",
}
CHECK_FIELDS = {
    "sid",
    "service_sid",
    "account_sid",
    "to",
    "channel",
    "status",
    "valid",
    "amount",
    "payee",
    "date_created",
    "date_updated",
    "sna_attempts_error_codes",
}
DATE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


@dataclass
class Twilio:
    """A tenant seen through /twilio: its SIDs and a client signed in with Basic auth."""

    tenant: TenantHandle
    account_sid: str
    service_sid: str
    client: httpx.AsyncClient

    @property
    def base(self) -> str:
        """The tenant's Verify service."""
        return f"/twilio/v2/Services/{self.service_sid}"

    async def start(self, **form: str) -> httpx.Response:
        """POST .../Verifications."""
        return await self.client.post(f"{self.base}/Verifications", data=form)

    async def check(self, **form: str) -> httpx.Response:
        """POST .../VerificationCheck."""
        return await self.client.post(f"{self.base}/VerificationCheck", data=form)

    async def fetch(self, sid: str) -> httpx.Response:
        """GET .../Verifications/{Sid}."""
        return await self.client.get(f"{self.base}/Verifications/{sid}")

    async def update(self, sid: str, **form: str) -> httpx.Response:
        """POST .../Verifications/{Sid}."""
        return await self.client.post(f"{self.base}/Verifications/{sid}", data=form)


@pytest.fixture
async def make_twilio(
    make_tenant: MakeTenant, admin: httpx.AsyncClient, service: Service
) -> AsyncIterator[Any]:
    """Make a tenant and a client that signs in with its account SID and API key."""
    clients: list[httpx.AsyncClient] = []

    async def make(**settings: Any) -> Twilio:
        tenant = await make_tenant(**settings)
        sids = (await admin.get(f"/admin/tenants/{tenant.id}/twilio")).json()
        client = httpx.AsyncClient(
            base_url=service.url, auth=(sids["account_sid"], tenant.key), timeout=15
        )
        clients.append(client)
        return Twilio(tenant, sids["account_sid"], sids["service_sid"], client)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def twilio(make_twilio: Any) -> Twilio:
    """A tenant with the default settings, over /twilio."""
    made: Twilio = await make_twilio()
    return made


def test_sids_and_ids_are_one_value_spelled_two_ways() -> None:
    """core.twilio_ids: each id has one SID of its kind and back; nothing else converts."""
    draw = random.Random(11)  # noqa: S311  (test data)
    for ours, theirs in (("ten", "AC"), ("ten", "VA"), ("ver", "VE"), ("key", "SK")):
        ident = new_id(ours, draw)
        sid = twilio_ids.sid_of(theirs, ident)
        assert re.fullmatch(rf"{theirs}[0-9a-f]{{32}}", sid), sid
        assert twilio_ids.id_of(theirs, sid) == ident
    ident = new_id("ver", draw)
    with pytest.raises(ValueError, match="not a ten id"):
        twilio_ids.sid_of("AC", ident)
    sid = twilio_ids.sid_of("VE", ident)
    for other in ("AC" + sid[2:], sid.upper(), sid[:-1], sid + "0", "VE" + "g" * 32, ""):
        assert twilio_ids.id_of("VE", other) is None, other


def twilio_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """Twilio's error body, and nothing else, with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}, body
    assert (body["code"], body["status"]) == (code, status), body
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


async def test_the_resources_have_twilios_fields(
    admin: httpx.AsyncClient, twilio: Twilio, sim: httpx.AsyncClient, service: Service
) -> None:
    """Create (201), check (200) and fetch answer Twilio's JSON, field for field."""
    sids = (await admin.get(f"/admin/tenants/{twilio.tenant.id}/twilio")).json()
    assert set(sids) == {"account_sid", "service_sid"}
    assert sids["account_sid"] == twilio_ids.sid_of("AC", twilio.tenant.id)
    assert sids["service_sid"] == "VA" + sids["account_sid"][2:]

    number = fresh_number()
    created = await twilio.start(To=number, Channel="sms")
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/json"
    body = created.json()
    assert set(body) == VERIFICATION_FIELDS
    sid = body["sid"]
    assert sid == twilio_ids.sid_of("VE", twilio_ids.id_of("VE", sid) or "")
    assert body | {"sid": "", "date_created": "", "date_updated": "", "send_code_attempts": []} == {
        "sid": "",
        "service_sid": twilio.service_sid,
        "account_sid": twilio.account_sid,
        "to": number,
        "channel": "sms",
        "status": "pending",
        "valid": False,
        "lookup": {"carrier": None},
        "amount": None,
        "payee": None,
        "send_code_attempts": [],
        "date_created": "",
        "date_updated": "",
        "sna": None,
        "url": f"{service.url}{twilio.base}/Verifications/{sid}",
    }
    [attempt] = body["send_code_attempts"]
    assert set(attempt) == {"attempt_sid", "channel", "time"}
    assert attempt["channel"] == "sms"
    for moment in (body["date_created"], body["date_updated"], attempt["time"]):
        assert re.fullmatch(DATE, moment), moment

    [code] = await sent_codes(sim, number)
    wrong = await twilio.check(To=number, Code=f"{(int(code) + 1) % 10**6:06d}")
    assert wrong.status_code == 200, wrong.text
    assert set(wrong.json()) == CHECK_FIELDS
    assert (wrong.json()["status"], wrong.json()["valid"]) == ("pending", False)

    fetched = await twilio.fetch(sid)
    assert fetched.status_code == 200
    assert fetched.json() == body | {"date_updated": fetched.json()["date_updated"]}

    right = await twilio.check(VerificationSid=sid, Code=code)
    assert right.status_code == 200
    assert right.json() | {"date_updated": ""} == {
        "sid": sid,
        "service_sid": twilio.service_sid,
        "account_sid": twilio.account_sid,
        "to": number,
        "channel": "sms",
        "status": "approved",
        "valid": True,
        "amount": None,
        "payee": None,
        "date_created": body["date_created"],
        "date_updated": "",
        "sna_attempts_error_codes": None,
    }
    twilio_error(await twilio.fetch(sid), 404, 20404)


async def test_cancel_answers_the_canceled_verification(twilio: Twilio) -> None:
    """``Status=canceled`` answers 200 with the resource; afterwards it is 20404."""
    sid = (await twilio.start(To=fresh_number(), Channel="sms")).json()["sid"]
    canceled = await twilio.update(sid, Status="canceled")
    assert canceled.status_code == 200, canceled.text
    assert set(canceled.json()) == VERIFICATION_FIELDS
    assert (canceled.json()["status"], canceled.json()["valid"]) == ("canceled", False)
    twilio_error(await twilio.update(sid, Status="canceled"), 404, 20404)
    body = twilio_error(await twilio.fetch(sid), 404, 20404)
    assert body["message"] == (
        f"The requested resource /v2/Services/{twilio.service_sid}/Verifications/{sid} "
        "was not found"
    )
    twilio_error(await twilio.update(sid, Status="pending"), 400, 60200)


async def test_bad_parameters_are_60200_naming_the_parameter(twilio: Twilio) -> None:
    """Missing, malformed, unserved or repeated parameters: 400, 60200, naming it."""
    cases: list[tuple[dict[str, str | list[str]], str]] = [
        ({"Channel": "sms"}, "To"),
        ({"To": fresh_number()}, "Channel"),
        ({"To": "+1234", "Channel": "sms"}, "To"),
        ({"To": fresh_number(), "Channel": "whatsapp"}, "Channel"),
        ({"To": fresh_number(), "Channel": "sms", "Locale": "french"}, "Locale"),
        ({"To": fresh_number(), "Channel": "sms", "CustomCode": "123456"}, "CustomCode"),
        ({"To": fresh_number(), "Channel": "sms", "RateLimits": "[1]"}, "RateLimits"),
        ({"To": fresh_number(), "Channel": "sms", "DeviceIp": "nowhere"}, "DeviceIp"),
        ({"To": fresh_number(), "Channel": "sms", "Tags": "{"}, "Tags"),
        (
            {"To": fresh_number(), "Channel": "sms", "CustomFriendlyName": "x" * 41},
            "CustomFriendlyName",
        ),
        ({"To": [fresh_number(), fresh_number()], "Channel": "sms"}, "To"),
    ]
    for form, parameter in cases:
        response = await twilio.client.post(f"{twilio.base}/Verifications", data=form)
        body = twilio_error(response, 400, 60200)
        assert f"`{parameter}`" in body["message"], (form, body)
    missing_code = await twilio.check(To=fresh_number())
    assert "`Code`" in twilio_error(missing_code, 400, 60200)["message"]
    neither = await twilio.check(Code="123456")
    assert "`To`" in twilio_error(neither, 400, 60200)["message"]
    not_a_sid = await twilio.check(VerificationSid="ver_x", Code="123456")
    assert "`VerificationSid`" in twilio_error(not_a_sid, 400, 60200)["message"]


async def test_a_body_that_is_not_a_form_is_19056(twilio: Twilio) -> None:
    """JSON (or no body type at all) is refused with 415, 19056; nothing is sent."""
    number = fresh_number()
    as_json = await twilio.client.post(
        f"{twilio.base}/Verifications", json={"To": number, "Channel": "sms"}
    )
    twilio_error(as_json, 415, 19056)
    untyped = await twilio.client.post(
        f"{twilio.base}/Verifications", content=f"To={number}&Channel=sms"
    )
    twilio_error(untyped, 415, 19056)


async def test_an_oversized_body_is_413_in_twilios_body(twilio: Twilio) -> None:
    """A form over ``OTP_MAX_BODY_BYTES`` is refused before it is read."""
    response = await twilio.start(To=fresh_number(), Channel="sms", Tags="x" * 20_000)
    twilio_error(response, 413, 60200)


async def test_another_service_sid_is_20404(twilio: Twilio, make_twilio: Any) -> None:
    """Right credentials with another tenant's ServiceSid, or one that is no SID: 20404."""
    other: Twilio = await make_twilio()
    for service_sid in (other.service_sid, "VA" + "0" * 32, "nope"):
        response = await twilio.client.post(
            f"/twilio/v2/Services/{service_sid}/Verifications",
            data={"To": fresh_number(), "Channel": "sms"},
        )
        twilio_error(response, 404, 20404)


async def test_missing_or_wrong_basic_credentials_are_20003(
    twilio: Twilio, service: Service
) -> None:
    """401, 20003 with Twilio's Basic challenge, whatever is wrong."""
    url = f"{service.url}{twilio.base}/Verifications"
    form = {"To": fresh_number(), "Channel": "sms"}
    async with httpx.AsyncClient(timeout=15) as anonymous:
        for auth in (
            None,
            (twilio.account_sid, "otpk_wrong"),
            ("AC" + "0" * 32, twilio.tenant.key),
            (twilio.tenant.key, twilio.account_sid),
        ):
            response = await anonymous.post(url, data=form, auth=auth)  # type: ignore[arg-type]
            twilio_error(response, 401, 20003)
            assert response.headers["www-authenticate"] == 'Basic realm="Twilio API"'
        bearer = await anonymous.post(
            url, data=form, headers={"Authorization": f"Bearer {twilio.tenant.key}"}
        )
        twilio_error(bearer, 401, 20003)


async def test_rate_limits_are_20429_with_retry_after(make_twilio: Any) -> None:
    """``DeviceIp`` (and ``RateLimits``) are the asker's rate-limit keys: past its bucket,
    429 with 20429 and Retry-After; a resend within the cooldown too; max sends is 60203."""
    limits = {"rate_limit_keys": {"ip": {"sends": {"max": 1, "interval_seconds": 3600}}}}
    twilio: Twilio = await make_twilio(limits=limits)
    first = await twilio.start(To=fresh_number(), Channel="sms", DeviceIp="203.0.113.9")
    assert first.status_code == 201, first.text
    again = await twilio.start(To=fresh_number(), Channel="sms", DeviceIp="203.0.113.9")
    twilio_error(again, 429, 20429)
    assert int(again.headers["retry-after"]) >= 1
    by_rate_limits = await twilio.start(
        To=fresh_number(), Channel="sms", RateLimits=json.dumps({"ip": "203.0.113.9"})
    )
    twilio_error(by_rate_limits, 429, 20429)
    other_ip = await twilio.start(To=fresh_number(), Channel="sms", DeviceIp="203.0.113.10")
    assert other_ip.status_code == 201, other_ip.text

    number = fresh_number()
    assert (await twilio.start(To=number, Channel="sms")).status_code == 201
    too_soon = await twilio.start(To=number, Channel="sms")
    twilio_error(too_soon, 429, 20429)
    assert int(too_soon.headers["retry-after"]) >= 1

    spent: Twilio = await make_twilio(max_sends=1, resend_cooldown_seconds=0)
    number = fresh_number()
    assert (await spent.start(To=number, Channel="sms")).status_code == 201
    refused = await spent.start(To=number, Channel="sms")
    twilio_error(refused, 429, 60203)
    assert int(refused.headers["retry-after"]) >= 1


async def test_one_verification_two_spellings(twilio: Twilio, sim: httpx.AsyncClient) -> None:
    """A verification started on /twilio is the /v1 one with the same bits, and back:
    each surface reads, checks and sees the other's changes."""
    number = fresh_number()
    sid = (await twilio.start(To=number, Channel="sms", Locale="fr")).json()["sid"]
    ident = twilio_ids.id_of("VE", sid)
    assert ident is not None
    assert ident.startswith("ver_")
    seen = await twilio.tenant.client.get(f"/v1/verifications/{ident}")
    assert seen.status_code == 200
    assert (seen.json()["phone_number"], seen.json()["locale"]) == (number, "fr")
    [message] = (await sim.get("/_sim/messages", params={"to": number})).json()
    assert "est votre code de vérification Acme" in message["text"]

    [code] = await sent_codes(sim, number)
    checked = await twilio.tenant.client.post(
        f"/v1/verifications/{ident}/check", json={"code": code}
    )
    assert checked.json()["status"] == "approved"
    twilio_error(await twilio.fetch(sid), 404, 20404)

    other = fresh_number()
    started = await twilio.tenant.client.post("/v1/verifications", json={"phone_number": other})
    v1_id = started.json()["id"]
    fetched = await twilio.fetch(twilio_ids.sid_of("VE", v1_id))
    assert fetched.status_code == 200
    assert (fetched.json()["to"], fetched.json()["status"]) == (other, "pending")


async def test_custom_friendly_name_and_tags(twilio: Twilio, sim: httpx.AsyncClient) -> None:
    """``CustomFriendlyName`` names the sender in this SMS; ``Tags`` are the metadata."""
    number = fresh_number()
    sid = (
        await twilio.start(
            To=number, Channel="sms", CustomFriendlyName="Globex", Tags='{"order": "42"}'
        )
    ).json()["sid"]
    [message] = (await sim.get("/_sim/messages", params={"to": number})).json()
    assert "is your Globex verification code" in message["text"]
    ident = twilio_ids.id_of("VE", sid)
    seen = (await twilio.tenant.client.get(f"/v1/verifications/{ident}")).json()
    assert seen["metadata"] == {"order": "42"}


@dataclass
class Receiver:
    """Tenant events, as their endpoint receives them."""

    events: list[dict[str, Any]]

    def app(self) -> Litestar:
        @post("/events", status_code=200)
        async def take(request: Request[Any, Any, Any]) -> Response[str]:
            self.events.append(json.loads(await request.body()))
            return Response("ok")

        return Litestar([take])


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver(events=[])
    with serve(found.app()) as url:
        yield found, f"{url}/events"


async def test_events_are_emitted_for_twilio_requests(
    make_twilio: Any, receiver: tuple[Receiver, str], sim: httpx.AsyncClient
) -> None:
    """Created, approved (by code and by ``Status=approved``) and canceled events, as on /v1."""
    found, url = receiver
    twilio: Twilio = await make_twilio(events_webhook_url=url)
    number = fresh_number()
    by_code = (await twilio.start(To=number, Channel="sms")).json()["sid"]
    [code] = await sent_codes(sim, number)
    assert (await twilio.check(To=number, Code=code)).json()["status"] == "approved"
    by_status = (await twilio.start(To=fresh_number(), Channel="sms")).json()["sid"]
    approved = await twilio.update(by_status, Status="approved")
    assert (approved.json()["status"], approved.json()["valid"]) == ("approved", True)
    canceled = (await twilio.start(To=fresh_number(), Channel="sms")).json()["sid"]
    assert (await twilio.update(canceled, Status="canceled")).status_code == 200

    wanted = {
        ("verification.created", by_code),
        ("verification.approved", by_code),
        ("verification.created", by_status),
        ("verification.approved", by_status),
        ("verification.created", canceled),
        ("verification.canceled", canceled),
    }
    deadline = time.monotonic() + 15
    seen: set[tuple[str, str]] = set()
    while time.monotonic() < deadline and not wanted <= seen:
        seen = {
            (event["type"], twilio_ids.sid_of("VE", event["data"]["id"])) for event in found.events
        }
        await asyncio.sleep(0.05)
    assert wanted <= seen, wanted - seen


async def test_codes_are_stored_hashed(
    make_twilio: Any, sim: httpx.AsyncClient, redis: Redis
) -> None:
    """The code sent for a /twilio start is nowhere in Redis in plain text."""
    twilio: Twilio = await make_twilio(code_length=10)
    number = fresh_number()
    assert (await twilio.start(To=number, Channel="sms")).status_code == 201
    [code] = await sent_codes(sim, number)
    stored = await dump(redis)
    assert any(number in value for values in stored.values() for value in values)
    leaks = [name for name, values in stored.items() if any(code in v for v in values)]
    assert not leaks, leaks


async def test_the_surface_is_off_unless_enabled(
    redis_url: str, simulator: Simulator, twilio: Twilio
) -> None:
    """``OTP_TWILIO_API=0`` (the default of ``serve``): /twilio is a 404 like any unknown path."""
    with service_on(redis_url, simulator, OTP_TWILIO_API="0") as url:
        async with httpx.AsyncClient(
            base_url=url, auth=(twilio.account_sid, twilio.tenant.key), timeout=15
        ) as client:
            response = await client.post(
                f"{twilio.base}/Verifications", data={"To": fresh_number(), "Channel": "sms"}
            )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
