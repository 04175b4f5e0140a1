"""Fault injection against real processes: Redis, Telnyx and the service itself fail mid-flow.

Each test breaks one real part while verifications are under way (a private redis-server
stopped, paused with SIGSTOP or restarted; the Telnyx simulator answering 5xx, hanging,
dropping the connection, answering late, or posting receipts early, last-first or twice;
``otp-service serve`` SIGKILLed at a chosen point) and checks what a tenant would notice:

- while the fault lasts, every request gets a clear 5xx problem (503 ``service_unavailable``
  for Redis, 503 ``provider_unavailable`` for Telnyx) within its timeout: each request is
  bounded by a client timeout a little above the service's (``*_BOUND``);
- once it ends, the next requests succeed and background work resumes, without a restart;
- no event and no fallback is lost (a de-duplicating event receiver gets every expected
  event; a failed message still gets its fallback), and nothing is sent twice that should
  not be (the simulator's inbox is counted);
- after a kill, a fresh process on the same Redis finishes what the dead one left.

Known and accepted: a start killed during its Telnyx call may have sent the SMS (Telnyx has
no idempotency for sends) and the verification then stays pending without a message (its
code still works); delivery is at least once, so a receiver may see an event twice across
a kill (same id, same body).

The timeouts are set low (1 s) to keep the suite fast. Every fault is recorded in
``FAULTS``; the last test prints how many were injected (run with ``-s`` to see it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post
from nacl.signing import SigningKey
from redis.asyncio import Redis

from otp_service.adapters import redis_keys as keys
from otp_service.app import create_app
from otp_service.devredis import PrivateRedis
from tests.conftest import (
    ADMIN_TOKEN,
    PROFILE_ID,
    MovableClock,
    Simulator,
    fresh_number,
    service_environ,
    service_settings,
)
from tests.servers import Factory, serve

REDIS_TIMEOUT = 1.0
TELNYX_TIMEOUT = 1.0
MARGIN = 1.5
REDIS_BOUND = REDIS_TIMEOUT + MARGIN
"""No request may take longer than this while Redis fails (the service's timeout + margin)."""
TELNYX_BOUND = TELNYX_TIMEOUT + MARGIN
"""No start may take longer than this while Telnyx fails."""
FAST = {
    "OTP_REDIS_TIMEOUT_SECONDS": str(REDIS_TIMEOUT),
    "OTP_TELNYX_TIMEOUT_SECONDS": str(TELNYX_TIMEOUT),
    "OTP_JOB_LEASE_SECONDS": "1",  # a killed worker's jobs are taken over a second later
}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GB_CHAIN = [
    {"type": "alphanumeric_sender_id", "from": "ACME"},
    {"type": "long_code", "from": "+447400123000"},
]
SETTINGS: dict[str, Any] = {
    "brand": "Acme",
    "messaging_profile_id": PROFILE_ID,
    "senders": {"GB": GB_CHAIN, "default": [{"type": "long_code", "from": "+13125550100"}]},
    "code_ttl_seconds": 60,
    "resend_cooldown_seconds": 0,
}
"""Tenants of these tests: two senders for GB numbers (so a fallback has somewhere to go)."""
WAIT_SECONDS = 10.0


@dataclass
class Fault:
    name: str
    recovered: bool = False


FAULTS: list[Fault] = []
"""Every fault injected in this run, for the summary line (README quotes the count)."""


def inject(name: str) -> Fault:
    """Record a fault as it is injected; the test marks it recovered once it proved so."""
    fault = Fault(name)
    FAULTS.append(fault)
    return fault


# --- the parts: an event receiver, in-process and separate-process services ------------------


@dataclass
class EventSink:
    """A tenant's event endpoint that keeps every request; it can refuse (down) or hold them."""

    arrivals: list[bytes] = field(default_factory=list)
    """Every request's body as it arrived (held and refused ones too)."""
    deliveries: list[bytes] = field(default_factory=list)
    """The bodies answered 200 (what a receiver has taken)."""
    down: bool = False
    hold: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Litestar:
        @post("/events", status_code=200)
        async def take(request: Request[Any, Any, Any]) -> Response[str]:
            body = await request.body()
            self.arrivals.append(body)
            while not self.hold.is_set():
                await asyncio.sleep(0.01)
            if self.down:
                return Response("down", status_code=503)
            self.deliveries.append(body)
            return Response("ok")

        return Litestar([take], openapi_config=None, logging_config=None)

    def events(self, verification_id: str) -> dict[str, dict[str, Any]]:
        """The events taken about one verification, de-duplicated by event id."""
        found: dict[str, dict[str, Any]] = {}
        for body in list(self.deliveries):
            event = json.loads(body)
            if event["data"]["id"] == verification_id:
                found[event["id"]] = event
        return found

    def lifecycle(self, verification_id: str) -> list[str]:
        """The verification.* event types taken (each event once), sorted."""
        types = [e["type"] for e in self.events(verification_id).values()]
        return sorted(t for t in types if t.startswith("verification."))

    def message_statuses(self, verification_id: str) -> list[list[str]]:
        """For each message.status event taken (once each), the statuses of the messages."""
        return sorted(
            [m["status"] for m in e["data"]["messages"]]
            for e in self.events(verification_id).values()
            if e["type"] == "message.status"
        )


@pytest.fixture(scope="module")
def sink_server() -> Iterator[tuple[EventSink, str]]:
    sink = EventSink()
    sink.hold.set()
    with serve(sink.app()) as url:
        yield sink, f"{url}/events"


@pytest.fixture
def sink(sink_server: tuple[EventSink, str]) -> Iterator[EventSink]:
    """The event receiver, up and passing requests through, for this test."""
    found, _ = sink_server
    found.down = False
    found.hold.set()
    yield found
    found.down = False
    found.hold.set()


@pytest.fixture
def sink_url(sink_server: tuple[EventSink, str]) -> str:
    return sink_server[1]


@contextmanager
def in_process(redis_url: str, simulator: Simulator, clock: MovableClock) -> Iterator[str]:
    """The service in this process (its own thread), with low timeouts and a movable clock."""

    def build(base_url: str) -> Any:
        settings = service_settings(redis_url, simulator, OTP_PUBLIC_URL=base_url, **FAST)
        return create_app(settings, clock=clock)

    with serve(Factory(build)) as url:
        yield url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class ServiceProcess:
    """``otp-service serve`` in a process of its own, as an operator runs it, to SIGKILL.

    Every ``start`` runs a new process on the same port (the simulator posts receipts to the
    URL the service gave it) with the same environment; each writes a log of its own.
    """

    def __init__(self, env: dict[str, str], port: int, logs: Path) -> None:
        self._env = env
        self._logs = logs
        self._process: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.url = f"http://127.0.0.1:{port}"
        self.port = port

    async def start(self) -> None:
        """Run a new process and return once it answers."""
        self.runs += 1
        self._process = self._spawn()
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                assert self._process.poll() is None, self.log()
                try:
                    if (await client.get(f"{self.url}/health/live")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        pytest.fail(f"the service did not come up:\n{self.log()}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("wb") as out:
            return subprocess.Popen(  # noqa: S603  (our own module, fixed arguments)
                [sys.executable, "-m", "otp_service", "serve", "--port", str(self.port)],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, connections cut where they are."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()

    def stop(self) -> None:
        """Stop a running process the ordinary way (Ctrl-C)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    @property
    def log_path(self) -> Path:
        return self._logs / f"serve-{self.runs}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class KillRig:
    """What a kill test works with: its own Redis, the service process, a Redis client."""

    redis: PrivateRedis
    service: ServiceProcess
    store: Redis


@pytest.fixture
async def rig(
    simulator: Simulator, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[KillRig]:
    """A service process on a Redis of its own; indirect parametrization adds environment."""
    extra: dict[str, str] = getattr(request, "param", {})
    with PrivateRedis() as server:
        port = free_port()
        env = (
            os.environ
            | service_environ(server.url, simulator)
            | FAST
            | {
                "OTP_PUBLIC_URL": f"http://127.0.0.1:{port}",
                # long enough for a kill to land while a Telnyx call hangs
                "OTP_TELNYX_TIMEOUT_SECONDS": "5",
            }
            | extra
        )
        service = ServiceProcess(env, port, tmp_path)
        store = Redis.from_url(server.url, decode_responses=True)
        try:
            await service.start()
            yield KillRig(redis=server, service=service, store=store)
        finally:
            service.stop()
            await store.aclose()


# --- small helpers ------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds:g} s: {what}")
        await asyncio.sleep(0.05)


async def new_tenant(
    stack: AsyncExitStack, url: str, *, bound: float = 10, **settings: Any
) -> httpx.AsyncClient:
    """Create a tenant with ``SETTINGS`` (and ``settings``); return a client with its key."""
    async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=10) as admin:
        body = {"name": "Faults", "settings": SETTINGS | settings}
        created = await admin.post("/admin/tenants", json=body)
        assert created.status_code == 201, created.text
        issued = await admin.post(f"/admin/tenants/{created.json()['id']}/api-keys")
        assert issued.status_code == 201, issued.text
    headers = {"Authorization": f"Bearer {issued.json()['key']}"}
    return await stack.enter_async_context(
        httpx.AsyncClient(base_url=url, headers=headers, timeout=bound)
    )


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as opened:
        yield opened


async def script(sim: httpx.AsyncClient, number: str, **behaviour: object) -> None:
    (await sim.post("/_sim/behaviours", json={"to": number, **behaviour})).raise_for_status()


async def inbox(sim: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (await sim.get("/_sim/messages", params={"to": number})).json()
    return messages


async def codes(sim: httpx.AsyncClient, number: str) -> list[str]:
    return [m["text"].split(" ", 1)[0] for m in await inbox(sim, number)]


async def sms_count(sim: httpx.AsyncClient, number: str, count: int, seconds: float = 10) -> None:
    """Wait until ``count`` SMS were sent to the number, then make sure no other follows."""

    async def reached() -> bool:
        return len(await inbox(sim, number)) >= count

    await eventually(reached, f"{count} SMS to {number}", seconds)
    await asyncio.sleep(0.3)
    assert len(await inbox(sim, number)) == count, await inbox(sim, number)


async def lifecycle(sink: EventSink, verification_id: str, expected: list[str]) -> None:
    """Wait until the receiver took exactly ``expected`` verification events (by id, once)."""

    async def taken() -> bool:
        return sink.lifecycle(verification_id) == sorted(expected)

    try:
        await eventually(taken, f"events {expected} of {verification_id}", WAIT_SECONDS)
    except pytest.fail.Exception:
        pytest.fail(f"{verification_id}: got {sink.lifecycle(verification_id)}, not {expected}")


def assert_problem(response: httpx.Response, status: int, code: str, what: str = "") -> None:
    """A problem+json answer with this status and code."""
    assert response.status_code == status, (what, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), what
    assert response.json()["code"] == code, (what, response.text)


async def bounded(what: str, request: Awaitable[httpx.Response]) -> httpx.Response:
    """The answer to a request whose client timeout is the fault's bound; a hang fails."""
    try:
        return await request
    except httpx.TimeoutException:
        pytest.fail(f"{what} hung beyond its bound")


def receipt(message_id: str, status: str, event_id: str, error_code: str = "40008") -> bytes:
    """A Telnyx message.finalized event, as the simulator (and Telnyx) posts it."""
    errors = [{"code": error_code, "title": "Undeliverable"}] if status != "delivered" else []
    return json.dumps(
        {
            "data": {
                "event_type": "message.finalized",
                "id": event_id,
                "occurred_at": "2026-11-26T12:00:00.000+00:00",
                "payload": {
                    "id": message_id,
                    "to": [{"phone_number": "+447400000000", "status": status}],
                    "errors": errors,
                },
                "record_type": "event",
            },
            "meta": {"attempt": 1, "delivered_to": "http://service"},
        }
    ).encode()


def signed(seed: bytes, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = SigningKey(seed).sign(f"{stamp}|".encode() + body).signature
    return {
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "content-type": "application/json",
    }


async def start(tenant: httpx.AsyncClient, number: str, status: int = 201) -> str:
    response = await tenant.post("/v1/verifications", json={"phone_number": number})
    assert response.status_code == status, response.text
    verification_id: str = response.json()["id"]
    return verification_id


async def read(tenant: httpx.AsyncClient, verification_id: str) -> dict[str, Any]:
    response = await tenant.get(f"/v1/verifications/{verification_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def check(tenant: httpx.AsyncClient, verification_id: str, code: str) -> httpx.Response:
    return await tenant.post(f"/v1/verifications/{verification_id}/check", json={"code": code})


def wrong(code: str) -> str:
    return "".join(str((int(digit) + 1) % 10) for digit in code)


# --- what every Redis fault must leave working --------------------------------------------


async def unavailable_while_redis_fails(
    url: str, tenant: httpx.AsyncClient, verification_id: str, simulator: Simulator
) -> str:
    """Every kind of request answers 503 service_unavailable within REDIS_BOUND.

    Returns the number a start was refused for (nothing may be sent to it).
    """
    number = fresh_number()
    body = receipt(str(uuid.uuid4()), "delivered", str(uuid.uuid4()))
    path = f"/v1/verifications/{verification_id}"
    async with httpx.AsyncClient(base_url=url, timeout=REDIS_BOUND) as anyone:
        calls = {
            "ready": anyone.get("/health/ready"),
            "start": tenant.post("/v1/verifications", json={"phone_number": number}),
            "check": tenant.post(f"{path}/check", json={"code": "000000"}),
            "read": tenant.get(path),
            "cancel": tenant.post(f"{path}/cancel"),
            "receipt": anyone.post(
                "/webhooks/telnyx", content=body, headers=signed(simulator.seed, body)
            ),
            "admin": anyone.post("/admin/tenants", json={"name": "Later"}, headers=ADMIN),
        }
        answers = await asyncio.gather(*(bounded(n, c) for n, c in calls.items()))
    for name, answer in zip(calls, answers, strict=True):
        assert_problem(answer, 503, "service_unavailable", name)
    return number


async def every_way_works(
    tenant: httpx.AsyncClient, sim: httpx.AsyncClient, sink: EventSink, clock: MovableClock
) -> None:
    """Each way a verification can go, end to end, with its events: the service works again.

    Approved, canceled, max_attempts_reached, a fallback after a failed delivery (then
    approved), and an expiry nobody asks about (the clock moves, so this goes last).
    """
    approve, cancel, exhaust, fall_back, expire = (fresh_number() for _ in range(5))
    await script(sim, fall_back, sender_type="alphanumeric_sender_id", action="fail")
    ids = {number: await start(tenant, number) for number in (approve, cancel, exhaust, fall_back)}

    [code] = await codes(sim, approve)
    assert (await check(tenant, ids[approve], code)).json()["status"] == "approved"
    assert (await tenant.post(f"/v1/verifications/{ids[cancel]}/cancel")).status_code == 200
    [code] = await codes(sim, exhaust)
    answers = [await check(tenant, ids[exhaust], wrong(code)) for _ in range(5)]
    assert answers[-1].json()["status"] == "max_attempts_reached"
    await sms_count(sim, fall_back, 2)
    first, _ = await codes(sim, fall_back)
    assert (await check(tenant, ids[fall_back], first)).json()["status"] == "approved"

    ids[expire] = await start(tenant, expire)
    clock.advance(SETTINGS["code_ttl_seconds"] + 1)
    created = "verification.created"
    for number, end in [
        (approve, "approved"),
        (cancel, "canceled"),
        (exhaust, "max_attempts_reached"),
        (fall_back, "approved"),
        (expire, "expired"),
    ]:
        await lifecycle(sink, ids[number], [created, f"verification.{end}"])
    for number in (approve, cancel, exhaust, expire):
        assert len(await inbox(sim, number)) == 1


# --- Redis ---------------------------------------------------------------------------------


async def test_redis_stopped_then_restarted_empty(
    simulator: Simulator,
    sim: httpx.AsyncClient,
    sink: EventSink,
    sink_url: str,
    stack: AsyncExitStack,
) -> None:
    """Redis stops mid-flow: 503s within the timeout; it comes back empty: all works again.

    The data is gone (the tenant's key is refused with 401), but a tenant created afterwards
    gets every event and fallback: after such a restart, events used to stop for good.
    """
    clock = MovableClock()
    server = PrivateRedis().start()
    port = server.port
    try:
        with in_process(server.url, simulator, clock) as url:
            tenant = await new_tenant(stack, url, bound=REDIS_BOUND, events_webhook_url=sink_url)
            pending = await start(tenant, fresh_number())
            await lifecycle(sink, pending, ["verification.created"])

            stopped = inject("Redis stopped")
            server.stop()
            refused = await unavailable_while_redis_fails(url, tenant, pending, simulator)
            emptied = inject("Redis restarted empty")
            server = PrivateRedis(port=port).start()

            async with httpx.AsyncClient(base_url=url, timeout=REDIS_BOUND) as anyone:
                assert (await anyone.get("/health/ready")).status_code == 200
            assert_problem(await tenant.get(f"/v1/verifications/{pending}"), 401, "unauthorized")
            assert await inbox(sim, refused) == []
            again = await new_tenant(stack, url, events_webhook_url=sink_url)
            await every_way_works(again, sim, sink, clock)
            stopped.recovered = emptied.recovered = True
    finally:
        server.stop()


async def test_redis_paused_then_resumed(
    simulator: Simulator,
    sim: httpx.AsyncClient,
    sink: EventSink,
    sink_url: str,
    stack: AsyncExitStack,
) -> None:
    """Redis frozen (SIGSTOP) mid-flow: 503s within the timeout, never a hang; after SIGCONT
    the same tenant works again, and an expiry that fell due meanwhile is reported."""
    clock = MovableClock()
    with PrivateRedis() as server, in_process(server.url, simulator, clock) as url:
        tenant = await new_tenant(stack, url, bound=REDIS_BOUND, events_webhook_url=sink_url)
        number = fresh_number()
        pending = await start(tenant, number)
        await lifecycle(sink, pending, ["verification.created"])

        paused = inject("Redis paused")
        os.kill(server.pid, signal.SIGSTOP)
        try:
            clock.advance(SETTINGS["code_ttl_seconds"] + 1)
            refused = await unavailable_while_redis_fails(url, tenant, pending, simulator)
        finally:
            os.kill(server.pid, signal.SIGCONT)

        await lifecycle(sink, pending, ["verification.created", "verification.expired"])
        assert (await read(tenant, pending))["status"] == "expired"
        assert await inbox(sim, refused) == []
        assert len(await inbox(sim, number)) == 1
        await every_way_works(tenant, sim, sink, clock)
        paused.recovered = True


async def test_redis_restarted_with_its_data(
    simulator: Simulator,
    sim: httpx.AsyncClient,
    sink: EventSink,
    sink_url: str,
    stack: AsyncExitStack,
) -> None:
    """Redis restarts with its data under running flows: no request fails, nothing is lost.

    Every pooled connection dies with the old server; each command that meets one is
    retried once on a new connection, so the next requests answer normally. Events that
    were waiting for a retry (the receiver was down) are delivered afterwards.
    """
    clock = MovableClock()
    with PrivateRedis() as server, in_process(server.url, simulator, clock) as url:
        tenant = await new_tenant(stack, url, events_webhook_url=sink_url)
        approve, cancel = fresh_number(), fresh_number()
        sink.down = True
        first = await start(tenant, approve)
        second = await start(tenant, cancel)

        async def both_refused() -> bool:
            about = {json.loads(body)["data"]["id"] for body in sink.arrivals}
            return {first, second} <= about

        await eventually(both_refused, "the created events were refused")

        restarted = inject("Redis restarted with its data")
        server.restart()

        [code] = await codes(sim, approve)
        assert (await check(tenant, first, code)).json()["status"] == "approved"
        assert (await tenant.post(f"/v1/verifications/{second}/cancel")).status_code == 200
        sink.down = False
        clock.advance(6)  # the created events' first retry falls due
        await lifecycle(sink, first, ["verification.created", "verification.approved"])
        await lifecycle(sink, second, ["verification.created", "verification.canceled"])
        await every_way_works(tenant, sim, sink, clock)
        restarted.recovered = True


# --- Telnyx --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def telnyx_service(simulator: Simulator) -> Iterator[str]:
    """One service (and Redis) for the Telnyx faults; its clock never moves."""
    with PrivateRedis() as server, in_process(server.url, simulator, MovableClock()) as url:
        yield url


@pytest.fixture
async def telnyx_tenant(
    telnyx_service: str, sink_url: str, stack: AsyncExitStack
) -> httpx.AsyncClient:
    """A tenant whose starts are bounded by TELNYX_BOUND."""
    return await new_tenant(stack, telnyx_service, bound=TELNYX_BOUND, events_webhook_url=sink_url)


async def test_telnyx_answering_5xx(
    telnyx_tenant: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    """A Telnyx 5xx: the next sender takes the code at once; with none left, 503 at once
    and the verification failed (nothing left Telnyx); the next start works."""
    fault = inject("Telnyx answering 5xx")
    only, chained = fresh_number("US"), fresh_number()
    await script(sim, only, action="reject", http_status=503, error_code="10007", times=1)
    await script(
        sim,
        chained,
        sender_type="alphanumeric_sender_id",
        action="reject",
        http_status=500,
        error_code="10007",
        times=1,
    )

    refused = await bounded(
        "start", telnyx_tenant.post("/v1/verifications", json={"phone_number": only})
    )
    assert_problem(refused, 503, "provider_unavailable")
    failed = await read(telnyx_tenant, refused.json()["verification_id"])
    assert failed["status"] == "failed"
    assert await inbox(sim, only) == []
    taken = await read(telnyx_tenant, await start(telnyx_tenant, chained))
    assert [(m["sender_type"], m["id"] is None) for m in taken["messages"]] == [
        ("alphanumeric_sender_id", True),
        ("long_code", False),
    ]
    assert [m["from"] for m in await inbox(sim, chained)] == ["+447400123000"]

    again = await start(telnyx_tenant, only)
    [code] = await codes(sim, only)
    assert (await check(telnyx_tenant, again, code)).json()["status"] == "approved"
    fault.recovered = True


async def test_telnyx_hanging(telnyx_tenant: httpx.AsyncClient, sim: httpx.AsyncClient) -> None:
    """A send Telnyx never answers: 503 provider_unavailable after the timeout, no second
    sender (the SMS may still come), the verification kept; the retry sends the code."""
    fault = inject("Telnyx hanging")
    number = fresh_number()
    await script(sim, number, sender_type="alphanumeric_sender_id", action="timeout", times=1)

    hung = await bounded(
        "start", telnyx_tenant.post("/v1/verifications", json={"phone_number": number})
    )
    assert_problem(hung, 503, "provider_unavailable")
    verification_id = hung.json()["verification_id"]
    body = await read(telnyx_tenant, verification_id)
    assert body["status"] == "pending"
    assert [m["sender_type"] for m in body["messages"]] == ["alphanumeric_sender_id"]
    assert await inbox(sim, number) == []

    resent = await telnyx_tenant.post("/v1/verifications", json={"phone_number": number})
    assert (resent.status_code, resent.json()["id"]) == (200, verification_id)
    [code] = await codes(sim, number)
    assert (await check(telnyx_tenant, verification_id, code)).json()["status"] == "approved"
    fault.recovered = True


async def test_telnyx_resetting_the_connection(
    telnyx_tenant: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    """Telnyx takes the SMS but the connection drops before its answer: 503, and no second
    sender (that would be a second SMS); the code that did arrive approves."""
    fault = inject("Telnyx resetting the connection")
    number = fresh_number()
    await script(sim, number, sender_type="alphanumeric_sender_id", action="reset", times=1)

    dropped = await bounded(
        "start", telnyx_tenant.post("/v1/verifications", json={"phone_number": number})
    )
    assert_problem(dropped, 503, "provider_unavailable")
    verification_id = dropped.json()["verification_id"]
    await sms_count(sim, number, 1)
    [code] = await codes(sim, number)
    assert (await check(telnyx_tenant, verification_id, code)).json()["status"] == "approved"
    await start(telnyx_tenant, fresh_number())
    fault.recovered = True


async def test_telnyx_answering_slowly(
    telnyx_tenant: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    """A slow answer within the timeout is a normal 201; one past it is 503 within the bound,
    and the SMS Telnyx sends anyway carries a code that works; never a second sender."""
    fault = inject("Telnyx answering slowly")
    slow, too_slow = fresh_number(), fresh_number()
    alpha = "alphanumeric_sender_id"
    await script(sim, slow, sender_type=alpha, action="deliver", delay_seconds=0.5, times=1)
    await script(sim, too_slow, sender_type=alpha, action="deliver", delay_seconds=2, times=1)

    answers = await asyncio.gather(
        *(
            bounded("start", telnyx_tenant.post("/v1/verifications", json={"phone_number": n}))
            for n in (slow, too_slow)
        )
    )
    assert answers[0].status_code == 201, answers[0].text
    assert_problem(answers[1], 503, "provider_unavailable")
    late = answers[1].json()["verification_id"]
    await sms_count(sim, too_slow, 1)
    [code] = await codes(sim, too_slow)
    assert (await check(telnyx_tenant, late, code)).json()["status"] == "approved"
    assert len(await inbox(sim, slow)) == 1
    fault.recovered = True


@pytest.mark.parametrize(
    ("receipts", "fault_name"),
    [
        ("before", "receipts before the send's answer"),
        ("reversed", "receipts out of order"),
        ("twice", "receipts twice"),
    ],
    ids=["before", "reversed", "twice"],
)
async def test_receipts_that_race_the_send(
    telnyx_tenant: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sink: EventSink,
    receipts: str,
    fault_name: str,
) -> None:
    """Receipts early, last-first or twice: a delivered message ends delivered and is
    reported once per change; a failed one gets exactly one fallback, reported too."""
    fault = inject(fault_name)
    delivered, failing = fresh_number(), fresh_number()
    alpha = "alphanumeric_sender_id"
    await script(sim, delivered, sender_type=alpha, action="deliver", receipts=receipts)
    await script(sim, failing, sender_type=alpha, action="fail", receipts=receipts)
    ok, fell_back = await start(telnyx_tenant, delivered), await start(telnyx_tenant, failing)

    await sms_count(sim, failing, 2)

    async def settled() -> bool:
        ends = [
            [m["status"] for m in (await read(telnyx_tenant, v))["messages"]]
            for v in (ok, fell_back)
        ]
        return ends == [["delivered"], ["delivery_failed", "delivered"]]

    await eventually(settled, "every message reached its final status")
    first, _ = await codes(sim, failing)
    assert (await check(telnyx_tenant, fell_back, first)).json()["status"] == "approved"

    def reported() -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
        return (
            {tuple(c) for c in sink.message_statuses(ok)},
            {tuple(c) for c in sink.message_statuses(fell_back)},
        )

    async def every_change_reported() -> bool:
        delivered, failed = reported()
        return ("delivered",) in delivered and {
            ("delivery_failed",),
            ("delivery_failed", "delivered"),
        } <= failed

    try:
        await eventually(every_change_reported, "message.status events of every change")
    except pytest.fail.Exception:
        pytest.fail(f"message.status events: {reported()}")
    changes = sink.message_statuses(ok)
    assert len(changes) == len(reported()[0]), f"a change was reported twice: {changes}"
    assert reported()[0] <= {("sent",), ("delivered",)}
    fault.recovered = True


# --- the service SIGKILLed ----------------------------------------------------------------


async def pending_id(store: Redis, tenant_id: str, number: str) -> str | None:
    found = await store.get(keys.pending(tenant_id, number))
    return None if found is None else str(found)


async def kill_tenant(
    stack: AsyncExitStack, rig: KillRig, sink_url: str, **settings: Any
) -> tuple[str, httpx.AsyncClient]:
    """A tenant on the service process; returns its id too (to find its keys in Redis)."""
    async with httpx.AsyncClient(base_url=rig.service.url, headers=ADMIN, timeout=10) as admin:
        body = {
            "name": "Killed",
            "settings": SETTINGS | {"events_webhook_url": sink_url} | settings,
        }
        created = await admin.post("/admin/tenants", json=body)
        tenant_id = created.json()["id"]
        key = (await admin.post(f"/admin/tenants/{tenant_id}/api-keys")).json()["key"]
    client = httpx.AsyncClient(
        base_url=rig.service.url, headers={"Authorization": f"Bearer {key}"}, timeout=15
    )
    return tenant_id, await stack.enter_async_context(client)


async def killed_mid_request(request: asyncio.Task[httpx.Response]) -> None:
    """The request in flight when its process was killed gets no answer at all."""
    with pytest.raises(httpx.TransportError):
        await request


async def test_a_start_killed_during_its_telnyx_call(
    rig: KillRig,
    simulator: Simulator,
    sim: httpx.AsyncClient,
    sink: EventSink,
    sink_url: str,
    stack: AsyncExitStack,
) -> None:
    """Killed while two starts wait for Telnyx (stored, created event queued, SMS in flight).

    The point: after start.lua stored the verification with its expiry timer and created
    event, before the send was recorded. Telnyx sends both SMS anyway (a slow answer); the
    verifications stay pending without a message (accepted: no send idempotency at Telnyx),
    a code that arrives approves, and the fresh process delivers the events and fires the
    expiry of the other (its TTL is 10 s, the shortest a tenant can set).
    """
    tenant_id, tenant = await kill_tenant(stack, rig, sink_url, code_ttl_seconds=10)
    numbers = [fresh_number(), fresh_number()]
    for number in numbers:
        await script(
            sim,
            number,
            sender_type="alphanumeric_sender_id",
            action="deliver",
            delay_seconds=2,
            times=1,
        )
    requests = [
        asyncio.create_task(tenant.post("/v1/verifications", json={"phone_number": n}))
        for n in numbers
    ]

    async def both_stored() -> bool:
        return all([await pending_id(rig.store, tenant_id, n) for n in numbers])

    await eventually(both_stored, "both starts stored their verification")
    await asyncio.sleep(0.3)
    fault = inject("service killed during a start's Telnyx call")
    rig.service.kill()
    for request in requests:
        await killed_mid_request(request)
    approve, expire = [await pending_id(rig.store, tenant_id, n) or "" for n in numbers]

    await rig.service.start()
    for number in numbers:
        await sms_count(sim, number, 1)
    body = await read(tenant, approve)
    assert (body["status"], body["messages"]) == ("pending", [])
    [code] = await codes(sim, numbers[0])
    assert (await check(tenant, approve, code)).json()["status"] == "approved"
    await lifecycle(sink, approve, ["verification.created", "verification.approved"])
    await lifecycle(sink, expire, ["verification.created", "verification.expired"])
    assert "Traceback" not in rig.service.log()
    fault.recovered = True


@pytest.mark.parametrize(
    "rig",
    [{"OTP_ARGON2_TIME_COST": "20", "OTP_ARGON2_MEMORY_KIB": "65536"}],
    indirect=True,
    ids=["argon2 about 1 s"],
)
async def test_a_check_killed_while_argon2_runs(
    rig: KillRig, sim: httpx.AsyncClient, sink: EventSink, sink_url: str, stack: AsyncExitStack
) -> None:
    """Killed while a right code is being compared (argon2 made to take about a second).

    The point: after check_begin took the attempt, before check_finish decided. The
    attempt stays used (never handed back, so a crash cannot buy a guesser attempts); the
    same code then approves once through the fresh process, reported once.
    """
    tenant_id, tenant = await kill_tenant(stack, rig, sink_url)
    number = fresh_number()
    verification_id = await start(tenant, number)
    [code] = await codes(sim, number)
    key = keys.verification(tenant_id, verification_id)
    checking = asyncio.create_task(check(tenant, verification_id, code))

    async def attempt_taken() -> bool:
        return await rig.store.hget(key, "check_attempts") == "1"

    await eventually(attempt_taken, "the check took its attempt")
    fault = inject("service killed during a check's argon2")
    rig.service.kill()
    await killed_mid_request(checking)
    assert await rig.store.hget(key, "status") == "pending"

    await rig.service.start()
    approved = (await check(tenant, verification_id, code)).json()
    assert (approved["status"], approved["check_attempts_remaining"]) == ("approved", 3)
    assert_problem(await check(tenant, verification_id, code), 409, "verification_not_pending")
    await lifecycle(sink, verification_id, ["verification.created", "verification.approved"])
    assert "Traceback" not in rig.service.log()
    fault.recovered = True


async def test_a_receipt_killed_before_it_was_applied(
    rig: KillRig,
    simulator: Simulator,
    sim: httpx.AsyncClient,
    sink: EventSink,
    sink_url: str,
    stack: AsyncExitStack,
) -> None:
    """Killed while handling a delivery_failed receipt, Redis frozen so it waits there.

    The point: the webhook reached the service, nothing of it was applied, no answer went
    back. Telnyx posts it again (same event id) to the fresh process: the fallback is sent
    exactly once, and a third copy changes nothing.
    """
    _, tenant = await kill_tenant(stack, rig, sink_url)
    number = fresh_number()
    await script(sim, number, sender_type="alphanumeric_sender_id", action="silent", times=1)
    verification_id = await start(tenant, number)
    [message] = (await read(tenant, verification_id))["messages"]
    body = receipt(message["id"], "delivery_failed", str(uuid.uuid4()))
    headers = signed(simulator.seed, body)

    fault = inject("service killed during a receipt")
    os.kill(rig.redis.pid, signal.SIGSTOP)
    try:
        async with httpx.AsyncClient(base_url=rig.service.url, timeout=10) as telnyx:
            posting = asyncio.create_task(
                telnyx.post("/webhooks/telnyx", content=body, headers=headers)
            )
            await asyncio.sleep(0.3)
            rig.service.kill()
            await killed_mid_request(posting)
    finally:
        os.kill(rig.redis.pid, signal.SIGCONT)
    assert len(await inbox(sim, number)) == 1

    await rig.service.start()
    async with httpx.AsyncClient(base_url=rig.service.url, timeout=10) as telnyx:
        for _ in range(2):
            again = await telnyx.post(
                "/webhooks/telnyx", content=body, headers=signed(simulator.seed, body)
            )
            assert again.status_code == 200, again.text
    await sms_count(sim, number, 2)
    _, second = await codes(sim, number)
    assert (await check(tenant, verification_id, second)).json()["status"] == "approved"
    await lifecycle(sink, verification_id, ["verification.created", "verification.approved"])
    assert ["delivery_failed"] in sink.message_statuses(verification_id)
    assert "Traceback" not in rig.service.log()
    fault.recovered = True


async def test_an_event_delivery_killed_while_the_receiver_holds_it(
    rig: KillRig, sim: httpx.AsyncClient, sink: EventSink, sink_url: str, stack: AsyncExitStack
) -> None:
    """Killed while the tenant's endpoint holds the created event's request.

    The point: the event was posted, its answer not yet read, its job leased. The fresh
    process posts it again once the lease runs out: the same id and the same bytes (the
    receiver de-duplicates by id), and later events follow.
    """
    _, tenant = await kill_tenant(stack, rig, sink_url)
    number = fresh_number()
    sink.hold.clear()
    verification_id = await start(tenant, number)

    def created(body: bytes) -> bool:
        event = json.loads(body)
        return bool(event["data"]["id"] == verification_id and event["type"].endswith("created"))

    async def held() -> bool:
        return any(created(b) for b in sink.arrivals)

    await eventually(held, "the created event reached the receiver")
    fault = inject("service killed during an event delivery")
    rig.service.kill()
    sink.hold.set()

    await rig.service.start()

    async def posted_again() -> bool:
        return len([b for b in sink.arrivals if created(b)]) == 2

    await eventually(posted_again, "the created event was posted again")
    first, second = [b for b in sink.arrivals if created(b)]
    assert first == second
    [code] = await codes(sim, number)
    assert (await check(tenant, verification_id, code)).json()["status"] == "approved"
    await lifecycle(sink, verification_id, ["verification.created", "verification.approved"])
    assert "Traceback" not in rig.service.log()
    fault.recovered = True


async def test_a_fallback_killed_during_its_telnyx_call(
    rig: KillRig, sim: httpx.AsyncClient, sink: EventSink, sink_url: str, stack: AsyncExitStack
) -> None:
    """Killed while a fallback's send hangs at Telnyx (which then sends nothing).

    The point: after the fallback was claimed (its code's hash stored), during its Telnyx
    call. The fresh process takes the job over when its lease runs out and sends the
    fallback: the failed SMS and exactly one fallback SMS, whose code approves.
    """
    tenant_id, tenant = await kill_tenant(stack, rig, sink_url)
    number = fresh_number()
    await script(sim, number, sender_type="alphanumeric_sender_id", action="fail")
    await script(sim, number, sender_type="long_code", action="timeout", times=1)
    verification_id = await start(tenant, number)
    key = keys.verification(tenant_id, verification_id)

    async def claimed() -> bool:
        return len(json.loads(await rig.store.hget(key, "hashes") or "[]")) == 2

    await eventually(claimed, "the fallback was claimed")
    await asyncio.sleep(0.3)
    fault = inject("service killed during a fallback's Telnyx call")
    rig.service.kill()
    assert len(await inbox(sim, number)) == 1

    await rig.service.start()
    await sms_count(sim, number, 2)
    failed, fallback = await inbox(sim, number)
    assert (failed["from"], fallback["from"]) == ("ACME", "+447400123000")
    code = fallback["text"].split(" ", 1)[0]
    assert (await check(tenant, verification_id, code)).json()["status"] == "approved"
    await lifecycle(sink, verification_id, ["verification.created", "verification.approved"])
    assert "Traceback" not in rig.service.log()
    fault.recovered = True


def test_zz_fault_summary() -> None:
    """Print how many faults were injected (the README quotes it); each one recovered."""
    names = [fault.name for fault in FAULTS]
    print(f"\nfault injection: {len(FAULTS)} faults injected, all recovered: {'; '.join(names)}")  # noqa: T201
    assert [f.name for f in FAULTS if not f.recovered] == []
