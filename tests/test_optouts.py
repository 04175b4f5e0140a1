"""Opt-outs end to end: STOP/START keywords, the admin listing, and ``optouts sync``.

The simulator keeps block rules of its own (as Telnyx does) and refuses sends with 40300
itself. Tests that show the service refusing first clear those rules after the keyword, so
that only the service's own record can stop a send, and check that nothing reached the
simulator.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest

from otp_service.adapters.telnyx import TelnyxClient
from otp_service.errors import ProviderError, ProviderUnavailable
from tests.conftest import (
    PROFILE_ID,
    MakeTenant,
    Service,
    Simulator,
    TenantHandle,
    fresh_number,
    service_environ,
)
from tests.test_cli import Run, assert_clean_failure, otp_service
from tests.test_verifications_api import assert_problem, start
from tests.test_webhooks_api import signed

TENANT_NUMBER = "+13125550100"
"""One of the account's numbers, where handsets send their keywords."""

LONG_CODE_ONLY = {"default": [{"type": "long_code", "from": TENANT_NUMBER}]}


async def inbound(
    sim: httpx.AsyncClient,
    service: Service,
    number: str,
    text: str,
    *,
    profile: str | None = PROFILE_ID,
) -> None:
    """Have ``number`` text ``text`` to the account; the service acknowledges the webhook."""
    body = {
        "from": number,
        "to": TENANT_NUMBER,
        "text": text,
        "messaging_profile_id": profile,
        "webhook_url": f"{service.url}/webhooks/telnyx",
    }
    response = await sim.post("/_sim/inbound", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["delivered"] is True


async def opt_out_of(tenant: TenantHandle, number: str) -> dict[str, Any]:
    """The tenant's view of the number's opt-out."""
    response = await tenant.client.get(f"/v1/opt-outs/{number}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def inbox(sim: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    """What the simulator accepted for ``number``."""
    response = await sim.get("/_sim/messages", params={"to": number})
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()
    return messages


async def webhook_count(anonymous: httpx.AsyncClient, outcome: str) -> float:
    """The ``message.received`` webhooks counted with this outcome so far."""
    text = (await anonymous.get("/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("otp_webhooks_total{")
            and 'event_type="message.received"' in line
            and f'outcome="{outcome}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_stop_opts_the_sender_out_of_every_tenant_on_the_profile(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, service: Service
) -> None:
    """After STOP, every tenant of that profile refuses the number (409, nothing sent); a
    tenant on another profile still sends."""
    first, second = await make_tenant(), await make_tenant()
    elsewhere = await make_tenant(messaging_profile_id=str(uuid.uuid4()))
    number = fresh_number()

    await inbound(sim, service, number, " stop ")
    (await sim.delete("/_sim/opt-outs")).raise_for_status()

    status = await opt_out_of(first, number)
    assert status["phone_number"] == number
    assert status["opted_out"] is True
    assert status["source"] == "keyword"
    assert status["since"].endswith("Z")
    assert_problem(await start(first, number), 409, "recipient_opted_out")
    assert_problem(await start(second, number), 409, "recipient_opted_out")
    assert await inbox(sim, number) == []

    assert (await opt_out_of(elsewhere, number))["opted_out"] is False
    assert (await start(elsewhere, number)).status_code == 201
    assert len(await inbox(sim, number)) == 1


@pytest.mark.parametrize("keyword", ["START", " unstop "])
async def test_start_lifts_the_opt_out(
    tenant: TenantHandle, sim: httpx.AsyncClient, service: Service, keyword: str
) -> None:
    """START (or UNSTOP) after STOP lets codes through again."""
    number = fresh_number()
    await inbound(sim, service, number, "STOP")
    assert (await opt_out_of(tenant, number))["opted_out"] is True

    await inbound(sim, service, number, keyword)
    assert await opt_out_of(tenant, number) == {
        "phone_number": number,
        "opted_out": False,
        "since": None,
        "source": None,
    }
    assert (await start(tenant, number)).status_code == 201
    assert len(await inbox(sim, number)) == 1


async def test_help_is_counted_and_changes_nothing(
    tenant: TenantHandle,
    sim: httpx.AsyncClient,
    service: Service,
    anonymous: httpx.AsyncClient,
) -> None:
    """HELP is counted as such but opts nobody out."""
    number = fresh_number()
    before = await webhook_count(anonymous, "help")
    await inbound(sim, service, number, "HELP")
    assert await webhook_count(anonymous, "help") == before + 1
    assert (await opt_out_of(tenant, number))["opted_out"] is False
    assert (await start(tenant, number)).status_code == 201


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop", " Stop ", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"],
)
async def test_each_opt_out_keyword_opts_out(
    tenant: TenantHandle, sim: httpx.AsyncClient, service: Service, text: str
) -> None:
    """Every one of Telnyx's opt-out keywords records a keyword opt-out."""
    number = fresh_number()
    await inbound(sim, service, number, text)
    status = await opt_out_of(tenant, number)
    assert status["opted_out"] is True
    assert status["source"] == "keyword"


async def test_a_keyword_inside_a_sentence_is_ignored(
    tenant: TenantHandle,
    sim: httpx.AsyncClient,
    service: Service,
    anonymous: httpx.AsyncClient,
) -> None:
    """'STOP please' is not a keyword: it is counted as ignored and codes still go out."""
    number = fresh_number()
    before = await webhook_count(anonymous, "ignored")
    await inbound(sim, service, number, "STOP please")
    assert await webhook_count(anonymous, "ignored") == before + 1
    assert (await opt_out_of(tenant, number))["opted_out"] is False
    assert (await start(tenant, number)).status_code == 201


async def test_a_stop_without_a_messaging_profile_is_not_recorded(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, service: Service
) -> None:
    """A STOP that names no profile cannot be tied to a tenant, so no tenant refuses the number."""
    with_profile = await make_tenant()
    without = await make_tenant(messaging_profile_id=None, senders=LONG_CODE_ONLY)
    number = fresh_number()
    await inbound(sim, service, number, "STOP", profile=None)
    (await sim.delete("/_sim/opt-outs")).raise_for_status()
    assert (await opt_out_of(with_profile, number))["opted_out"] is False
    assert (await opt_out_of(without, number))["opted_out"] is False
    assert (await start(without, number)).status_code == 201


async def test_a_redelivered_stop_does_not_undo_a_later_start(
    tenant: TenantHandle,
    sim: httpx.AsyncClient,
    service: Service,
    anonymous: httpx.AsyncClient,
    simulator: Simulator,
) -> None:
    """Telnyx delivering the same STOP event again after START leaves the number opted in."""
    number = fresh_number()
    event = {
        "data": {
            "event_type": "message.received",
            "id": str(uuid.uuid4()),
            "occurred_at": "2026-11-26T12:00:00.000+00:00",
            "payload": {
                "direction": "inbound",
                "from": {"phone_number": number},
                "to": [{"phone_number": TENANT_NUMBER, "status": "webhook_delivered"}],
                "text": "STOP",
                "messaging_profile_id": PROFILE_ID,
            },
            "record_type": "event",
        }
    }
    body = json.dumps(event).encode()
    first = await anonymous.post(
        "/webhooks/telnyx", content=body, headers=signed(simulator.seed, body)
    )
    assert first.status_code == 200
    assert (await opt_out_of(tenant, number))["opted_out"] is True

    await inbound(sim, service, number, "START")
    again = await anonymous.post(
        "/webhooks/telnyx", content=body, headers=signed(simulator.seed, body)
    )
    assert again.status_code == 200
    assert (await opt_out_of(tenant, number))["opted_out"] is False


async def list_opt_outs(admin: httpx.AsyncClient, **params: str | int) -> httpx.Response:
    return await admin.get("/admin/opt-outs", params=params)


async def test_the_admin_listing_pages_through_a_profile_by_number(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, service: Service, make_tenant: MakeTenant
) -> None:
    """Five opt-outs come back in number order over three pages of two, then next_cursor null;
    the profile's tenant lists the same."""
    profile = str(uuid.uuid4())
    numbers = [fresh_number() for _ in range(5)]
    for number in numbers:
        await inbound(sim, service, number, "STOP", profile=profile)

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    sizes: list[int] = []
    while True:
        params: dict[str, str | int] = {"messaging_profile_id": profile, "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await list_opt_outs(admin, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        sizes.append(len(page["data"]))
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert [item["phone_number"] for item in seen] == sorted(numbers)
    for item in seen:
        assert item["opted_out"] is True
        assert item["source"] == "keyword"
        assert item["since"].endswith("Z")

    tenant = await make_tenant(messaging_profile_id=profile)
    by_tenant = await list_opt_outs(admin, tenant_id=tenant.id)
    assert by_tenant.status_code == 200, by_tenant.text
    assert by_tenant.json() == {"data": seen, "next_cursor": None}


async def test_the_admin_listing_of_a_tenant_without_a_profile_shows_carrier_opt_outs(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """A 40300 for a tenant without a profile is listed under its tenant_id, source carrier."""
    tenant = await make_tenant(messaging_profile_id=None, senders=LONG_CODE_ONLY)
    number = fresh_number()
    behaviour = {"to": number, "action": "reject", "error_code": "40300", "http_status": 403}
    (await sim.post("/_sim/behaviours", json=behaviour)).raise_for_status()
    assert_problem(await start(tenant, number), 409, "recipient_opted_out")
    await sim.delete("/_sim/behaviours")

    response = await list_opt_outs(admin, tenant_id=tenant.id)
    assert response.status_code == 200, response.text
    [item] = response.json()["data"]
    assert item["phone_number"] == number
    assert item["source"] == "carrier"
    assert response.json()["next_cursor"] is None


async def test_the_admin_listing_needs_the_admin_token(
    anonymous: httpx.AsyncClient, tenant: TenantHandle
) -> None:
    """Without the admin token (none, or a tenant's key) the listing is 401."""
    params = {"messaging_profile_id": PROFILE_ID}
    assert_problem(await anonymous.get("/admin/opt-outs", params=params), 401, "unauthorized")
    refused = await tenant.client.get("/admin/opt-outs", params=params)
    assert_problem(refused, 401, "unauthorized")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"messaging_profile_id": PROFILE_ID, "tenant_id": "ten_x"},
        {"messaging_profile_id": PROFILE_ID, "limit": 0},
        {"messaging_profile_id": PROFILE_ID, "limit": 501},
        {"messaging_profile_id": PROFILE_ID, "cursor": "not-a-cursor"},
    ],
)
async def test_the_admin_listing_refuses_bad_queries(
    admin: httpx.AsyncClient, params: dict[str, str | int]
) -> None:
    """No scope, both scopes, a limit outside 1..500 or a made-up cursor is 422."""
    problem = assert_problem(await list_opt_outs(admin, **params), 422, "validation_error")
    assert problem["errors"]


async def test_the_admin_listing_of_an_unknown_tenant_is_404(admin: httpx.AsyncClient) -> None:
    """Listing by a tenant that does not exist is 404 tenant_not_found."""
    assert_problem(await list_opt_outs(admin, tenant_id="ten_missing"), 404, "tenant_not_found")


@pytest.fixture
def sync_env(redis_url: str, simulator: Simulator, service: Service) -> dict[str, str]:
    """The environment of an operator running the CLI against the service's Redis and Telnyx."""
    return {
        "PATH": "/usr/bin:/bin",
        **service_environ(redis_url, simulator),
        "OTP_LOG_LEVEL": "WARNING",
    }


def summary_of(run: Run) -> str:
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run.stdout
    return lines[0]


async def test_optouts_sync_imports_telnyx_opt_outs_which_then_block_starts(
    sync_env: dict[str, str],
    admin: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    make_tenant: MakeTenant,
) -> None:
    """``optouts sync`` records Telnyx's rules per profile (source import, Telnyx's time),
    skips rules without a profile, and the imported numbers are then refused."""
    profile, other = str(uuid.uuid4()), str(uuid.uuid4())
    numbers = sorted(fresh_number() for _ in range(3))
    rules = {}
    for number in numbers:
        added = await sim.post(
            "/_sim/opt-outs", json={"to": number, "messaging_profile_id": profile}
        )
        rules[number] = added.json()
    elsewhere = fresh_number()
    await sim.post("/_sim/opt-outs", json={"to": elsewhere, "messaging_profile_id": other})
    await sim.post("/_sim/opt-outs", json={"to": fresh_number(), "from": TENANT_NUMBER})

    everything = summary_of(await otp_service(sync_env, "optouts", "sync"))
    assert re.fullmatch(
        r"imported \d+ opt-outs from \d+ pages \(\d+ new\); "
        r"skipped \d+ without a profile or a valid number",
        everything,
    ), everything
    filtered = await otp_service(
        sync_env, "optouts", "sync", "--messaging-profile-id", profile, "--page-size", "2"
    )
    assert summary_of(filtered) == "imported 3 opt-outs from 2 pages (0 new)"

    listed = await list_opt_outs(admin, messaging_profile_id=profile)
    assert listed.json()["data"] == [
        {
            "phone_number": number,
            "opted_out": True,
            "since": rules[number]["created_at"],
            "source": "import",
        }
        for number in numbers
    ]
    [imported_elsewhere] = (await list_opt_outs(admin, messaging_profile_id=other)).json()["data"]
    assert imported_elsewhere["phone_number"] == elsewhere

    (await sim.delete("/_sim/opt-outs")).raise_for_status()
    tenant = await make_tenant(messaging_profile_id=profile)
    assert_problem(await start(tenant, numbers[0]), 409, "recipient_opted_out")
    assert await inbox(sim, numbers[0]) == []


async def test_optouts_sync_fails_cleanly_when_telnyx_refuses(sync_env: dict[str, str]) -> None:
    """A wrong Telnyx API key stops ``optouts sync`` with one line naming the refusal."""
    run = await otp_service(sync_env | {"TELNYX_API_KEY": "wrong"}, "optouts", "sync")
    assert_clean_failure(run, "refused", "401")
    assert run.stdout == ""


OPT_OUT_PAGE = {
    "data": [
        {
            "from": "+13125550100",
            "to": "+447400123456",
            "messaging_profile_id": "4000eba1-a0c0-4563-9925-b25e842a7cb6",
            "keyword": "STOP",
            "created_at": "2026-01-02T03:04:05.678Z",
        }
    ],
    "meta": {"page_number": 2, "page_size": 1, "total_pages": 3, "total_results": 3},
}


def telnyx_answering(
    *answers: httpx.Response | Exception,
) -> tuple[TelnyxClient, list[httpx.Request]]:
    """A client whose Telnyx gives these answers in turn, and the requests it received."""
    requests: list[httpx.Request] = []
    pending = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    http = httpx.AsyncClient(
        base_url="https://api.telnyx.test/v2", transport=httpx.MockTransport(handle)
    )
    return TelnyxClient(http, api_key="KEY_secret"), requests


async def test_the_client_reads_a_page_of_opt_outs_with_the_filter() -> None:
    """``list_opt_outs`` sends Telnyx's page and filter parameters and reads items and meta."""
    client, requests = telnyx_answering(httpx.Response(200, json=OPT_OUT_PAGE))
    page = await client.list_opt_outs(page=2, size=1, messaging_profile_id="prof")
    [request] = requests
    assert request.url.path == "/v2/messaging_optouts"
    assert dict(request.url.params) == {
        "page[number]": "2",
        "page[size]": "1",
        "filter[messaging_profile_id]": "prof",
    }
    assert request.headers["authorization"] == "Bearer KEY_secret"
    assert page.page_number == 2
    assert page.total_pages == 3
    [item] = page.items
    assert item.to == "+447400123456"
    assert item.messaging_profile_id == "4000eba1-a0c0-4563-9925-b25e842a7cb6"


async def test_the_client_retries_a_read_once_after_a_transport_error() -> None:
    """A dropped connection is retried once (a read changes nothing); a second one is 503."""
    client, requests = telnyx_answering(
        httpx.ReadError("reset"), httpx.Response(200, json=OPT_OUT_PAGE)
    )
    page = await client.list_opt_outs(page=1, size=250, messaging_profile_id=None)
    assert len(page.items) == 1
    assert "filter[messaging_profile_id]" not in requests[0].url.params

    failing, _ = telnyx_answering(httpx.ReadError("reset"), httpx.ConnectError("refused"))
    with pytest.raises(ProviderUnavailable):
        await failing.list_opt_outs(page=1, size=250, messaging_profile_id=None)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(400, json={"code": "10015", "title": "Bad page"}), ProviderError),
        (httpx.Response(401, json={"errors": [{"code": "10009"}]}), ProviderError),
        (httpx.Response(429, json={"errors": [{"code": "10011"}]}), ProviderUnavailable),
        (httpx.Response(503, text="down"), ProviderUnavailable),
        (httpx.Response(200, text="<html>"), ProviderUnavailable),
    ],
)
async def test_the_client_tells_refusals_from_outages_when_reading(
    answer: httpx.Response, error: type[Exception]
) -> None:
    """A 4xx is a ProviderError with Telnyx's codes; 429, 5xx and unreadable bodies are 503."""
    client, _ = telnyx_answering(answer)
    with pytest.raises(error) as raised:
        await client.list_opt_outs(page=1, size=20, messaging_profile_id=None)
    if isinstance(raised.value, ProviderError):
        assert raised.value.error_codes in {("10015",), ("10009",)}
