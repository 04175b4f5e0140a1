"""The Python client against the running service: every call and every error, sync and async.

Each test runs twice, with ``OtpClient`` and with ``AsyncOtpClient`` (the ``connect``
fixture); ``answer`` awaits what the async client returns, so one test body serves both.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath
from nacl.signing import SigningKey

from otp_service.client import (
    AsyncOtpClient,
    AuthenticationError,
    Block,
    Conflict,
    DestinationNotAllowed,
    ExpiredSignature,
    Forbidden,
    IdempotencyConflict,
    InvalidCodeFormat,
    InvalidPhoneNumber,
    InvalidSignature,
    NetworkError,
    NotFound,
    OtpClient,
    OtpError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RecipientOptedOut,
    ServerError,
    ServiceUnavailable,
    ValidationError,
    Verification,
    VerificationNotPending,
    verify_event,
)
from tests.conftest import (
    MakeTenant,
    Service,
    Simulator,
    TenantHandle,
    fresh_number,
    sent_codes,
)
from tests.servers import serve

T = TypeVar("T")
Client = OtpClient | AsyncOtpClient
Connect = Callable[..., Client]
README = Path(__file__).parent.parent / "README.md"


async def answer(result: T | Awaitable[T]) -> T:
    """The result of a client call, awaited when the client is the async one."""
    if isinstance(result, Awaitable):
        return await result
    return result


async def raised(result: Callable[[], object]) -> OtpError:
    """The client error a call raises (sync or async); fails the test if none is raised."""
    with pytest.raises(OtpError) as caught:
        await answer(result())
    return caught.value


@pytest.fixture(params=["sync", "async"])
async def connect(request: pytest.FixtureRequest, service: Service) -> AsyncIterator[Connect]:
    """Open clients of one kind (the test runs for each) for a tenant, closed afterwards."""
    opened: list[Client] = []

    def make(tenant: TenantHandle | None = None, *, key: str = "", base_url: str = "") -> Client:
        api_key = tenant.key if tenant else key
        url = base_url or service.url
        client: Client = (
            OtpClient(url, api_key) if request.param == "sync" else AsyncOtpClient(url, api_key)
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        if isinstance(client, OtpClient):
            client.close()
        else:
            await client.aclose()


async def code_of(sim: httpx.AsyncClient, number: str) -> str:
    """The code of the latest SMS to ``number``."""
    return (await sent_codes(sim, number))[-1]


async def test_start_check_and_read(
    connect: Connect, tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A start returns the typed verification; a wrong code is an answer, the right one approves."""
    otp = connect(tenant)
    number = fresh_number()
    started = await answer(
        otp.start(
            number,
            locale="fr",
            code_length=8,
            metadata={"order": "42"},
            rate_limit_keys={"ip": "203.0.113.7"},
        )
    )
    assert isinstance(started, Verification)
    assert (started.status, started.phone_number, started.country) == ("pending", number, "GB")
    assert (started.locale, started.metadata, started.send_count) == ("fr", {"order": "42"}, 1)
    assert started.created_at.tzinfo is not None
    assert started.expires_at > started.created_at
    [message] = started.messages
    assert (message.sender_type, message.from_) == ("alphanumeric_sender_id", "ACME")
    code = await code_of(sim, number)
    assert len(code) == 8

    wrong = await answer(otp.check(started.id, "00000000" if code != "00000000" else "11111111"))
    assert (wrong.valid, wrong.status, wrong.check_attempts_remaining) == (False, "pending", 4)
    right = await answer(otp.check(started.id, code, rate_limit_keys={"ip": "203.0.113.7"}))
    assert (right.id, right.valid, right.status) == (started.id, True, "approved")

    read = await answer(otp.get(started.id))
    assert (read.status, read.check_attempts) == ("approved", 2)
    assert read.ended_at is not None

    again = await raised(lambda: otp.check(started.id, code))
    assert isinstance(again, VerificationNotPending)
    assert isinstance(again, Conflict)
    assert (again.status, again.code, again.verification_status) == (
        409,
        "verification_not_pending",
        "approved",
    )


async def test_check_by_phone_number(
    connect: Connect, tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A code checks against the number's pending verification; with none pending, NotFound."""
    otp = connect(tenant)
    number = fresh_number()
    started = await answer(otp.start(number))
    result = await answer(otp.check_phone_number(number, await code_of(sim, number)))
    assert (result.id, result.valid, result.status) == (started.id, True, "approved")
    error = await raised(lambda: otp.check_phone_number(number, "123456"))
    assert isinstance(error, NotFound)
    assert (error.status, error.code) == (404, "verification_not_found")


async def test_cancel(connect: Connect, tenant: TenantHandle) -> None:
    """Cancel ends the verification; a second cancel is VerificationNotPending."""
    otp = connect(tenant)
    started = await answer(otp.start(fresh_number()))
    canceled = await answer(otp.cancel(started.id))
    assert (canceled.id, canceled.status) == (started.id, "canceled")
    error = await raised(lambda: otp.cancel(started.id))
    assert isinstance(error, VerificationNotPending)
    assert error.verification_status == "canceled"


async def test_unknown_verifications_are_not_found(
    connect: Connect, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    """Get, check and cancel of an id that does not exist, or is another tenant's: NotFound."""
    otp = connect(tenant)
    theirs = await answer(connect(await make_tenant()).start(fresh_number()))
    for verification_id in ("ver_doesnotexist", theirs.id, "a/b"):
        for call in (
            partial(otp.get, verification_id),
            partial(otp.check, verification_id, "123456"),
            partial(otp.cancel, verification_id),
        ):
            error = await raised(call)
            assert isinstance(error, NotFound), error
            assert error.status == 404


async def test_resend_and_idempotency_key(
    connect: Connect, make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """A repeat with the same key replays the answer and sends nothing; another body: 422."""
    otp = connect(await make_tenant(resend_cooldown_seconds=0))
    number = fresh_number()
    first = await answer(otp.start(number, idempotency_key="signup-1"))
    replay = await answer(otp.start(number, idempotency_key="signup-1"))
    assert (replay.id, replay.send_count) == (first.id, 1)
    assert len(await sent_codes(sim, number)) == 1

    resent = await answer(otp.start(number))
    assert (resent.id, resent.send_count) == (first.id, 2)
    assert len(await sent_codes(sim, number)) == 2

    error = await raised(lambda: otp.start(number, locale="de", idempotency_key="signup-1"))
    assert isinstance(error, IdempotencyConflict)
    assert isinstance(error, ValidationError)
    assert (error.status, error.code) == (422, "idempotency_conflict")


async def test_rate_limited_carries_retry_after_and_limit(
    connect: Connect, tenant: TenantHandle
) -> None:
    """A resend inside the cooldown raises RateLimited naming the limit and the wait."""
    otp = connect(tenant)
    number = fresh_number()
    await answer(otp.start(number))
    error = await raised(lambda: otp.start(number))
    assert isinstance(error, RateLimited)
    assert (error.status, error.code, error.limit) == (429, "rate_limited", "resend_cooldown")
    assert error.retry_after is not None
    assert 0 < error.retry_after <= 30


async def test_validation_errors(connect: Connect, tenant: TenantHandle) -> None:
    """Bad input raises the ValidationError of its code, with the service's detail."""
    otp = connect(tenant)
    error = await raised(lambda: otp.start("+44 7400 123456"))
    assert isinstance(error, InvalidPhoneNumber)
    assert (error.status, error.code) == (422, "invalid_phone_number")
    assert error.detail

    started = await answer(otp.start(fresh_number()))
    error = await raised(lambda: otp.check(started.id, "12ab56"))
    assert isinstance(error, InvalidCodeFormat)
    assert error.code == "invalid_code_format"
    assert (await answer(otp.get(started.id))).check_attempts == 0

    error = await raised(lambda: otp.start(fresh_number(), locale="french"))
    assert type(error) is ValidationError
    assert error.code == "validation_error"
    assert [entry["field"] for entry in error.errors] == ["locale"]

    error = await raised(lambda: otp.opt_out("12345"))
    assert isinstance(error, InvalidPhoneNumber)

    now = datetime.now(UTC)
    error = await raised(lambda: otp.stats(from_=now, to=now - timedelta(hours=1)))
    assert isinstance(error, ValidationError)
    assert error.status == 422


async def test_a_wrong_key_is_an_authentication_error(
    connect: Connect, tenant: TenantHandle
) -> None:
    """A key the service does not know raises AuthenticationError on every call."""
    otp = connect(key=tenant.key + "x")
    for call in (lambda: otp.start(fresh_number()), otp.stats, otp.webhook_public_key):
        error = await raised(call)
        assert isinstance(error, AuthenticationError)
        assert (error.status, error.code) == (401, "unauthorized")


async def test_the_last_wrong_attempt_ends_the_verification(
    connect: Connect, make_tenant: MakeTenant, sim: httpx.AsyncClient
) -> None:
    """With one attempt, a wrong code ends it; the right code then raises the 409."""
    otp = connect(await make_tenant(max_check_attempts=1))
    number = fresh_number()
    started = await answer(otp.start(number))
    code = await code_of(sim, number)
    wrong = await answer(otp.check(started.id, "000000" if code != "000000" else "111111"))
    assert (wrong.valid, wrong.status, wrong.check_attempts_remaining) == (
        False,
        "max_attempts_reached",
        0,
    )
    error = await raised(lambda: otp.check(started.id, code))
    assert isinstance(error, VerificationNotPending)
    assert error.verification_status == "max_attempts_reached"


async def test_opt_out_lookup_and_opted_out_conflict(
    connect: Connect, tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """A carrier's 40300 raises RecipientOptedOut; the lookup then says so, with its source."""
    otp = connect(tenant)
    number = fresh_number()
    before = await answer(otp.opt_out(number))
    assert (before.phone_number, before.opted_out, before.since, before.source) == (
        number,
        False,
        None,
        None,
    )
    behaviour = {"to": number, "action": "reject", "error_code": "40300", "http_status": 403}
    (await sim.post("/_sim/behaviours", json=behaviour)).raise_for_status()
    error = await raised(lambda: otp.start(number))
    assert isinstance(error, RecipientOptedOut)
    assert isinstance(error, Conflict)
    assert (error.status, error.code) == (409, "recipient_opted_out")
    after = await answer(otp.opt_out(number))
    assert (after.opted_out, after.source) == (True, "carrier")
    assert after.since is not None


async def test_provider_errors(
    connect: Connect, tenant: TenantHandle, sim: httpx.AsyncClient
) -> None:
    """Telnyx refusing raises ProviderError (the failed verification named); down: 503."""
    otp = connect(tenant)
    refused = fresh_number()
    behaviour: dict[str, object] = {"to": refused, "action": "reject", "error_code": "40310"}
    (await sim.post("/_sim/behaviours", json=behaviour)).raise_for_status()
    error = await raised(lambda: otp.start(refused))
    assert isinstance(error, ProviderError)
    assert (error.status, error.code, error.error_codes) == (502, "provider_error", ["40310"])
    assert error.verification_id is not None
    assert (await answer(otp.get(error.verification_id))).status == "failed"

    down = fresh_number()
    behaviour = {"to": down, "action": "reject", "http_status": 503, "error_code": "10007"}
    (await sim.post("/_sim/behaviours", json=behaviour)).raise_for_status()
    error = await raised(lambda: otp.start(down))
    assert isinstance(error, ProviderUnavailable)
    assert isinstance(error, ServiceUnavailable)
    assert (error.status, error.code) == (503, "provider_unavailable")


async def test_destination_not_allowed(connect: Connect, make_tenant: MakeTenant) -> None:
    """A country outside allowed_countries raises DestinationNotAllowed (403)."""
    otp = connect(await make_tenant(allowed_countries=["GB"]))
    error = await raised(lambda: otp.start(fresh_number("FR")))
    assert isinstance(error, DestinationNotAllowed)
    assert isinstance(error, Forbidden)
    assert (error.status, error.code) == (403, "destination_not_allowed")


async def test_stats(connect: Connect, tenant: TenantHandle, sim: httpx.AsyncClient) -> None:
    """Stats count the tenant's starts and approvals; a window before them is empty."""
    otp = connect(tenant)
    number = fresh_number()
    started = await answer(otp.start(number))
    await answer(otp.check(started.id, await code_of(sim, number)))

    report = await answer(otp.stats())
    [row] = report.rows
    assert (row.country, row.sender_type, row.started, row.approved) == (
        "GB",
        "alphanumeric_sender_id",
        1,
        1,
    )
    assert row.conversion_rate == 1.0
    assert report.to - report.from_ == timedelta(hours=24)

    now = datetime.now(UTC)
    window = await answer(otp.stats(from_=now - timedelta(hours=1), to=now + timedelta(hours=1)))
    assert [r.started for r in window.rows] == [1]
    past = await answer(otp.stats(from_=now - timedelta(days=3), to=now - timedelta(days=2)))
    assert past.rows == []
    with pytest.raises(ValueError, match="time zone"):
        await answer(otp.stats(from_=datetime(2026, 1, 1)))  # noqa: DTZ001  (the mistake under test)


async def test_no_answer_is_a_network_error(connect: Connect) -> None:
    """A service that cannot be reached raises NetworkError, the httpx error as its cause."""
    with socket_closed() as url:
        otp = connect(key="otpk_any", base_url=url)
        error = await raised(lambda: otp.get("ver_x"))
    assert isinstance(error, NetworkError)
    assert error.status is None
    assert error.code == "network_error"
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert url in str(error)


@contextlib.contextmanager
def socket_closed() -> Iterator[str]:
    """The URL of a loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


class Receiver:
    """A tenant's event endpoint that keeps each request's headers and raw body."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

    def app(self) -> Litestar:
        @post("/events", status_code=200)
        async def take(request: Request[Any, Any, Any]) -> str:
            self.received.append((dict(request.headers), await request.body()))
            return "ok"

        return Litestar([take])

    async def delivered(
        self, event_type: str, verification_id: str
    ) -> tuple[dict[str, str], bytes]:
        """The headers and raw body of the ``event_type`` event about ``verification_id``."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for headers, body in self.received:
                event = json.loads(body)
                if (event["type"], event["data"]["id"]) == (event_type, verification_id):
                    return headers, body
            await asyncio.sleep(0.05)
        pytest.fail(f"no {event_type} event about {verification_id}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with serve(receiver.app()) as url:
        yield receiver, f"{url}/events"


async def test_verify_event(
    connect: Connect, make_tenant: MakeTenant, receiver: tuple[Receiver, str]
) -> None:
    """A delivered event verifies into a typed Event; tampered, forged or replayed it does not."""
    events, url = receiver
    otp = connect(await make_tenant(events_webhook_url=url))
    started = await answer(otp.start(fresh_number()))
    headers, body = await events.delivered("verification.created", started.id)
    key = await answer(otp.webhook_public_key())

    event = verify_event(body, headers, key)
    assert event.id.startswith("evt_")
    assert event.type == "verification.created"
    assert isinstance(event.data, Verification)
    assert (event.data.id, event.data.status) == (started.id, "pending")
    capitalised = {name.title(): value for name, value in headers.items()}
    assert verify_event(body, capitalised, key) == event

    tampered = body.replace(b'"pending"', b'"approved"')
    assert tampered != body
    other_key = base64.b64encode(bytes(SigningKey(os.urandom(32)).verify_key)).decode()
    timestamp = int(headers["otp-timestamp"])
    for forged_body, forged_headers, public_key in (
        (tampered, headers, key),
        (body, headers, other_key),
        (body, headers | {"otp-timestamp": str(timestamp + 1)}, key),
        (body, {"otp-timestamp": str(timestamp)}, key),
        (body, headers | {"otp-signature-ed25519": "not base64!"}, key),
    ):
        with pytest.raises(InvalidSignature) as caught:
            verify_event(forged_body, forged_headers, public_key)
        assert not isinstance(caught.value, ExpiredSignature)

    with pytest.raises(ExpiredSignature):
        verify_event(body, headers, key, now=timestamp + 301)
    assert verify_event(body, headers, key, now=timestamp + 301, tolerance_seconds=600) == event


def test_the_client_imports_nothing_of_the_server() -> None:
    """``import otp_service.client`` loads no server module nor any server-only library."""
    probe = (
        "import sys, otp_service.client; "
        "print(sorted(m for m in sys.modules if m.startswith('otp_service') "
        "and not m.startswith('otp_service.client')) + sorted(m for m in "
        "('litestar', 'redis', 'argon2', 'phonenumbers', 'uvicorn') if m in sys.modules))"
    )
    loaded = subprocess.run(  # noqa: S603  (our own interpreter, a fixed program)
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "['otp_service']"


def readme_example(heading: str) -> str:
    """The first Python block of a README section."""
    section = README.read_text().split(f"\n## {heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_readme_client_example_runs(
    tenant: TenantHandle, service: Service, simulator: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's client example, run as written against the service, prints what it says."""
    number = fresh_number("US")
    example = (
        readme_example("Python client")
        .replace('"otpk_…"', repr(tenant.key))
        .replace('"+14155552671"', repr(number))
        .replace("http://127.0.0.1:8000", service.url)
        .replace("http://127.0.0.1:8001", simulator.url)
    )
    exec(compile(example, "README.md", "exec"), {})  # noqa: S102  (our own README)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].endswith("(resend_cooldown)")
    assert printed[1:] == ["True approved", "409 verification_not_pending approved"]


async def test_the_readme_quick_start_verifies_a_code(
    tenant: TenantHandle,
    service: Service,
    simulator: Simulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The five-minute flow at the top of the README, run as written, ends approved."""
    number = fresh_number("US")
    monkeypatch.setenv("KEY", tenant.key)
    example = (
        readme_example("Five minutes to a verified code")
        .replace('"+14155552671"', repr(number))
        .replace("http://127.0.0.1:8000", service.url)
        .replace("http://127.0.0.1:8001", simulator.url)
    )
    exec(compile(example, "README.md", "exec"), {})  # noqa: S102  (our own README)
    assert capsys.readouterr().out.splitlines() == ["approved"]


def signed(seed: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers the service would sign ``body`` with, by the key of ``seed``."""
    signature = SigningKey(seed).sign(f"{timestamp}|".encode() + body).signature
    return {
        "otp-timestamp": str(timestamp),
        "otp-signature-ed25519": base64.b64encode(signature).decode(),
    }


def test_event_data_is_decoded_by_the_event_type() -> None:
    """A fraud.blocked event carries a Block; a type the client does not know, plain JSON."""
    seed = os.urandom(32)
    key = base64.b64encode(bytes(SigningKey(seed).verify_key)).decode()
    now = int(time.time())
    block = {
        "id": "blk_1",
        "limit": "prefix",
        "value": "+447911",
        "mode": "block",
        "reason": "many unconfirmed sends",
        "created_at": "2026-11-28T10:00:00.000Z",
        "expires_at": "2026-11-28T11:00:00.000Z",
        "strikes": 2,
    }
    body = json.dumps(
        {"id": "evt_1", "type": "fraud.blocked", "created_at": block["created_at"], "data": block}
    ).encode()
    event = verify_event(body, signed(seed, body, now), key)
    assert isinstance(event.data, Block)
    assert (event.data.value, event.data.strikes) == ("+447911", 2)
    assert event.data.expires_at - event.data.created_at == timedelta(hours=1)

    future = {"id": "evt_2", "type": "number.ported", "created_at": block["created_at"]}
    body = json.dumps(future | {"data": {"phone_number": "+447400123456"}}).encode()
    assert verify_event(body, signed(seed, body, now), key).data == {
        "phone_number": "+447400123456"
    }


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    """A stand-in for a proxy in front of the service: errors that are no problem documents."""

    @get("/busy/{rest:path}")
    async def busy(rest: FromPath[str]) -> Response[str]:
        return Response(f"slow down: {rest}", status_code=429, headers={"Retry-After": "7"})

    @get("/down/{rest:path}")
    async def down(rest: FromPath[str]) -> Response[str]:
        return Response(f"<h1>502 {rest}</h1>", status_code=502, media_type="text/html")

    with serve(Litestar([busy, down])) as url:
        yield url


async def test_errors_without_a_problem_document(connect: Connect, proxy: str) -> None:
    """A proxy's answers still raise by status family; Retry-After comes from the header."""
    busy = connect(key="otpk_any", base_url=f"{proxy}/busy")
    error = await raised(lambda: busy.get("ver_x"))
    assert type(error) is RateLimited
    assert (error.status, error.code, error.retry_after, error.problem) == (
        429,
        "rate_limited",
        7,
        None,
    )
    down = connect(key="otpk_any", base_url=f"{proxy}/down")
    error = await raised(lambda: down.get("ver_x"))
    assert type(error) is ServerError  # not ProviderError: no sign that Telnyx was involved
    assert error.status == 502
