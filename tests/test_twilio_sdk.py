"""Twilio's own Python SDK, unmodified, against the service's Twilio Verify surface.

The SDK is pointed at the service only through its documented extension point, its HTTP
client: ``ToService`` is Twilio's own ``TwilioHttpClient`` with the host of each URL it
is asked for replaced by the service's ``/twilio``. Everything else (how it encodes
parameters, authenticates, parses answers into its objects and errors into
``TwilioRestException``) is Twilio's. Every SDK call runs with warnings turned into errors,
so an answer the SDK would only grumble about fails the test too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.verify.v2.service import ServiceContext
from twilio.rest.verify.v2.service.verification import VerificationInstance
from twilio.rest.verify.v2.service.verification_check import VerificationCheckInstance

from tests.abuse_helpers import range_numbers
from tests.abuse_helpers import start as v1_start
from tests.conftest import (
    PROFILE_ID,
    MakeTenant,
    MovableClock,
    Service,
    Simulator,
    TenantHandle,
    fresh_number,
    sent_codes,
)

TWILIO_VERIFY = "https://verify.twilio.com"
README = Path(__file__).parent.parent / "README.md"
T = TypeVar("T")


class ToService(TwilioHttpClient):  # type: ignore[misc]  # the SDK ships no py.typed
    """Twilio's HTTP client, sending what it would send to Twilio to the service instead."""

    def __init__(self, service_url: str) -> None:
        super().__init__()
        self.base = service_url + "/twilio"

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        assert url.startswith(TWILIO_VERIFY), url
        return super().request(
            method,
            self.base + url.removeprefix(TWILIO_VERIFY),
            params,
            data,
            headers,
            auth,
            timeout,
            allow_redirects,
        )


@dataclass
class Twilio:
    """A tenant as Twilio's SDK sees it: its Verify service, reached through the SDK."""

    tenant: TenantHandle
    account_sid: str
    service_sid: str
    client: Client

    @property
    def verify(self) -> ServiceContext:
        """``client.verify.v2.services(<the tenant's service>)``."""
        return self.client.verify.v2.services(self.service_sid)


@contextmanager
def strict() -> Iterator[None]:
    """Turn every warning raised inside into an error (the SDK must parse without any)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def call(action: Callable[[], T]) -> T:
    """Run an SDK call with warnings as errors."""
    with strict():
        return action()


def refused(action: Callable[[], object], status: int, code: int) -> TwilioRestException:
    """Run an SDK call that must raise Twilio's exception with this status and code."""
    with strict(), pytest.raises(TwilioRestException) as raised:
        action()
    error = raised.value
    assert (error.status, error.code) == (status, code), (error.status, error.code, error.msg)
    return error


async def sids(admin: httpx.AsyncClient, tenant_id: str) -> dict[str, str]:
    """GET /admin/tenants/{id}/twilio."""
    response = await admin.get(f"/admin/tenants/{tenant_id}/twilio")
    assert response.status_code == 200, response.text
    found: dict[str, str] = response.json()
    return found


MakeTwilio = Callable[..., Any]


@pytest.fixture
def make_twilio(make_tenant: MakeTenant, admin: httpx.AsyncClient, service: Service) -> MakeTwilio:
    """Make a tenant and an SDK client that signs in with its account SID and API key."""

    async def make(**settings: Any) -> Twilio:
        tenant = await make_tenant(**settings)
        found = await sids(admin, tenant.id)
        client = Client(found["account_sid"], tenant.key, http_client=ToService(service.url))
        return Twilio(tenant, found["account_sid"], found["service_sid"], client)

    return make


@pytest.fixture
async def twilio(make_twilio: MakeTwilio) -> Twilio:
    """A tenant with the default settings, through the SDK."""
    made: Twilio = await make_twilio()
    return made


def wrong(code: str) -> str:
    """A code of the same length that is not ``code``."""
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


async def test_a_verification_runs_its_course_through_the_sdk(
    twilio: Twilio, sim: httpx.AsyncClient, service: Service
) -> None:
    """Create, read the SMS, a wrong then the right code, each answer one of the SDK's objects."""
    number = fresh_number()
    created = call(lambda: twilio.verify.verifications.create(to=number, channel="sms"))
    assert isinstance(created, VerificationInstance)
    assert created.sid is not None
    assert created.sid.startswith("VE")
    assert len(created.sid) == 34
    assert (created.service_sid, created.account_sid) == (twilio.service_sid, twilio.account_sid)
    assert (created.to, created.channel, created.status, created.valid) == (
        number,
        "sms",
        "pending",
        False,
    )
    assert isinstance(created.date_created, datetime)  # the SDK parsed the date
    assert isinstance(created.date_updated, datetime)
    assert created.send_code_attempts is not None
    [attempt] = created.send_code_attempts
    assert attempt["channel"] == "sms"
    assert str(attempt["attempt_sid"]).startswith("VL")
    assert created.url == (
        f"{service.url}/twilio/v2/Services/{twilio.service_sid}/Verifications/{created.sid}"
    )

    [code] = await sent_codes(sim, number)
    checks = twilio.verify.verification_checks
    miss = call(lambda: checks.create(to=number, code=wrong(code)))
    assert isinstance(miss, VerificationCheckInstance)
    assert (miss.sid, miss.status, miss.valid) == (created.sid, "pending", False)

    fetched = call(lambda: twilio.verify.verifications(created.sid).fetch())
    assert (fetched.sid, fetched.status, fetched.to) == (created.sid, "pending", number)

    hit = call(lambda: checks.create(verification_sid=created.sid, code=code))
    assert (hit.sid, hit.status, hit.valid, hit.to) == (created.sid, "approved", True, number)
    assert isinstance(hit.date_updated, datetime)

    # Twilio's rule: an approved verification is gone, for reads, checks and updates alike.
    context = twilio.verify.verifications(created.sid)
    refused(context.fetch, 404, 20404)
    refused(lambda: checks.create(verification_sid=created.sid, code=code), 404, 20404)
    refused(lambda: context.update(status="canceled"), 404, 20404)


async def test_cancel_and_approve_through_the_sdk(twilio: Twilio) -> None:
    """``update(status=...)`` cancels, or approves without a code; either is then gone."""
    canceled = call(lambda: twilio.verify.verifications.create(to=fresh_number(), channel="sms"))
    after = call(lambda: twilio.verify.verifications(canceled.sid).update(status="canceled"))
    assert (after.sid, after.status, after.valid) == (canceled.sid, "canceled", False)
    refused(twilio.verify.verifications(canceled.sid).fetch, 404, 20404)
    refused(
        lambda: twilio.verify.verification_checks.create(to=canceled.to, code="123456"),
        404,
        20404,
    )

    approved = call(lambda: twilio.verify.verifications.create(to=fresh_number(), channel="sms"))
    after = call(lambda: twilio.verify.verifications(approved.sid).update(status="approved"))
    assert (after.status, after.valid) == ("approved", True)
    refused(twilio.verify.verifications(approved.sid).fetch, 404, 20404)


async def test_an_expired_verification_is_gone(twilio: Twilio, clock: MovableClock) -> None:
    """Past its life a verification is 20404 to reads and checks."""
    created = call(lambda: twilio.verify.verifications.create(to=fresh_number(), channel="sms"))
    clock.advance(601)
    refused(twilio.verify.verifications(created.sid).fetch, 404, 20404)
    refused(
        lambda: twilio.verify.verification_checks.create(
            verification_sid=created.sid, code="123456"
        ),
        404,
        20404,
    )


async def test_unknown_verifications_are_20404(twilio: Twilio) -> None:
    """A SID that names nothing, or is no SID of ours, is 20404."""
    refused(twilio.verify.verifications("VE" + "0" * 32).fetch, 404, 20404)
    refused(twilio.verify.verifications("not-a-sid").fetch, 404, 20404)
    refused(
        lambda: twilio.verify.verification_checks.create(to=fresh_number(), code="123456"),
        404,
        20404,
    )


async def test_invalid_parameters_are_60200(twilio: Twilio) -> None:
    """A malformed number, another channel or an unserved parameter: 400, 60200."""
    create = twilio.verify.verifications.create
    error = refused(lambda: create(to="+1234", channel="sms"), 400, 60200)
    assert "To" in error.msg
    error = refused(lambda: create(to=fresh_number(), channel="call"), 400, 60200)
    assert "Channel" in error.msg
    error = refused(
        lambda: create(to=fresh_number(), channel="sms", custom_code="1234"), 400, 60200
    )
    assert "CustomCode" in error.msg


async def test_spent_check_attempts_are_60202(
    make_twilio: MakeTwilio, sim: httpx.AsyncClient
) -> None:
    """The last wrong code ends the verification; the next check is 429, 60202."""
    twilio: Twilio = await make_twilio(max_check_attempts=2)
    number = fresh_number()
    call(lambda: twilio.verify.verifications.create(to=number, channel="sms"))
    [code] = await sent_codes(sim, number)
    checks = twilio.verify.verification_checks
    assert call(lambda: checks.create(to=number, code=wrong(code))).status == "pending"
    last = call(lambda: checks.create(to=number, code=wrong(code)))
    assert (last.status, last.valid) == ("max_attempts_reached", False)
    refused(lambda: checks.create(verification_sid=last.sid, code=code), 429, 60202)


async def test_spent_sends_are_60203_and_a_resend_too_soon_is_20429(
    make_twilio: MakeTwilio,
) -> None:
    """``max_sends`` reached: 429, 60203; within the resend cooldown: 429, 20429."""
    twilio: Twilio = await make_twilio(max_sends=1, resend_cooldown_seconds=0)
    number = fresh_number()
    call(lambda: twilio.verify.verifications.create(to=number, channel="sms"))
    refused(lambda: twilio.verify.verifications.create(to=number, channel="sms"), 429, 60203)

    patient: Twilio = await make_twilio(resend_cooldown_seconds=30)
    number = fresh_number()
    first = call(lambda: patient.verify.verifications.create(to=number, channel="sms"))
    refused(lambda: patient.verify.verifications.create(to=number, channel="sms"), 429, 20429)
    assert call(lambda: patient.verify.verifications(first.sid).fetch()).status == "pending"


async def test_a_range_the_fraud_guard_blocked_is_60410(twilio: Twilio) -> None:
    """Pumping one number range (over /v1) gets it blocked; the SDK's start there is 60410."""
    numbers = range_numbers("+44791114", 40)
    for number in numbers[:-1]:
        if (await v1_start(twilio.tenant, number)).status_code == 429:
            break
    else:
        pytest.fail("the pumped range was never blocked")
    error = refused(
        lambda: twilio.verify.verifications.create(to=numbers[-1], channel="sms"), 403, 60410
    )
    assert "blocked" in error.msg


async def test_a_country_outside_the_geo_permissions_is_60605(make_twilio: MakeTwilio) -> None:
    """A destination outside ``allowed_countries``: 403, 60605."""
    twilio: Twilio = await make_twilio(allowed_countries=["GB"])
    refused(
        lambda: twilio.verify.verifications.create(to=fresh_number("FR"), channel="sms"),
        403,
        60605,
    )


async def test_an_opted_out_number_is_21610(
    twilio: Twilio, sim: httpx.AsyncClient, service: Service
) -> None:
    """A number that texted STOP to the tenant's messaging profile: 400, 21610."""
    number = fresh_number()
    inbound = {
        "from": number,
        "to": "+13125550100",
        "text": "STOP",
        "messaging_profile_id": PROFILE_ID,
        "webhook_url": f"{service.url}/webhooks/telnyx",
    }
    assert (await sim.post("/_sim/inbound", json=inbound)).status_code == 200
    refused(lambda: twilio.verify.verifications.create(to=number, channel="sms"), 400, 21610)


async def test_wrong_credentials_are_20003(
    twilio: Twilio, make_twilio: MakeTwilio, service: Service
) -> None:
    """A wrong token, or another tenant's account SID with this tenant's key: 401, 20003."""
    other: Twilio = await make_twilio()
    for account_sid, token in [
        (twilio.account_sid, "otpk_not-a-key"),
        (other.account_sid, twilio.tenant.key),
    ]:
        client = Client(account_sid, token, http_client=ToService(service.url))
        create = client.verify.v2.services(twilio.service_sid).verifications.create
        refused(lambda: create(to=fresh_number(), channel="sms"), 401, 20003)  # noqa: B023
    # Another tenant's service, with right credentials: not found.
    refused(
        lambda: twilio.client.verify.v2.services(other.service_sid).verifications.create(
            to=fresh_number(), channel="sms"
        ),
        404,
        20404,
    )


async def test_an_api_key_sid_signs_in_as_twilios_api_keys_do(
    twilio: Twilio, admin: httpx.AsyncClient, service: Service, sim: httpx.AsyncClient
) -> None:
    """``Client(username=SK…, password=key, account_sid=AC…)``: the key's own SID works,
    another key's SID with this key does not."""
    listed = (await admin.get(f"/admin/tenants/{twilio.tenant.id}/api-keys")).json()
    [key_sid] = [key["twilio_sid"] for key in listed]
    other = (await admin.post(f"/admin/tenants/{twilio.tenant.id}/api-keys")).json()
    assert other["twilio_sid"].startswith("SK")
    assert other["twilio_sid"] != key_sid

    client = Client(
        username=key_sid,
        password=twilio.tenant.key,
        account_sid=twilio.account_sid,
        http_client=ToService(service.url),
    )
    verify = client.verify.v2.services(twilio.service_sid)
    number = fresh_number()
    created = call(lambda: verify.verifications.create(to=number, channel="sms"))
    [code] = await sent_codes(sim, number)
    assert call(lambda: verify.verification_checks.create(to=number, code=code)).valid is True
    assert created.account_sid == twilio.account_sid

    mismatched = Client(
        username=other["twilio_sid"],
        password=twilio.tenant.key,
        account_sid=twilio.account_sid,
        http_client=ToService(service.url),
    )
    services = mismatched.verify.v2.services(twilio.service_sid)
    refused(lambda: services.verifications.create(to=fresh_number(), channel="sms"), 401, 20003)


async def test_the_readme_sdk_example_runs(
    twilio: Twilio, service: Service, simulator: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's Twilio SDK example, run as written against the service."""
    section = README.read_text().split("\n## Twilio Verify compatibility\n", 1)[1]
    example = (
        section.split("```python\n", 1)[1]
        .split("```", 1)[0]
        .replace('"AC…"', repr(twilio.account_sid))
        .replace('"VA…"', repr(twilio.service_sid))
        .replace('"otpk_…"', repr(twilio.tenant.key))
        .replace('"+14155552671"', repr(fresh_number("US")))
        .replace("http://127.0.0.1:8000", service.url)
        .replace("http://127.0.0.1:8001", simulator.url)
    )
    with strict():
        exec(compile(example, "README.md", "exec"), {})  # noqa: S102  (our own README)
    assert capsys.readouterr().out.splitlines() == ["pending", "approved True"]
