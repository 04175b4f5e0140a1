"""Property tests: any sequence of calls in verifications' lives keeps their promises.

Hypothesis' stateful testing draws sequences of: starts and resends (two numbers, so a
number's next verification follows its last; some with an ``Idempotency-Key``), checks (a
code that was sent, a wrong one, another verification's, a malformed one; by id or by
phone number), cancels, clock moves, runs of the worker's jobs (expiry timers, fallbacks),
senders Telnyx refuses at once, and signed Telnyx receipts (for any message, any status,
so in order, out of order and twice; even before Telnyx's answer to the send, and for
messages never sent). Each example has a tenant of its own, with drawn limits and sender
chain, and events enabled but nobody consuming them, so the test sees the outbox.
Everything is real (the use cases, a private Redis, the Telnyx simulator over HTTP) except
that the clock stands still until a step moves it and the worker's jobs run when a step
says, one at a time, so every step is deterministic.

After every step:

- what the use cases report (status, attempts, send count, ended_at, messages) and what
  the outbox holds (expiry timers, fallback jobs) equal a small model kept here;
- at most one approval per verification, only with a code the simulator delivered for it,
  never after it ended; check attempts never above the limit;
- each ended verification has exactly one terminal event queued (the one of its end), a
  pending one none, and each one ``verification.created``;
- no key in Redis lacks a TTL but tenant data (record, API keys, outbox, hint shards).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar, cast

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from nacl.signing import SigningKey
from redis.asyncio import Redis

from otp_service.adapters import redis_keys as keys
from otp_service.adapters.redis_client import open_redis
from otp_service.adapters.redis_tenants import TenantStore
from otp_service.adapters.redis_work import EventJob, ExpiryJob, FallbackJob, LeasedJob, WorkQueue
from otp_service.adapters.telnyx import TelnyxClient
from otp_service.core.derive import derive_key
from otp_service.core.fraud import FraudGuardMode
from otp_service.core.hashing import Argon2Parameters, CodeHasher
from otp_service.core.limits import Bucket, LimitSettings
from otp_service.core.model import Sender, SenderType, Tenant, TenantSettings, Verification
from otp_service.devredis import PrivateRedis
from otp_service.errors import (
    IdempotencyConflict,
    InvalidCodeFormat,
    NotFound,
    ProviderError,
    RateLimited,
    VerificationNotPending,
)
from otp_service.hashing_pool import HashingPool
from otp_service.metrics import Metrics
from otp_service.runtime import tenants_over, use_cases_over
from otp_service.settings import Settings
from otp_service.usecases.expiries import Expiries
from otp_service.usecases.fallback import Fallbacks
from otp_service.usecases.idempotency import Idempotency, StoredResponse
from otp_service.usecases.receipts import TelnyxWebhooks
from otp_service.usecases.verifications import CheckResult, StartRequest, Verifications
from tests.conftest import PROFILE_ID, Simulator, fresh_number, service_settings

T = TypeVar("T")

EXAMPLES: Final = int(os.environ.get("OTP_PROPERTY_EXAMPLES", "100"))
STEPS: Final = 50
"""Bounds of the run: about 30 s on a 2-core machine. ``OTP_PROPERTY_EXAMPLES=1000`` digs deeper
(rare interleavings, such as a resend while the first message's silence timer waits, need
several hundred examples to turn up)."""

CODE_TTL_S: Final = 120
DELIVERY_TIMEOUT_S: Final = 20
LEASE_MS: Final = 10_000
CHAIN: Final = (
    Sender(type=SenderType.ALPHANUMERIC_SENDER_ID, from_="ACME"),
    Sender(type=SenderType.LONG_CODE, from_="+447400123000"),
    Sender(type=SenderType.NUMBER_POOL),
)

# The model's copy of how receipts move a message (README "Receipts"): never backwards.
RANK: Final = {
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivery_unconfirmed": 4,
    "delivered": 5,
    "sending_failed": 5,
    "delivery_failed": 5,
    "expired": 5,
}
UNDELIVERED: Final = frozenset({"sending_failed", "delivery_failed", "expired"})
IN_FLIGHT: Final = frozenset({"queued", "sending", "sent", "delivery_unconfirmed"})
MAY_ARRIVE: Final = IN_FLIGHT | {"delivered"}
RECEIPT_STATUSES: Final = sorted(RANK)
TERMINAL: Final = frozenset({"approved", "canceled", "expired", "max_attempts_reached", "failed"})
NO_TTL: Final = re.compile(
    r"otp:\{t:[^}]+\}:(tenant|keys|work|leases|jobs)|otp:\{w:[0-9]+\}:hints|otp:\{[ko]:.*"
    r"|otp:\{admin\}:tenants"
)
"""The keys that live as long as their tenant (``redis_keys``, ``redis_optouts``), and the
admin's index of tenants."""

RUN: Final[Counter[str]] = Counter()
"""What the property run covered, for the figures the README quotes."""


class StoppedClock:
    """A clock that stands still until the test moves it (so each step is deterministic).

    It starts at the real time, so the TTLs Redis counts in real time stay meaningful.
    """

    def __init__(self) -> None:
        self.now = time.time_ns() // 1_000_000

    def now_ms(self) -> int:
        """Return the time the test set."""
        return self.now


class ReceiptsFirst(httpx.AsyncBaseTransport):
    """The way to Telnyx, where a send's receipts can overtake Telnyx's answer to it.

    Real Telnyx may post ``message.sent`` or a failure before its answer to the send
    reaches the service; receipts ``armed`` here are delivered (as signed webhooks) between
    the simulator's answer and the service reading it, for the next message accepted.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.armed: list[str] = []
        self.deliver: Callable[[str, str], Awaitable[object]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward the request; deliver the armed receipts before answering an accepted send."""
        response = await self._inner.handle_async_request(request)
        sent = request.method == "POST" and response.status_code == httpx.codes.OK
        if not (sent and self.armed and self.deliver):
            return response
        body = await response.aread()
        message_id = json.loads(body)["data"]["id"]
        armed, self.armed = self.armed, []
        for status in armed:
            await self.deliver(message_id, status)
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in {"content-encoding", "content-length", "transfer-encoding"}
        ]
        return httpx.Response(response.status_code, headers=headers, content=body)

    async def aclose(self) -> None:
        """Close the connections to the simulator."""
        await self._inner.aclose()


def receipt_body(message_id: str, status: str) -> bytes:
    """A Telnyx delivery webhook reporting ``status`` for a message."""
    failed = status in UNDELIVERED
    event = {
        "data": {
            "event_type": "message.finalized" if RANK[status] >= RANK["sent"] else "message.sent",
            "id": str(uuid.uuid4()),
            "occurred_at": "2026-11-26T12:00:00.000+00:00",
            "payload": {
                "id": message_id,
                "to": [{"phone_number": "+447400123456", "status": status}],
                "errors": [{"code": "40008"}] if failed else [],
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": "http://example.test"},
    }
    return json.dumps(event).encode()


@dataclass
class Harness:
    """The use cases over the private Redis and the simulator, built as ``runtime`` does."""

    settings: Settings
    seed: bytes
    redis: Redis
    sim: httpx.AsyncClient
    transport: ReceiptsFirst
    clock: StoppedClock
    work: WorkQueue
    tenant_store: TenantStore
    verifications: Verifications
    webhooks: TelnyxWebhooks
    expiries: Expiries
    fallbacks: Fallbacks
    idempotency: Idempotency

    async def idempotent_start(self, tenant: Tenant, key: str, number: str) -> StoredResponse:
        """A start with an ``Idempotency-Key``, answered with the verification's id."""

        async def action() -> StoredResponse:
            try:
                verification, created = await self.verifications.start(
                    tenant, StartRequest(phone_number=number)
                )
            except RateLimited as exc:
                return StoredResponse(
                    status=httpx.codes.TOO_MANY_REQUESTS,
                    body=exc.limit.encode(),
                    media_type="text/plain",
                    headers={},
                )
            return StoredResponse(
                status=httpx.codes.CREATED if created else httpx.codes.OK,
                body=verification.id.encode(),
                media_type="text/plain",
                headers={},
            )

        return await self.idempotency.run(tenant.id, key, number, action)

    async def receipt(self, message_id: str, status: str, body: bytes | None = None) -> bytes:
        """Post a signed delivery receipt to the webhook use case; return its body."""
        body = body or receipt_body(message_id, status)
        stamp = str(self.clock.now // 1000)
        signature = SigningKey(self.seed).sign(f"{stamp}|".encode() + body).signature
        await self.webhooks.handle(
            timestamp=stamp, signature=base64.b64encode(signature).decode(), body=body
        )
        return body

    async def run_jobs(self, tenant_id: str) -> None:
        """Do what the worker would with the tenant's due expiry and fallback jobs.

        Events are left queued (put back as they were), as if no worker took them.
        """
        events: list[tuple[LeasedJob, EventJob]] = []
        while True:
            now = self.clock.now
            _, jobs = await self.work.lease(tenant_id, now, LEASE_MS, 1000)
            others = [leased for leased in jobs if not isinstance(leased.job, EventJob)]
            events += [(leased, leased.job) for leased in jobs if isinstance(leased.job, EventJob)]
            if not others:
                break
            for leased in others:
                match leased.job:
                    case ExpiryJob() as job:
                        due = await self.expiries.handle(tenant_id, job)
                        if due is None:
                            await self.work.done(leased, now)
                        else:
                            await self.work.retry(leased, job, due, now)
                    case FallbackJob() as job:
                        await self.fallbacks.handle(tenant_id, job)
                        await self.work.done(leased, now)
                    case _:
                        pytest.fail(f"unreadable job {leased.member}: {leased.raw}")
        for leased, event in events:
            await self.work.retry(leased, event, event.first_at, self.clock.now)

    async def outbox(self, tenant_id: str) -> tuple[dict[str, str], dict[str, int]]:
        """The tenant's jobs (member -> JSON), and when each job not leased is due."""
        work, _, jobs = keys.outbox(tenant_id)
        bodies = cast("dict[str, str]", await self.redis.hgetall(jobs))
        due = cast("list[tuple[str, float]]", await self.redis.zrange(work, 0, -1, withscores=True))
        return bodies, {member: int(score) for member, score in due}

    async def refuse(self, number: str, times: int) -> None:
        """Script the simulator to refuse the next ``times`` sends to ``number`` (40305)."""
        behaviour = {"to": number, "action": "reject", "times": times}
        (await self.sim.post("/_sim/behaviours", json=behaviour)).raise_for_status()

    async def lasting(self, names: list[str]) -> list[str]:
        """Those of the keys that exist and have no TTL."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.pttl(name)
            ttls = await pipe.execute()
        return [name for name, ttl in zip(names, ttls, strict=True) if ttl == -1]

    async def forget_everything(self) -> None:
        """Empty this test's Redis."""
        await self.redis.flushdb()

    async def keys_like(self, pattern: str) -> list[str]:
        """Every key matching ``pattern``."""
        return [key async for key in self.redis.scan_iter(match=pattern, count=1000)]

    async def inbox(self, number: str) -> dict[str, str]:
        """The codes the simulator delivered to ``number``, by Telnyx message id."""
        response = await self.sim.get("/_sim/messages", params={"to": number})
        response.raise_for_status()
        return {m["id"]: m["text"].split(" ", 1)[0] for m in response.json()}


@asynccontextmanager
async def open_harness(settings: Settings, seed: bytes) -> AsyncIterator[Harness]:
    """Open the clients (closed on exit) and compose the use cases over them."""
    secret = settings.secret_key.reveal()
    redis = open_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    transport = ReceiptsFirst()
    http = httpx.AsyncClient(base_url=settings.telnyx_base_url, transport=transport, timeout=10)
    sim = httpx.AsyncClient(base_url=settings.telnyx_base_url.removesuffix("/v2"), timeout=10)
    hashing = HashingPool(
        CodeHasher(derive_key(secret, "code-pepper"), Argon2Parameters(1, 1024, 1)), 2
    )
    clock = StoppedClock()
    rng = random.Random()  # noqa: S311  (ids and codes of test data; seeded from the OS)
    metrics = Metrics()
    cases = use_cases_over(
        redis,
        TelnyxClient(http, api_key=settings.telnyx_api_key.reveal()),
        hashing,
        settings,
        clock=clock,
        rng=rng,
        metrics=metrics,
        webhook_url=None,  # receipts come from the test, not the simulator
    )
    harness = Harness(
        settings=settings,
        seed=seed,
        redis=redis,
        sim=sim,
        transport=transport,
        clock=clock,
        work=cases.work,
        tenant_store=cases.tenant_store,
        verifications=cases.verifications,
        webhooks=cases.webhooks,
        expiries=cases.expiries,
        fallbacks=cases.fallbacks,
        idempotency=cases.idempotency,
    )
    transport.deliver = harness.receipt
    try:
        yield harness
    finally:
        hashing.close()
        await sim.aclose()
        await http.aclose()
        await redis.aclose()


@dataclass
class ModelMessage:
    """A message as the model expects it."""

    id: str | None
    """``None`` for a send Telnyx refused."""
    position: int
    status: str


@dataclass
class ModelVerification:
    """A verification as the model expects it; ``status`` is the stored one."""

    id: str
    number: str
    code_length: int
    expires_at: int
    next_send_at: int
    max_attempts: int
    status: str = "pending"
    ended_at: int | None = None
    attempts: int = 0
    send_count: int = 1
    messages: list[ModelMessage] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    """The codes the simulator delivered for it, oldest first."""
    approvals: int = 0

    def live(self, now: int) -> bool:
        """Pending and not past its expiry (what the scripts call live)."""
        return self.status == "pending" and now < self.expires_at

    def reported(self, now: int) -> tuple[str, int | None]:
        """The status and ended_at a reader is shown (expiry is shown before it is recorded)."""
        if self.status == "pending" and now >= self.expires_at:
            return "expired", self.expires_at
        return self.status, self.ended_at


def malformed(kind: str, length: int) -> str:
    """A code the service must refuse without using an attempt."""
    return {
        "short": "1" * (length - 1),
        "long": "1" * (length + 1),
        "letters": "a" * length,
        "space": "1" * (length - 1) + " ",
        "unicode_digits": "\u0663" * length,
        "empty": "",
    }[kind]


class VerificationLives(RuleBasedStateMachine):
    """Verifications of one tenant on two numbers, and the model they must agree with."""

    runner: ClassVar[asyncio.Runner]
    harness: ClassVar[Harness]

    def __init__(self) -> None:
        super().__init__()
        RUN["examples"] += 1
        self.h = self.harness
        self.h.clock.now = time.time_ns() // 1_000_000
        self.h.transport.armed = []
        self.numbers = [fresh_number("GB"), fresh_number("GB")]
        self.tenant: Tenant | None = None
        self.chain_len = 1
        self.timeout_ms: int | None = None
        self.model: dict[str, ModelVerification] = {}
        self.index: dict[str, str] = {}
        """Number -> its pending verification (the pending index)."""
        self.fallbacks: dict[tuple[str, str], tuple[str, int]] = {}
        """(verification, message) -> (reason, due) of the fallback jobs queued."""
        self.strays: list[str] = []
        """Message ids this service never sent, that receipts were posted for."""
        self.last_receipt: tuple[str, bytes] | None = None
        self.replays: dict[str, tuple[str, StoredResponse]] = {}
        """Idempotency-Key -> the number and the answer of its first start."""
        self.idempotency_keys: list[str] = []
        self.refusals: Counter[str] = Counter()
        """Number -> how many sends to it the simulator is scripted to refuse."""

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    @property
    def now(self) -> int:
        return self.h.clock.now

    @property
    def tenant_id(self) -> str:
        return self.tenant_of().id

    def tenant_of(self) -> Tenant:
        assert self.tenant is not None
        return self.tenant

    def pick(self, index: int) -> ModelVerification:
        return list(self.model.values())[index % len(self.model)]

    def end(self, verification: ModelVerification, status: str, at: int) -> None:
        RUN[f"ended {status}"] += 1
        verification.status, verification.ended_at = status, at
        if self.index.get(verification.number) == verification.id:
            del self.index[verification.number]

    def recorded(self, verification: ModelVerification, message: ModelMessage) -> None:
        """A message was recorded: queue what record_send queues."""
        verification.messages.append(message)
        if not verification.live(self.now):
            return
        assert message.id is not None
        key = (verification.id, message.id)
        if message.status in UNDELIVERED:
            self.fallbacks[key] = ("failed", self.now)
        elif self.timeout_ms is not None and message.status in IN_FLIGHT:
            self.fallbacks[key] = ("silent", self.now + self.timeout_ms)

    def will_send(self, number: str, first: int) -> bool:
        """Whether a send through the chain from ``first`` finds a sender that takes it."""
        return self.refusals[number] < self.chain_len - first

    def adopt_sends(
        self,
        verification: ModelVerification,
        real: Verification,
        first: int,
        early: list[str],
        *,
        fail: bool,
    ) -> None:
        """Follow a send through the chain from ``first``, as the service just recorded it.

        Each sender the simulator refuses leaves a ``sending_failed`` message and the next
        one is tried; the code of the message that went out is read from the inbox. With
        ``fail``, a chain used up fails the verification.
        """
        position = first
        while position < self.chain_len and self.refusals[verification.number] > 0:
            self.refusals[verification.number] -= 1
            verification.messages.append(ModelMessage(None, position, "sending_failed"))
            position += 1
        if position >= self.chain_len:
            # failed: every sender was tried and none could deliver (API.md), so not while an
            # SMS of the verification was delivered or may still arrive
            if fail and not any(m.status in MAY_ARRIVE for m in verification.messages):
                self.end(verification, "failed", self.now)
            return
        assert len(real.messages) == len(verification.messages) + 1, real.messages
        message_id = real.messages[-1].id
        assert message_id is not None
        code = self.run(self.h.inbox(verification.number))[message_id]
        assert len(code) == verification.code_length
        verification.codes.append(code)
        status = "queued"
        for receipt in early:
            if RANK[receipt] > RANK[status]:
                status = receipt
        self.recorded(verification, ModelMessage(message_id, position, status))

    # -- the tenant -------------------------------------------------------------------------

    @initialize(
        max_attempts=st.integers(1, 4),
        max_sends=st.integers(1, 4),
        cooldown=st.sampled_from([0, 30]),
        chain_len=st.integers(1, 3),
        silence=st.booleans(),
    )
    def make_tenant(
        self, max_attempts: int, max_sends: int, cooldown: int, chain_len: int, silence: bool
    ) -> None:
        self.chain_len = chain_len
        self.timeout_ms = DELIVERY_TIMEOUT_S * 1000 if silence else None
        tenant_settings = TenantSettings(
            brand="Acme",
            messaging_profile_id=PROFILE_ID,
            senders={"GB": list(CHAIN[:chain_len])},
            code_ttl_seconds=CODE_TTL_S,
            max_check_attempts=max_attempts,
            max_sends=max_sends,
            resend_cooldown_seconds=cooldown,
            delivery_timeout_seconds=DELIVERY_TIMEOUT_S if silence else None,
            events_webhook_url="http://127.0.0.1:9/events",
            # The model is a verification's life, not abuse protection (test_limits.py and
            # test_fraud_guard.py): its few numbers get many starts, which the default
            # per-number limits and the fraud guard would refuse at random points.
            fraud_guard=FraudGuardMode.OFF,
            limits=LimitSettings(
                phone_number_per_hour=1000,
                phone_number_per_day=10_000,
                tenant=Bucket(max=1_000_000, interval_seconds=1),
            ),
        )
        tenants = tenants_over(
            self.h.redis,
            self.h.settings,
            clock=self.h.clock,
            rng=random.Random(),  # noqa: S311
        )
        self.tenant = self.run(tenants.create("Property tenant", tenant_settings))

    # -- the rules --------------------------------------------------------------------------

    @rule(
        which=st.integers(0, 1),
        code_length=st.none() | st.integers(4, 8),
        early=st.lists(st.sampled_from(RECEIPT_STATUSES), max_size=2),
    )
    def start(self, which: int, code_length: int | None, early: list[str]) -> None:
        """Start, or resend the number's pending verification; receipts may come first."""
        RUN["steps"] += 1
        tenant = self.tenant_of()
        number = self.numbers[which]
        request = StartRequest(phone_number=number, code_length=code_length)
        limit = self.start_limit(number)
        if limit is not None:
            with pytest.raises(RateLimited) as limited:
                self.run(self.h.verifications.start(tenant, request))
            assert limited.value.limit == limit
            return
        self.start_through(
            number, code_length, early, lambda: self.h.verifications.start(tenant, request)
        )

    @rule(which=st.integers(0, 1), key=st.sampled_from(["a", "b", "c"]))
    def start_idempotently(self, which: int, key: str) -> None:
        """Start with an ``Idempotency-Key``: a repeat replays the first answer, sends nothing."""
        RUN["steps"] += 1
        tenant = self.tenant_of()
        number = self.numbers[which]
        first = self.replays.get(key)
        if first is not None and first[0] != number:
            with pytest.raises(IdempotencyConflict):
                self.run(self.h.idempotent_start(tenant, key, number))
            return
        if first is not None:
            assert self.run(self.h.idempotent_start(tenant, key, number)) == first[1]
            return
        if self.start_limit(number) is not None:
            key = str(uuid.uuid4())  # whether a refusal is replayed is not this test's concern
            self.idempotency_keys.append(key)
            response = self.run(self.h.idempotent_start(tenant, key, number))
            assert response.status == httpx.codes.TOO_MANY_REQUESTS
            return
        self.idempotency_keys.append(key)
        answers: list[StoredResponse] = []

        async def start() -> tuple[Verification, bool]:
            answers.append(await self.h.idempotent_start(tenant, key, number))
            real = await self.h.verifications.get(tenant, answers[0].body.decode())
            return real, answers[0].status == httpx.codes.CREATED

        self.start_through(number, None, [], start)
        if answers:  # a start that raised released its key
            self.replays[key] = (number, answers[0])

    def start_limit(self, number: str) -> str | None:
        """The limit that refuses a start for ``number`` now, if any."""
        seen = self.model.get(self.index.get(number, ""))
        if seen is None or not seen.live(self.now):
            return None
        if seen.send_count >= self.tenant_of().settings.max_sends:
            return "max_sends"
        if self.now < seen.next_send_at:
            return "resend_cooldown"
        return None

    def start_through(
        self,
        number: str,
        code_length: int | None,
        early: list[str],
        start: Callable[[], Coroutine[Any, Any, tuple[Verification, bool]]],
    ) -> None:
        """Run a start no limit refuses: a new verification, or a resend of the live one.

        When every sender refuses, a new verification fails and a resent one stays pending;
        either way the start answers ``ProviderError``.
        """
        settings = self.tenant_of().settings
        seen = self.model.get(self.index.get(number, ""))
        resend = seen is not None and seen.live(self.now)
        self.h.transport.armed = list(early)
        try:
            if self.will_send(number, 0):
                real, created = self.run(start())
                assert created is not resend
                assert self.h.transport.armed == []
            else:
                with pytest.raises(ProviderError) as refused:
                    self.run(start())
                assert refused.value.verification_id is not None
                real = self.run(
                    self.h.verifications.get(self.tenant_of(), refused.value.verification_id)
                )
        finally:
            self.h.transport.armed = []
        if seen is not None and resend:
            RUN["resent"] += 1
            verification = seen
            assert real.id == seen.id
            verification.send_count += 1
            verification.next_send_at = self.now + settings.resend_cooldown_seconds * 1000
        else:
            verification = ModelVerification(
                id=real.id,
                number=number,
                code_length=code_length or settings.code_length,
                expires_at=self.now + CODE_TTL_S * 1000,
                next_send_at=self.now + settings.resend_cooldown_seconds * 1000,
                max_attempts=settings.max_check_attempts,
            )
            assert real.id not in self.model
            self.model[real.id] = verification
            self.index[number] = real.id
        self.adopt_sends(verification, real, 0, early, fail=not resend)
        self.compare(verification, real)

    @rule(which=st.integers(0, 1), times=st.integers(1, 3))
    def refuse_sends(self, which: int, times: int) -> None:
        """Telnyx refuses the next sends to a number (each moves on to the next sender)."""
        RUN["steps"] += 1
        number = self.numbers[which]
        self.run(self.h.refuse(number, times))
        self.refusals[number] += times

    @precondition(lambda self: self.model)
    @rule(
        pick=st.integers(0, 63),
        kind=st.sampled_from(["sent", "wrong", "foreign", "malformed"]),
        choice=st.integers(0, 15),
        by_phone=st.booleans(),
        wrong=st.text(alphabet="0123456789", min_size=10, max_size=10),
        shape=st.sampled_from(["short", "long", "letters", "space", "unicode_digits", "empty"]),
    )
    def check(
        self, pick: int, kind: str, choice: int, by_phone: bool, wrong: str, shape: str
    ) -> None:
        """Check a code that was sent, a wrong one, another's or a malformed one."""
        RUN["steps"] += 1
        assert self.tenant is not None
        picked = self.pick(pick)
        target = self.model.get(self.index.get(picked.number, "")) if by_phone else picked
        if target is None:
            with pytest.raises(NotFound):
                self.run(self.h.verifications.check_by_phone(self.tenant, picked.number, "1234"))
            return
        code = self.choose_code(target, kind, choice, wrong[: target.code_length], shape)
        was_live = target.live(self.now)
        status, _ = target.reported(self.now)
        calling = (
            self.h.verifications.check_by_phone(self.tenant, target.number, code)
            if by_phone
            else self.h.verifications.check(self.tenant, target.id, code)
        )
        if not was_live:
            with pytest.raises(VerificationNotPending) as refused:
                self.run(calling)
            assert refused.value.status == status
            return
        if kind == "malformed":
            with pytest.raises(InvalidCodeFormat):
                self.run(calling)
            return
        result: CheckResult = self.run(calling)
        target.attempts += 1
        assert target.attempts <= target.max_attempts
        if code in target.codes:
            self.end(target, "approved", self.now)
        elif target.attempts == target.max_attempts:
            self.end(target, "max_attempts_reached", self.now)
        assert result.id == target.id
        assert result.valid is (code in target.codes)
        assert result.status == target.status
        assert result.check_attempts_remaining == target.max_attempts - target.attempts
        if result.valid:
            target.approvals += 1
            delivered = self.run(self.h.inbox(target.number))
            assert code in {delivered[m.id] for m in target.messages if m.id}
            assert target.approvals == 1
            assert was_live

    def choose_code(
        self, target: ModelVerification, kind: str, choice: int, wrong: str, shape: str
    ) -> str:
        """A code of the kind drawn; a wrong or another's code is never one sent for ``target``."""
        length = target.code_length
        if kind == "sent" and target.codes:
            return target.codes[choice % len(target.codes)]
        if kind == "malformed":
            return malformed(shape, length)
        others = [
            code
            for other in self.model.values()
            if other is not target
            for code in other.codes
            if len(code) == length and code not in target.codes
        ]
        code = others[choice % len(others)] if kind == "foreign" and others else wrong
        while code in target.codes:
            code = str((int(code) + 1) % 10**length).zfill(length)
        return code

    @precondition(lambda self: self.model)
    @rule(pick=st.integers(0, 63))
    def cancel(self, pick: int) -> None:
        """Cancel a verification; only a live one can be."""
        RUN["steps"] += 1
        assert self.tenant is not None
        verification = self.pick(pick)
        status, _ = verification.reported(self.now)
        if not verification.live(self.now):
            with pytest.raises(VerificationNotPending) as refused:
                self.run(self.h.verifications.cancel(self.tenant, verification.id))
            assert refused.value.status == status
            return
        real = self.run(self.h.verifications.cancel(self.tenant, verification.id))
        self.end(verification, "canceled", self.now)
        self.compare(verification, real)

    @rule(seconds=st.integers(1, 130))
    def wait(self, seconds: int) -> None:
        """Let time pass (cooldowns, silence timers, expiry), without running the jobs."""
        RUN["steps"] += 1
        self.h.clock.now += seconds * 1000

    @precondition(lambda self: any(v.status == "pending" for v in self.model.values()))
    @rule(pick=st.integers(0, 63), late_ms=st.sampled_from([0, 1, 1000]))
    def expire(self, pick: int, late_ms: int) -> None:
        """Move the clock to a pending verification's expiry (or just past) and run the jobs."""
        pending = [v for v in self.model.values() if v.status == "pending"]
        verification = pending[pick % len(pending)]
        self.h.clock.now = max(self.now, verification.expires_at + late_ms)
        self.run_jobs()

    @rule()
    def run_jobs(self) -> None:
        """Run the due expiry timers and fallback jobs, as the worker would."""
        RUN["steps"] += 1
        self.run(self.h.run_jobs(self.tenant_id))
        now = self.now
        for verification in self.model.values():
            if verification.status == "pending" and now >= verification.expires_at:
                self.end(verification, "expired", verification.expires_at)
        due = sorted(key for key, (_, at) in self.fallbacks.items() if at <= now)
        for key in due:
            reason, _ = self.fallbacks.pop(key)
            self.fallback(self.model[key[0]], key[1], reason)

    def fallback(self, verification: ModelVerification, message_id: str, reason: str) -> None:
        """What a fallback job does (order among due jobs does not change the outcome)."""
        latest = verification.messages[-1]
        if not verification.live(self.now) or latest.id != message_id:
            return
        if latest.status not in (IN_FLIGHT if reason == "silent" else UNDELIVERED):
            return
        position = latest.position + 1
        if reason == "silent" and position >= self.chain_len:
            return  # the SMS may well have arrived: nothing to fall back to, nothing fails
        real = self.run(self.h.verifications.get(self.tenant_of(), verification.id))
        sent = len(verification.codes)
        self.adopt_sends(verification, real, position, [], fail=reason == "failed")
        RUN["fallbacks sent"] += len(verification.codes) - sent

    @precondition(lambda self: any(m.id for v in self.model.values() for m in v.messages))
    @rule(pick=st.integers(0, 255), status=st.sampled_from(RECEIPT_STATUSES))
    def receipt(self, pick: int, status: str) -> None:
        """A signed receipt for any message sent, in any status: in order or not."""
        RUN["steps"] += 1
        messages = [(v, m) for v in self.model.values() for m in v.messages if m.id]
        verification, message = messages[pick % len(messages)]
        assert message.id is not None
        self.last_receipt = (message.id, self.run(self.h.receipt(message.id, status)))
        self.apply(verification, message, status)

    def apply(self, verification: ModelVerification, message: ModelMessage, status: str) -> None:
        if RANK[status] <= RANK[message.status]:
            return
        message.status = status
        if status in UNDELIVERED and verification.live(self.now):
            assert message.id is not None
            key = (verification.id, message.id)
            due = self.fallbacks[key][1] if key in self.fallbacks else self.now
            self.fallbacks[key] = ("failed", min(due, self.now))

    @precondition(lambda self: self.last_receipt is not None)
    @rule()
    def receipt_again(self) -> None:
        """Telnyx delivers the same webhook twice: the second changes nothing."""
        RUN["steps"] += 1
        assert self.last_receipt is not None
        message_id, body = self.last_receipt
        self.run(self.h.receipt(message_id, "", body))

    @rule(status=st.sampled_from(RECEIPT_STATUSES))
    def stray_receipt(self, status: str) -> None:
        """A receipt for a message this service never sent is kept a while, then forgotten."""
        RUN["steps"] += 1
        message_id = str(uuid.uuid4())
        self.strays.append(message_id)
        self.run(self.h.receipt(message_id, status))

    # -- the invariants ---------------------------------------------------------------------

    def compare(self, verification: ModelVerification, real: Verification) -> None:
        status, ended_at = verification.reported(self.now)
        assert (real.id, real.status.value, real.ended_at) == (verification.id, status, ended_at)
        assert real.check_attempts == verification.attempts <= real.max_check_attempts
        assert (real.send_count, real.next_send_at) == (
            verification.send_count,
            verification.next_send_at,
        )
        assert real.code_length == verification.code_length
        assert real.expires_at == verification.expires_at
        assert [(m.id, m.position, m.status) for m in real.messages] == [
            (m.id, m.position, m.status) for m in verification.messages
        ]

    @invariant()
    def agrees_with_the_model(self) -> None:
        """What the use cases report is what the model expects."""
        if self.tenant is None:
            return
        for verification in self.model.values():
            real = self.run(self.h.verifications.get(self.tenant, verification.id))
            self.compare(verification, real)
            assert verification.approvals <= 1

    @invariant()
    def outbox_holds_what_it_should(self) -> None:
        """One terminal event per ended verification; its timer while pending; the fallbacks."""
        if self.tenant is None:
            return
        jobs, due_at = self.run(self.h.outbox(self.tenant_id))
        events: dict[str, list[tuple[str, str]]] = {}
        fallbacks: dict[tuple[str, str], tuple[str, int]] = {}
        for member, raw in jobs.items():
            job = json.loads(raw)
            if member.startswith("ev:"):
                snapshot = job["verification"]
                events.setdefault(snapshot["id"], []).append((job["type"], snapshot["status"]))
            elif member.startswith("fb:"):
                fallbacks[job["verification_id"], job["message_id"]] = (
                    job["reason"],
                    due_at[member],
                )
        for verification in self.model.values():
            seen = events.get(verification.id, [])
            assert seen.count(("verification.created", "pending")) == 1
            ends = [(kind, status) for kind, status in seen if kind.split(".")[1] in TERMINAL]
            expected = [] if verification.status == "pending" else [verification.status]
            assert [kind.split(".")[1] for kind, _ in ends] == expected, seen
            assert all(kind == f"verification.{status}" for kind, status in ends)
            timer = f"exp:{verification.id}" in jobs
            assert timer is (verification.status == "pending")
        assert fallbacks == self.fallbacks

    @invariant()
    def every_key_expires_but_tenant_data(self) -> None:
        """No key in Redis without a TTL, but tenant data (design: tenant record, API keys,
        outbox, hint shards, the admin's tenant index; opt-outs and API key lookups, which
        this test writes none of)."""
        lasting = self.run(self.h.lasting(self.run(self.h.keys_like("*"))))
        assert [key for key in lasting if not NO_TTL.fullmatch(key)] == []

    def teardown(self) -> None:
        """Empty Redis (it is this test's own), so each example starts from nothing."""
        self.h.transport.armed = []
        self.run(self.h.forget_everything())


@pytest.fixture
def harness(simulator: Simulator) -> Iterator[tuple[asyncio.Runner, Harness]]:
    """The use cases on a private event loop (hypothesis drives the rules synchronously).

    They get a Redis of their own: the session's service runs a worker, which would take
    the tenants' jobs that this test runs itself (and sees queued).
    """
    with PrivateRedis() as redis, asyncio.Runner() as runner:
        settings = service_settings(redis.url, simulator, OTP_RUN_WORKERS="0")
        context = open_harness(settings, simulator.seed)
        opened = runner.run(context.__aenter__())
        try:
            yield runner, opened
        finally:
            runner.run(context.__aexit__(None, None, None))


def test_verification_lives_keep_their_invariants(
    harness: tuple[asyncio.Runner, Harness],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Any sequence of calls keeps the invariants of the module docstring."""
    # No example database (``database=None``), and Hypothesis' caches out of the work tree.
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path))
    VerificationLives.runner, VerificationLives.harness = harness
    began = time.monotonic()
    run_state_machine_as_test(
        VerificationLives,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    took = time.monotonic() - began
    with capsys.disabled():
        outcomes = ", ".join(
            f"{name} {count}"
            for name, count in sorted(RUN.items())
            if name not in {"examples", "steps"}
        )
        print(  # noqa: T201  (the figures the README quotes)
            f"\nproperty tests: {RUN['examples']} examples, {RUN['steps']} steps in {took:.0f} s"
            f" ({outcomes})"
        )
    assert RUN["examples"] >= EXAMPLES
    assert RUN["steps"] >= RUN["examples"]


Step = Callable[[VerificationLives], object]


def replay(harness: tuple[asyncio.Runner, Harness], *steps: Step) -> None:
    """Run steps of the state machine in order, checking every invariant after each."""
    VerificationLives.runner, VerificationLives.harness = harness
    state = VerificationLives()
    try:
        for step in steps:
            step(state)
            state.agrees_with_the_model()
            state.outbox_holds_what_it_should()
            state.every_key_expires_but_tenant_data()
    finally:
        state.teardown()


def test_a_delivered_code_outlives_a_resend_that_failed(
    harness: tuple[asyncio.Runner, Harness],
) -> None:
    """The first SMS was delivered; the resend's failed with no sender left to fall back to.

    The verification used to end as ``failed``, refusing the delivered code.
    """
    replay(
        harness,
        lambda s: s.make_tenant(
            max_attempts=3, max_sends=2, cooldown=0, chain_len=1, silence=False
        ),
        lambda s: s.start(which=0, code_length=None, early=[]),
        lambda s: s.receipt(pick=0, status="delivered"),
        lambda s: s.start(which=0, code_length=None, early=[]),
        lambda s: s.receipt(pick=1, status="delivery_failed"),
        lambda s: s.run_jobs(),
        lambda s: s.check(
            pick=0, kind="sent", choice=0, by_phone=False, wrong="0" * 10, shape="short"
        ),
    )


def test_a_silent_sms_outlives_its_failed_fallback(
    harness: tuple[asyncio.Runner, Harness],
) -> None:
    """No receipt came for the first SMS, so it fell back; the fallback's SMS then failed.

    The first SMS may still arrive (why silence alone never fails a verification), but the
    failed fallback used to end the verification as ``failed``.
    """
    replay(
        harness,
        lambda s: s.make_tenant(
            max_attempts=3, max_sends=1, cooldown=30, chain_len=2, silence=True
        ),
        lambda s: s.start(which=0, code_length=None, early=[]),
        lambda s: s.wait(seconds=DELIVERY_TIMEOUT_S),
        lambda s: s.run_jobs(),
        lambda s: s.receipt(pick=1, status="delivery_failed"),
        lambda s: s.run_jobs(),
        lambda s: s.check(
            pick=0, kind="sent", choice=0, by_phone=False, wrong="0" * 10, shape="short"
        ),
    )


def test_a_queued_sms_outlives_a_resend_that_failed_before_its_answer(
    harness: tuple[asyncio.Runner, Harness],
) -> None:
    """Hypothesis' own shrunk example: the resend's failure is reported before Telnyx answers.

    The first SMS had no receipt yet (it may still arrive) when the resend's failed with no
    sender left; the verification used to end as ``failed``.
    """
    replay(
        harness,
        lambda s: s.make_tenant(
            max_attempts=1, max_sends=2, cooldown=0, chain_len=1, silence=False
        ),
        lambda s: s.start_idempotently(key="a", which=1),
        lambda s: s.start(code_length=None, early=["delivery_failed"], which=1),
        lambda s: s.run_jobs(),
    )
