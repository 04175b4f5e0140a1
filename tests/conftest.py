"""Shared fixtures: a private Redis, the Telnyx simulator and the service, all over real HTTP.

One Redis, one simulator and one service run for the whole session; tests stay apart by
creating their own tenant and using their own phone numbers. The service's clock can be
moved forward by a test (and is put back after it).
"""

from __future__ import annotations

import base64
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import phonenumbers
import pytest
from nacl.signing import SigningKey
from redis.asyncio import Redis

from otp_service.app import create_app
from otp_service.devredis import PrivateRedis
from otp_service.settings import Settings, load_settings
from otp_service.simulator.app import SimulatorConfig, create_simulator_app
from tests.servers import Factory, serve

TELNYX_KEY = "test-telnyx-key"
ADMIN_TOKEN = "test-admin-token-0123456789"
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"
PROFILE_ID = "6f1f3b1e-2a4c-4e0e-9c55-000000000001"
DEFAULT_SETTINGS: dict[str, Any] = {
    "brand": "Acme",
    "messaging_profile_id": PROFILE_ID,
    "senders": {
        "default": [{"type": "long_code", "from": "+13125550100"}],
        "GB": [{"type": "alphanumeric_sender_id", "from": "ACME"}],
    },
}


class MovableClock:
    """The real clock plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        """Return the real time shifted by the offset."""
        return time.time_ns() // 1_000_000 + self.offset_ms

    def advance(self, seconds: float) -> None:
        """Move the service's time forward."""
        self.offset_ms += int(seconds * 1000)


@dataclass
class Simulator:
    """The running Telnyx simulator."""

    url: str
    public_key: str
    seed: bytes


@dataclass
class Service:
    """The running service."""

    url: str
    settings: Settings
    clock: MovableClock


@dataclass
class TenantHandle:
    """A tenant made for one test, with a client that carries its API key."""

    id: str
    key: str
    client: httpx.AsyncClient
    numbers: list[str] = field(default_factory=list)


SUMMARY: list[str] = []
"""Lines for the end of the test run's report (e.g. the contract fuzzing's totals)."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print ``SUMMARY`` whatever the capture mode, so the figures can be quoted."""
    for line in SUMMARY:
        terminalreporter.write_line(line)


_numbers = random.Random(os.getpid())  # noqa: S311  (test data, not secrets)
_issued: set[str] = set()


def fresh_number(region: str = "GB") -> str:
    """A valid mobile number no other test uses (random, checked by libphonenumber).

    Numbers already handed out are drawn again: among the 50 numbers of one concurrent
    test, two equal draws (about 1 run in 800) turned a start into a resend.
    """
    prefixes = {"GB": "+447400", "FR": "+33612", "US": "+1415555", "DE": "+49151"}
    digits = {"GB": 6, "FR": 6, "US": 4, "DE": 8}
    while True:
        tail = "".join(str(_numbers.randrange(10)) for _ in range(digits[region]))
        candidate = prefixes[region] + tail
        if candidate not in _issued and phonenumbers.is_valid_number(
            phonenumbers.parse(candidate, None)
        ):
            _issued.add(candidate)
            return candidate


def service_environ(redis_url: str, simulator: Simulator) -> dict[str, str]:
    """The environment of a service (or the CLI) wired to a Redis and the simulator."""
    return {
        "REDIS_URL": redis_url,
        "OTP_ADMIN_TOKEN": ADMIN_TOKEN,
        "OTP_SECRET_KEY": SECRET_KEY,
        "TELNYX_API_KEY": TELNYX_KEY,
        "TELNYX_PUBLIC_KEY": simulator.public_key,
        "TELNYX_BASE_URL": f"{simulator.url}/v2",
        "OTP_ALLOW_PRIVATE_WEBHOOKS": "1",
        "OTP_TELNYX_TIMEOUT_SECONDS": "2",
        "OTP_TWILIO_API": "1",
    }


def service_settings(redis_url: str, simulator: Simulator, **overrides: str) -> Settings:
    """Settings of a service wired to the private Redis and the simulator."""
    return load_settings(service_environ(redis_url, simulator) | overrides)


@contextmanager
def service_on(redis_url: str, simulator: Simulator, **overrides: str) -> Iterator[str]:
    """Another instance of the service (on a Redis of the caller's), served over HTTP."""

    def build(base_url: str) -> Any:
        return create_app(
            service_settings(redis_url, simulator, OTP_PUBLIC_URL=base_url, **overrides)
        )

    with serve(Factory(build)) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server for the session (never the machine's 6379)."""
    with PrivateRedis() as server:
        yield server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the private Redis, for tests that look at what is stored."""
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    """The Telnyx simulator, requiring the service's Telnyx API key."""
    seed = os.urandom(32)
    public = base64.b64encode(bytes(SigningKey(seed).verify_key)).decode()
    app = create_simulator_app(SimulatorConfig(signing_seed=seed, api_key=TELNYX_KEY))
    with serve(app) as url:
        yield Simulator(url=url, public_key=public, seed=seed)


@pytest.fixture(scope="session")
def service(redis_url: str, simulator: Simulator) -> Iterator[Service]:
    """The service, asking the simulator to post webhooks back to it."""
    clock = MovableClock()
    holder: list[Settings] = []

    def build(base_url: str) -> Any:
        settings = service_settings(redis_url, simulator, OTP_PUBLIC_URL=base_url)
        holder.append(settings)
        return create_app(settings, clock=clock)

    with serve(Factory(build)) as url:
        yield Service(url=url, settings=holder[0], clock=clock)


@pytest.fixture(scope="session")
def dead_redis_service(simulator: Simulator) -> Iterator[str]:
    """A service whose Redis port has nothing listening: every Redis call fails fast."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = service_settings(
        f"redis://127.0.0.1:{port}/0", simulator, OTP_REDIS_TIMEOUT_SECONDS="0.5"
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
def clock(service: Service) -> Iterator[MovableClock]:
    """The service's clock; whatever a test moves is put back afterwards."""
    yield service.clock
    service.clock.offset_ms = 0


@pytest.fixture
async def admin(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the admin API."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=15) as client:
        yield client


@pytest.fixture
async def anonymous(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no credentials."""
    async with httpx.AsyncClient(base_url=service.url, timeout=15) as client:
        yield client


@pytest.fixture
async def sim(simulator: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the simulator's developer endpoints (inbox, behaviours)."""
    async with httpx.AsyncClient(base_url=simulator.url, timeout=15) as client:
        yield client


MakeTenant = Callable[..., Awaitable[TenantHandle]]


@pytest.fixture
async def make_tenant(admin: httpx.AsyncClient, service: Service) -> AsyncIterator[MakeTenant]:
    """Create tenants (with an API key each) for this test; settings default to DEFAULT_SETTINGS."""
    clients: list[httpx.AsyncClient] = []

    async def make(**settings: Any) -> TenantHandle:
        body = {"name": "Test tenant", "settings": DEFAULT_SETTINGS | settings}
        created = await admin.post("/admin/tenants", json=body)
        assert created.status_code == 201, created.text
        tenant_id = created.json()["id"]
        issued = await admin.post(f"/admin/tenants/{tenant_id}/api-keys")
        assert issued.status_code == 201, issued.text
        key = issued.json()["key"]
        client = httpx.AsyncClient(
            base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=15
        )
        clients.append(client)
        return TenantHandle(id=tenant_id, key=key, client=client)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def tenant(make_tenant: MakeTenant) -> TenantHandle:
    """A tenant with the default settings."""
    return await make_tenant()


async def sent_codes(sim: httpx.AsyncClient, number: str) -> list[str]:
    """The codes the simulator delivered to ``number``, oldest first."""
    response = await sim.get("/_sim/messages", params={"to": number})
    response.raise_for_status()
    return [message["text"].split(" ", 1)[0] for message in response.json()]
