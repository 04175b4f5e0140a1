"""Load without loss: a thousand-odd mixed flows at the machine's limit, and nothing lost.

The service runs as its own process (``otp-service serve``, background worker on, cheap
argon2) on a private Redis, with the Telnyx simulator posting real signed receipts and a
receiver taking the tenants' events. ``CONCURRENCY`` flows run at a time, each on a number
of its own: starts (some with an ``Idempotency-Key`` and its replay), resends (up to the
``max_sends`` refusal), wrong, malformed and right checks, checks by number, cancels,
sends Telnyx refuses (the next sender is tried in the same request), sends that fail after
acceptance (the worker falls back to the next sender; when that fails too, the
verification fails), sends that stay silent past the tenant's ``delivery_timeout_seconds``
(silence fallback) and verifications left to expire (``code_ttl_seconds`` of 10 s). Flows
that wait for the worker's fallback are finished (approved) once every flow has started.
Every choice comes from a seeded generator per flow: a run is the same run whatever the
interleaving.

A model per flow says what its history implies. At the end, once every receipt has been
taken and no event is left in the outboxes: every verification is in that state, with
those sends, attempts and messages, each message with the status the simulator reported;
the receiver, de-duplicating by event ``id``, holds exactly one ``verification.created``
and one terminal event matching the final status per verification (``message.status`` in
any number, nothing else); no answer was a 5xx, to the test or to the simulator's receipts;
the simulator accepted exactly the SMS the service recorded, id for id and number for
number. The summary line (``-s``) gives the figures the README quotes.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
import phonenumbers
import pytest
from litestar import Litestar, Request, Response, post
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from otp_service.adapters.redis_keys import outbox
from otp_service.devredis import PrivateRedis
from otp_service.simulator.app import SimulatorConfig, create_simulator_app
from tests.conftest import ADMIN_TOKEN, TELNYX_KEY, Simulator, service_environ
from tests.servers import serve
from tests.test_fallback import CHAINS
from tests.test_processes import free_port, running, wait_for

SEED: Final = 20240607
FLOWS: Final = 1200
"""About a minute on this 2-core machine (test, simulator and service share it)."""
CONCURRENCY: Final = 48
"""Flows in flight: more only lengthens every answer; the machine is busy either way."""
MAIN_TENANTS: Final = 4
MAX_ATTEMPTS: Final = 3
MAX_SENDS: Final = 4
SHORT_SECONDS: Final = 10
"""The shortest TTL and delivery timeout a tenant may set: expiries and silences take this."""
RUN_LIMIT_SECONDS: Final = 300
FINISH_SECONDS: Final = 60
"""From the first lane out of flows: every fallback SMS has been sent by then (the worker
may be far behind at that point: fallbacks wait behind the events queued before them)."""
DRAIN_SECONDS: Final = 60
"""Then every receipt has been taken and every event delivered (a few seconds usually)."""

TERMINAL: Final = {
    "approved": "verification.approved",
    "canceled": "verification.canceled",
    "expired": "verification.expired",
    "max_attempts_reached": "verification.max_attempts_reached",
    "failed": "verification.failed",
}
NEXT_SENDER_FAILURES: Final = ("40002", "40006", "40008", "40011", "40014")
NEXT_SENDER_REFUSALS: Final = ("40305", "40315", "40318", "40320")
FINAL_FAILURES: Final = ("delivery_failed", "sending_failed", "expired")
REGIONS: Final = {
    "GB": ("+447400", 6),
    "US": ("+1415555", 4),
    "FR": ("+33612", 6),
    "DE": ("+49151", 8),
}


class Kind(enum.StrEnum):
    """What a flow does, and so how its verification must end."""

    APPROVE = "approve"  # resends, wrong codes, then a right one: approved
    EXHAUST = "exhaust"  # every attempt wrong: max_attempts_reached
    CANCEL = "cancel"  # canceled
    IDLE = "idle"  # left alone: pending
    REFUSED_FIRST = "refused_first"  # Telnyx refuses the first sender: the second, at once
    FALLBACK = "fallback"  # the first SMS fails after acceptance: the worker re-sends
    DOOMED = "doomed"  # every sender's SMS fails: failed
    SILENT = "silent"  # no receipt in time: the worker re-sends; half approved at the end
    EXPIRE = "expire"  # left past its 10 s TTL: expired


WEIGHTS: Final = {
    Kind.APPROVE: 30,
    Kind.EXHAUST: 12,
    Kind.CANCEL: 12,
    Kind.IDLE: 6,
    Kind.REFUSED_FIRST: 8,
    Kind.FALLBACK: 14,
    Kind.DOOMED: 6,
    Kind.SILENT: 4,
    Kind.EXPIRE: 8,
}
LATE: Final = frozenset({Kind.SILENT, Kind.EXPIRE})
"""Kinds that wait 10 s in the service: they start in the first half of the run."""


class Mismatch(Exception):
    """An answer the flow's model did not expect."""


@dataclass
class Tenant:
    """A tenant of the run and its API key."""

    id: str
    key: str


@dataclass
class Flow:
    """One flow, and what its history implies about its verification."""

    index: int
    kind: Kind
    tenant: Tenant
    number: str
    region: str
    code_length: int = 6
    verification_id: str | None = None
    status: str = "pending"
    send_count: int = 0
    attempts: int = 0
    sms: int = 0
    """SMS the simulator must have accepted for the flow's number."""
    messages: int = 0
    """Send attempts listed in the verification, refused ones included."""
    broken: bool = False
    """An answer differed from the model: the flow is reported and its end not judged."""

    def senders(self) -> list[str]:
        """The sender types of the number's chain, in order."""
        chains = CHAINS["senders"]
        return [sender["type"] for sender in chains.get(self.region, chains["default"])]


@dataclass
class EventSink:
    """The tenants' event endpoint: checks each signature and keeps each event id once."""

    verify_key: VerifyKey | None = None
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: int = 0
    bad_signatures: int = 0

    def app(self) -> Litestar:
        @post("/events", status_code=200)
        async def take(request: Request[Any, Any, Any]) -> Response[str]:
            body = await request.body()
            self.deliveries += 1
            signed = request.headers.get("otp-timestamp", "").encode() + b"|" + body
            signature = base64.b64decode(request.headers.get("otp-signature-ed25519", ""))
            if self.verify_key is None:
                return Response("not ready", status_code=503)
            try:
                self.verify_key.verify(signed, signature)
            except (BadSignatureError, ValueError):
                self.bad_signatures += 1
                return Response("bad signature", status_code=401)
            event = json.loads(body)
            self.events.setdefault(event["id"], event)
            return Response("ok")

        return Litestar([take], logging_config=None)

    def by_verification(self) -> dict[str, list[dict[str, Any]]]:
        """The distinct events, by the verification they are about."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for event in list(self.events.values()):
            grouped.setdefault(event["data"]["id"], []).append(event)
        return grouped


class WebhookFailures(logging.Handler):
    """Keeps the simulator's failed receipt attempts (it logs each at INFO, then retries)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class Rig:
    """The running parts: Redis, simulator, event receiver and the service process."""

    redis_url: str
    sim_url: str
    sink: EventSink
    sink_url: str
    url: str
    log: Path
    webhook_failures: WebhookFailures


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A private Redis, simulator and receiver, and ``otp-service serve`` wired to them."""
    seed = os.urandom(32)
    public = base64.b64encode(bytes(SigningKey(seed).verify_key)).decode()
    sink = EventSink()
    simulator = create_simulator_app(SimulatorConfig(signing_seed=seed, api_key=TELNYX_KEY))
    webhook_log = logging.getLogger("otp_service.simulator.webhooks")
    failures = WebhookFailures()
    level = webhook_log.level
    webhook_log.setLevel(logging.INFO)
    webhook_log.addHandler(failures)
    try:
        with PrivateRedis() as redis, serve(simulator) as sim_url, serve(sink.app()) as sink_url:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = (
                os.environ
                | service_environ(redis.url, Simulator(url=sim_url, public_key=public, seed=seed))
                | {
                    "OTP_PUBLIC_URL": url,
                    "OTP_ARGON2_TIME_COST": "1",
                    "OTP_ARGON2_MEMORY_KIB": "1024",
                    "OTP_TELNYX_TIMEOUT_SECONDS": "5",
                    "OTP_LOG_LEVEL": "WARNING",
                }
            )
            log = tmp_path / "service.log"
            with running(["serve", "--port", str(port)], env, log):
                wait_for(f"{url}/health/ready")
                yield Rig(redis.url, sim_url, sink, f"{sink_url}/events", url, log, failures)
    finally:
        webhook_log.removeHandler(failures)
        webhook_log.setLevel(level)


def numbers(rng: random.Random, count: int) -> Iterator[tuple[str, str]]:
    """``count`` distinct valid mobile numbers with their region, drawn from ``rng``."""
    seen: set[str] = set()
    regions = sorted(REGIONS)
    while len(seen) < count:
        region = rng.choice(regions)
        prefix, digits = REGIONS[region]
        candidate = prefix + "".join(str(rng.randrange(10)) for _ in range(digits))
        if candidate in seen or not phonenumbers.is_valid_number(
            phonenumbers.parse(candidate, None)
        ):
            continue
        seen.add(candidate)
        yield candidate, region


def plan(main: list[Tenant], silent: Tenant, short: Tenant) -> list[Flow]:
    """The run's flows in the order they start, the same for every run."""
    rng = random.Random(SEED)  # noqa: S311  (test data, not secrets)
    kinds = list(WEIGHTS)
    total = sum(WEIGHTS.values())
    chosen = [kind for kind in kinds for _ in range(FLOWS * WEIGHTS[kind] // total)]
    chosen += rng.choices(kinds, weights=list(WEIGHTS.values()), k=FLOWS - len(chosen))
    # Flows that wait 10 s in the service start in the first half, so the run does not
    # end waiting for them.
    keyed = [(rng.random() * (0.5 if kind in LATE else 1.0), kind) for kind in chosen]
    keyed.sort(key=lambda pair: pair[0])
    flows = []
    for index, ((_, kind), (number, region)) in enumerate(
        zip(keyed, numbers(rng, FLOWS), strict=True)
    ):
        tenant = silent if kind is Kind.SILENT else short if kind is Kind.EXPIRE else None
        if tenant is None:
            tenant = ([*main, silent])[index % (len(main) + 1)]
        flows.append(Flow(index=index, kind=kind, tenant=tenant, number=number, region=region))
    return flows


@dataclass
class Tally:
    """What every lane saw: requests made, 5xx answers, answers the model did not expect."""

    requests: int = 0
    server_errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


class Lane:
    """Runs flows one after another, with clients of its own.

    One connection per client: httpx's pool looks at every connection it holds on each
    request, which with one shared pool of ``CONCURRENCY`` connections cost the test more
    CPU than the requests themselves.
    """

    def __init__(self, tally: Tally, api: httpx.AsyncClient, sim: httpx.AsyncClient) -> None:
        self.tally = tally
        self.api = api
        self.sim = sim

    async def call(
        self,
        method: str,
        path: str,
        tenant: Tenant,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request to the tenant API; every 5xx is kept."""
        self.tally.requests += 1
        response = await self.api.request(
            method,
            path,
            json=body,
            headers=bearer(tenant) | (headers or {}),
        )
        if response.status_code >= 500:
            self.tally.server_errors.append(
                f"{method} {path} -> {response.status_code} {response.text[:300]}"
            )
        return response

    async def inbox(self, number: str) -> list[dict[str, Any]]:
        """What the simulator accepted for ``number``, oldest first."""
        response = await self.sim.get("/_sim/messages", params={"to": number})
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()
        return messages

    async def script(self, number: str, **behaviour: object) -> None:
        """Script the simulator's answer to sends to ``number``."""
        response = await self.sim.post("/_sim/behaviours", json={"to": number, **behaviour})
        response.raise_for_status()

    async def run(self, flow: Flow, *, finish_by: float | None = None) -> None:
        """Run a flow's first part, or with ``finish_by`` its end (a fallback's wait).

        An unexpected answer is recorded and ends the flow.
        """
        if flow.broken:
            return
        rng = random.Random(f"{SEED}:{flow.index}:{finish_by is None}")  # noqa: S311  (test data)
        try:
            if finish_by is None:
                await self._run(flow, rng)
            else:
                await self._finish(flow, rng, finish_by)
        except (Mismatch, httpx.HTTPError) as exc:
            flow.broken = True
            self.tally.mismatches.append(f"flow {flow.index} ({flow.kind}, {flow.number}): {exc!r}")

    async def _script(self, flow: Flow, rng: random.Random) -> None:
        """Script the simulator for the flow's kind: refusals, failures, silence."""
        senders = flow.senders()
        if flow.kind is Kind.REFUSED_FIRST:
            refusal: dict[str, object] = {"error_code": rng.choice(NEXT_SENDER_REFUSALS)}
            if rng.random() < 0.25:
                refusal = {"error_code": "10000", "http_status": 500}
            await self.script(
                flow.number, action="reject", sender_type=senders[0], times=1, **refusal
            )
        elif flow.kind in {Kind.FALLBACK, Kind.DOOMED}:
            for sender in senders if flow.kind is Kind.DOOMED else senders[:1]:
                await self.script(
                    flow.number,
                    action="fail",
                    sender_type=sender,
                    error_code=rng.choice(NEXT_SENDER_FAILURES),
                    final_status=rng.choice(FINAL_FAILURES),
                )
        elif flow.kind is Kind.SILENT:
            await self.script(flow.number, action="silent", sender_type=senders[0], times=1)

    async def _run(self, flow: Flow, rng: random.Random) -> None:
        await self._script(flow, rng)
        began = time.monotonic()
        await self._start(flow, rng)
        match flow.kind:
            case Kind.APPROVE | Kind.EXHAUST | Kind.CANCEL | Kind.IDLE:
                await self._use(flow, rng)
            case Kind.REFUSED_FIRST:
                await self._approve(flow, rng, await self._codes(flow))
            case Kind.DOOMED:
                flow.status = "failed"
            case Kind.EXPIRE:
                # A resend and a wrong code, each only while the expiry is surely ahead.
                if rng.random() < 0.5 and time.monotonic() - began < SHORT_SECONDS / 2:
                    await self._resend(flow)
                if rng.random() < 0.5 and time.monotonic() - began < SHORT_SECONDS / 2:
                    await self._wrong(flow, rng, await self._codes(flow))
                flow.status = "expired"
            case Kind.FALLBACK | Kind.SILENT:
                pass  # the worker re-sends; _finish waits for it at the end of the run

    async def _use(self, flow: Flow, rng: random.Random) -> None:
        """Resends, malformed and wrong codes, then the flow's end: approve, exhaust, cancel."""
        for _ in range(rng.choice((0, 0, 1, 2))):
            await self._resend(flow)
        if flow.kind is Kind.APPROVE and rng.random() < 0.1:
            while flow.send_count < MAX_SENDS:
                await self._resend(flow)
            limited = await self._post_start(flow, {"phone_number": flow.number})
            self._expect(limited, 429, code="rate_limited", limit="max_sends")
        codes = await self._codes(flow)
        if rng.random() < 0.1:
            answer = await self._check(flow, rng, "1" * (flow.code_length + 1))
            self._expect(answer, 422, code="invalid_code_format")
        wrong = MAX_ATTEMPTS if flow.kind is Kind.EXHAUST else rng.randrange(MAX_ATTEMPTS)
        for _ in range(wrong):
            await self._wrong(flow, rng, codes)
        match flow.kind:
            case Kind.APPROVE:
                await self._approve(flow, rng, codes)
            case Kind.EXHAUST if rng.random() < 0.5:
                late = await self._check(flow, rng, rng.choice(codes), by_id=True)
                self._expect(late, 409, verification_status="max_attempts_reached")
            case Kind.CANCEL:
                path = f"/v1/verifications/{flow.verification_id}/cancel"
                canceled = await self.call("POST", path, flow.tenant)
                self._expect(canceled, 200, status="canceled")
                flow.status = "canceled"
                if rng.random() < 0.3:
                    again = await self.call("POST", path, flow.tenant)
                    self._expect(again, 409, verification_status="canceled")
            case _:
                pass

    async def _post_start(self, flow: Flow, body: dict[str, Any]) -> httpx.Response:
        return await self.call("POST", "/v1/verifications", flow.tenant, body)

    async def _start(self, flow: Flow, rng: random.Random) -> None:
        body: dict[str, Any] = {"phone_number": flow.number}
        if rng.random() < 0.2:
            flow.code_length = rng.choice((4, 8))
            body["code_length"] = flow.code_length
        idempotency = {"Idempotency-Key": f"load-{flow.index}"} if rng.random() < 0.2 else None
        response = await self.call("POST", "/v1/verifications", flow.tenant, body, idempotency)
        answer = response.json()
        flow.verification_id = answer.get("id") or answer.get("verification_id")
        started = self._expect(response, 201, status="pending", send_count=1)
        flow.send_count = flow.sms = 1
        flow.messages = 2 if flow.kind is Kind.REFUSED_FIRST else 1
        kept = [message["id"] is not None for message in started["messages"]]
        if kept != ([False, True] if flow.kind is Kind.REFUSED_FIRST else [True]):
            raise Mismatch(f"start recorded {started['messages']}")
        if idempotency is not None:
            replay = await self.call("POST", "/v1/verifications", flow.tenant, body, idempotency)
            self._expect(replay, 201, id=flow.verification_id)
        if flow.kind in {Kind.FALLBACK, Kind.DOOMED, Kind.SILENT}:
            flow.sms = flow.messages = 2  # the worker's fallback follows

    async def _resend(self, flow: Flow) -> None:
        response = await self._post_start(flow, {"phone_number": flow.number})
        flow.send_count += 1
        flow.sms += 1
        flow.messages += 1
        self._expect(response, 200, id=flow.verification_id, send_count=flow.send_count)

    async def _codes(self, flow: Flow) -> list[str]:
        sent = await self.inbox(flow.number)
        if len(sent) != flow.send_count:
            raise Mismatch(f"{len(sent)} SMS for {flow.send_count} sends")
        return [text_code(message) for message in sent]

    async def _check(
        self, flow: Flow, rng: random.Random, code: str, *, by_id: bool = False
    ) -> httpx.Response:
        """Check a code, by the verification's id or (a pending one only) by its number."""
        if not by_id and rng.random() < 0.25:
            body = {"phone_number": flow.number, "code": code}
            return await self.call("POST", "/v1/verifications/check", flow.tenant, body)
        path = f"/v1/verifications/{flow.verification_id}/check"
        return await self.call("POST", path, flow.tenant, {"code": code})

    async def _wrong(self, flow: Flow, rng: random.Random, codes: list[str]) -> None:
        code = next(
            guess
            for guess in (
                "".join(str(rng.randrange(10)) for _ in range(flow.code_length)) for _ in range(100)
            )
            if guess not in codes
        )
        answer = await self._check(flow, rng, code)
        flow.attempts += 1
        ended = flow.attempts == MAX_ATTEMPTS
        if ended:
            flow.status = "max_attempts_reached"
        self._expect(
            answer,
            200,
            valid=False,
            status="max_attempts_reached" if ended else "pending",
            check_attempts_remaining=MAX_ATTEMPTS - flow.attempts,
        )

    async def _approve(self, flow: Flow, rng: random.Random, codes: list[str]) -> None:
        answer = await self._check(flow, rng, rng.choice(codes))
        flow.attempts += 1
        flow.status = "approved"
        self._expect(answer, 200, valid=True, status="approved", id=flow.verification_id)
        if rng.random() < 0.5:
            again = await self._check(flow, rng, rng.choice(codes), by_id=True)
            self._expect(again, 409, verification_status="approved")

    async def _finish(self, flow: Flow, rng: random.Random, finish_by: float) -> None:
        """Wait for the worker's fallback SMS, through the chain's second sender; approve.

        A failed first SMS is always approved after (with either code, both are valid); a
        silent one every other time, with the fallback's code (the other stays pending).
        """
        while len(sent := await self.inbox(flow.number)) < len(flow.senders()):
            if time.monotonic() > finish_by:
                raise Mismatch(f"no fallback SMS by the end of the run: {sent}")
            await asyncio.sleep(0.25)
        if [message["sender_type"] for message in sent] != flow.senders():
            raise Mismatch(f"sent through the wrong senders: {sent}")
        if flow.kind is Kind.FALLBACK:
            await self._approve(flow, rng, [text_code(message) for message in sent])
        elif flow.index % 2 == 0:
            await self._approve(flow, rng, [text_code(sent[1])])

    @staticmethod
    def _expect(response: httpx.Response, status: int, /, **fields: object) -> dict[str, Any]:
        if response.status_code != status:
            raise Mismatch(
                f"expected {status} {fields}, got {response.status_code} {response.text}"
            )
        body: dict[str, Any] = response.json()
        for name, value in fields.items():
            if body.get(name) != value:
                raise Mismatch(f"expected {name}={value!r}, got {body}")
        return body


def text_code(message: dict[str, Any]) -> str:
    """The code in an SMS the simulator accepted."""
    code: str = message["text"].split(" ", 1)[0]
    return code


def expected_events(flow: Flow) -> Counter[str]:
    """The lifecycle events (not ``message.status``) its verification must have produced."""
    wanted = Counter({"verification.created": 1})
    if flow.status in TERMINAL:
        wanted[TERMINAL[flow.status]] = 1
    return wanted


def lifecycle(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["type"] for e in events if e["type"] != "message.status")


async def outbox_events(redis: Redis, tenants: list[Tenant]) -> int:
    """Event jobs still in the tenants' outboxes (queued or in a worker's hands)."""
    total = 0
    for tenant in tenants:
        _, _, jobs = outbox(tenant.id)
        members: list[Any] = await redis.hkeys(jobs)
        total += sum(1 for member in members if str(member).startswith("ev:"))
    return total


def receipts_sent(accepted: list[dict[str, Any]]) -> int:
    """Receipts the simulator posts for what it accepted: sent and finalized, or less."""
    per_status = {"queued": 0, "sending_failed": 1}
    return sum(per_status.get(message["status"], 2) for message in accepted)


async def service_counts(api: httpx.AsyncClient) -> tuple[dict[str, int], int]:
    """From the service's metrics: 5xx answers by route (webhooks included), and receipts."""
    errors: Counter[str] = Counter()
    receipts = 0
    for family in text_string_to_metric_families((await api.get("/metrics")).text):
        for sample in family.samples:
            if sample.name != "http_requests_total":
                continue
            if sample.labels["status"].startswith("5"):
                errors[sample.labels["route"]] += int(sample.value)
            if sample.labels["route"] == "/webhooks/telnyx":
                receipts += int(sample.value)
    return dict(errors), receipts


async def drain(rig: Rig, flows: list[Flow], tenants: list[Tenant]) -> float:
    """Wait (bounded) until every receipt was taken, every expected event arrived and no
    event job is left; return how long that took."""
    began = time.monotonic()
    redis = Redis.from_url(rig.redis_url, decode_responses=True)
    async with (
        httpx.AsyncClient(base_url=rig.url, timeout=30) as api,
        httpx.AsyncClient(base_url=rig.sim_url, timeout=30) as sim,
    ):
        while time.monotonic() - began < DRAIN_SECONDS:
            received = rig.sink.by_verification()
            if (
                all(
                    lifecycle(received.get(flow.verification_id or "", [])) >= expected_events(flow)
                    for flow in flows
                    if not flow.broken
                )
                and await outbox_events(redis, tenants) == 0
                and (await service_counts(api))[1]
                >= receipts_sent((await sim.get("/_sim/messages")).json())
            ):
                break
            await asyncio.sleep(0.5)
    await redis.aclose()
    return time.monotonic() - began


def bearer(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.key}"}


async def make_tenant(admin: httpx.AsyncClient, events_url: str, **settings: Any) -> Tenant:
    body = {
        "name": "Load",
        "settings": CHAINS
        | {
            "brand": "Acme",
            "resend_cooldown_seconds": 0,
            "max_check_attempts": MAX_ATTEMPTS,
            "max_sends": MAX_SENDS,
            "events_webhook_url": events_url,
            # Abuse protection stays on, sized as a tenant of this volume would size it:
            # every flow goes to one GB range, far faster than the defaults expect of one.
            "limits": {"tenant": {"max": 100_000, "interval_seconds": 60}},
            "fraud": {"velocity_floors": [1_000_000] * 5},
        }
        | settings,
    }
    created = await admin.post("/admin/tenants", json=body)
    assert created.status_code == 201, created.text
    tenant_id = created.json()["id"]
    issued = await admin.post(f"/admin/tenants/{tenant_id}/api-keys")
    assert issued.status_code == 201, issued.text
    return Tenant(tenant_id, issued.json()["key"])


async def run_flows(rig: Rig, flows: list[Flow], tally: Tally) -> None:
    """Run the flows, ``CONCURRENCY`` at a time, then finish those that wait for fallbacks."""
    queue = iter(flows)
    waiting = iter([flow for flow in flows if flow.kind in {Kind.FALLBACK, Kind.SILENT}])
    finish_by: list[float] = []

    async def lane() -> None:
        # Idle connections are dropped before uvicorn's 5 s keep-alive ends: a request sent
        # on one the server is closing fails without an answer (httpx's default is also 5 s).
        limits = httpx.Limits(keepalive_expiry=2)
        async with (
            httpx.AsyncClient(base_url=rig.url, limits=limits, timeout=30) as api,
            httpx.AsyncClient(base_url=rig.sim_url, limits=limits, timeout=30) as sim,
        ):
            driver = Lane(tally, api, sim)
            for flow in queue:
                await driver.run(flow)
            finish_by.append(finish_by[0] if finish_by else time.monotonic() + FINISH_SECONDS)
            for flow in waiting:
                await driver.run(flow, finish_by=finish_by[0])

    async with asyncio.timeout(RUN_LIMIT_SECONDS):
        await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))


async def read_back(rig: Rig, flows: list[Flow]) -> list[dict[str, Any]]:
    """Every flow's verification as the service holds it, in the flows' order."""
    stored: dict[int, dict[str, Any]] = {}
    queue = iter(flows)

    async def reader() -> None:
        async with httpx.AsyncClient(base_url=rig.url, timeout=30) as api:
            for flow in queue:
                path = f"/v1/verifications/{flow.verification_id}"
                stored[flow.index] = (await api.get(path, headers=bearer(flow.tenant))).json()

    await asyncio.gather(*(reader() for _ in range(8)))
    return [stored[flow.index] for flow in flows]


def compare(
    flows: list[Flow],
    stored: list[dict[str, Any]],
    accepted: list[dict[str, Any]],
    received: dict[str, list[dict[str, Any]]],
) -> tuple[list[str], list[str]]:
    """Flows whose verification, and flows whose events, differ from what the model says.

    The verification: status, sends, attempts, send attempts listed, and the SMS the
    simulator accepted for the number, each with the status its receipts gave it.
    The events: one created (pending) and the terminal one of the final status.
    """
    inboxes: dict[str, list[tuple[str, str]]] = {}
    for message in accepted:
        inboxes.setdefault(message["to"], []).append((message["id"], message["status"]))
    wrong_state = []
    wrong_events = []
    for flow, verification in zip(flows, stored, strict=True):
        if flow.broken:
            continue
        messages = verification["messages"]
        recorded = [(m["id"], m["status"]) for m in messages if m["id"] is not None]
        seen = (
            verification["status"],
            verification["send_count"],
            verification["check_attempts"],
            len(messages),
            len(recorded),
        )
        wanted = (flow.status, flow.send_count, flow.attempts, flow.messages, flow.sms)
        if seen != wanted or recorded != inboxes.get(flow.number, []):
            wrong_state.append(
                f"flow {flow.index} ({flow.kind}): {seen} != {wanted}, "
                f"{recorded} != {inboxes.get(flow.number)}"
            )
        events = received.get(flow.verification_id or "", [])
        statuses = {e["type"]: e["data"]["status"] for e in events if e["type"] != "message.status"}
        terminal = TERMINAL.get(flow.status)
        if lifecycle(events) != expected_events(flow) or statuses != {
            "verification.created": "pending",
            **({terminal: flow.status} if terminal else {}),
        }:
            wrong_events.append(f"flow {flow.index} ({flow.kind}, {flow.status}): {events}")
    return wrong_state, wrong_events


def fallback_delays(flows: list[Flow], accepted: list[dict[str, Any]]) -> str:
    """How long after a failed SMS its fallback went out: median and slowest."""
    sent: dict[str, list[datetime]] = {}
    for message in accepted:
        sent.setdefault(message["to"], []).append(datetime.fromisoformat(message["received_at"]))
    delays = sorted(
        (sent[flow.number][1] - sent[flow.number][0]).total_seconds()
        for flow in flows
        if flow.kind in {Kind.FALLBACK, Kind.DOOMED} and len(sent.get(flow.number, [])) == 2
    )
    if not delays:
        return "(none)"
    return f"median {delays[len(delays) // 2]:.1f} s, slowest {delays[-1]:.1f} s"


async def test_mixed_flows_at_the_limit_lose_nothing(rig: Rig) -> None:
    """Every verification ends as its history implies; every event, SMS and receipt counts."""
    tally = Tally()
    admin_headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        httpx.AsyncClient(base_url=rig.url, headers=admin_headers, timeout=30) as admin,
        httpx.AsyncClient(base_url=rig.url, timeout=30) as api,
        httpx.AsyncClient(base_url=rig.sim_url, timeout=30) as sim,
    ):
        main = [await make_tenant(admin, rig.sink_url) for _ in range(MAIN_TENANTS)]
        silent = await make_tenant(admin, rig.sink_url, delivery_timeout_seconds=SHORT_SECONDS)
        short = await make_tenant(admin, rig.sink_url, code_ttl_seconds=SHORT_SECONDS)
        key = (await api.get("/v1/webhook-public-key", headers=bearer(short))).json()
        rig.sink.verify_key = VerifyKey(base64.b64decode(key["public_key"]))
        flows = plan(main, silent, short)

        began = time.monotonic()
        await run_flows(rig, flows, tally)
        ran = time.monotonic() - began
        drained = await drain(rig, flows, [*main, silent, short])

        started = [flow for flow in flows if flow.verification_id is not None]
        stored = await read_back(rig, started)
        accepted = (await sim.get("/_sim/messages")).json()
        service_5xx, receipts = await service_counts(api)

    wrong_state, wrong_events = compare(started, stored, accepted, rig.sink.by_verification())
    unique = len(rig.sink.events)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(Counter(f.kind.value for f in flows).items()))
    print(  # noqa: T201  (the figures the README quotes, shown with -s)
        f"\nload: {len(flows)} flows ({kinds}), {CONCURRENCY} in flight: {ran:.1f} s "
        f"(+{drained:.1f} s to drain); {tally.requests} API requests, {receipts} receipts "
        f"({len(rig.webhook_failures.lines)} retried), {unique} events "
        f"({rig.sink.deliveries - unique} redelivered), {len(accepted)} SMS; "
        f"5xx={len(tally.server_errors) + sum(service_5xx.values())}; "
        f"fallback SMS {fallback_delays(flows, accepted)} after the failed one"
    )
    problems = {
        "unexpected answers": tally.mismatches,
        "5xx answers": tally.server_errors,
        "5xx answers counted by the service": [str(service_5xx)] if service_5xx else [],
        "receipts never taken": (
            [f"{receipts} taken < {receipts_sent(accepted)} sent"]
            if receipts < receipts_sent(accepted)
            else []
        ),
        "verifications not as their history implies": wrong_state,
        "verifications whose events differ": wrong_events,
        "events about no verification of the run": sorted(
            set(rig.sink.by_verification()) - {flow.verification_id for flow in flows}
        ),
        "events with a bad signature": ["some"] if rig.sink.bad_signatures else [],
    }
    report = [f"{name} ({len(found)}): {found[:5]}" for name, found in problems.items() if found]
    assert not report, "\n".join(report)
    # Every SMS the simulator accepted is one the service recorded, and the reverse.
    assert len(accepted) == sum(flow.sms for flow in started)
    assert {m["id"] for v in stored for m in v["messages"] if m["id"]} == {
        message["id"] for message in accepted
    }
    log = rig.log.read_text()
    assert "Traceback" not in log
    assert " ERROR " not in log
