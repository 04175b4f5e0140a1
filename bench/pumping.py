"""SMS pumping simulation: does the fraud guard stop every attack, and only attacks?

A day of traffic runs through the real start and check use cases (``runtime.use_cases_over``:
the start script with its limits and the fraud guard's counters, the detector of
``core/fraud.py``, the block it writes) over a private Redis, on a virtual clock that jumps
from one event to the next, so a day takes a minute or two. Telnyx is a stand-in that
answers sends like Telnyx does and keeps each SMS, so that a legitimate user can read the
code and type it. Everything else, argon2 included (with the cheapest parameters), is the
service's own code with its default settings.

The traffic (``generate``, pure and seeded):

- 10,000 legitimate flows. Most belong to an established tenant, spread over 504 real
  mobile ranges (country code plus 4 national digits, found in libphonenumber's metadata;
  every number is valid) in 14 countries, each country following a daily curve in its own
  time zone (busiest at 16:00 local, quietest at 04:00, a fifth of the peak). Ranges differ
  in size (Zipf-like: the busiest of a country takes about a tenth of its traffic, which is
  more concentrated than real numbering plans, where a country's users are spread over
  hundreds of 4-digit ranges) and in conversion, 60-90%: a converting user types the code
  4 s to 2.5 min after the SMS (one in twenty mistypes it first); the others never check.
  Germany has a legitimate surge: five times its usual rate for an hour (a TV
  advertisement at 19:00 local). A second tenant is created at 17:00 UTC with no history
  and launches: 600 sign-ups in Spain and Mexico in its first hour, most in the first
  minutes.
- Attacks, whose numbers never check a code: a narrow range (one prefix of 6 national
  digits) and a range spread evenly over the sub-ranges of a 4-digit prefix, at fast (2-5
  per second), medium (one per 10-20 s) and slow (one per 1-2 min) rates, one of them
  inside a range legitimate users live in, two against the new tenant in its first hour.
  Attackers rotate their IP (the ``ip`` rate-limit key) on every request, as pumping bots
  on residential proxies do, so that the asker-keyed limits never see them and what stops
  them is the fraud guard alone. They keep trying after they are refused.

Legitimate users each ask from their own IP. The spread attacks work 4-digit ranges no
legitimate user of the tenant lives in: a block of a whole range refuses everybody in it,
which is the point of blocking it; the narrow attack inside a legitimate range measures
that the guard blocks no wider than the attack.

Every time the scripts compare is the service's clock (the virtual one here): a block ends
at its ``expires_at``, whatever Redis's own expiry of its key, so attacks that go on meet
the guard again after a block, as they would in production.

Targets (issue 8): every attack blocked within 30 SMS (the SMS an attack got sent before
its first 429 with ``limit: "prefix"``), no legitimate flow refused (any error or 429 on a
legitimate start or check, or a right code not accepted). The exit status is 1 when one is
missed.

    .venv/bin/python bench/pumping.py [--seed 8] [--legit-flows 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import logging
import math
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import httpx
import msgspec
import phonenumbers
from phonenumbers import PhoneNumberType
from redis.asyncio import Redis

from otp_service.adapters import redis_keys as keys
from otp_service.adapters.redis_client import open_redis
from otp_service.adapters.telnyx import ENDPOINTS, TelnyxClient
from otp_service.core.fraud import Block
from otp_service.core.hashing import Argon2Parameters, CodeHasher
from otp_service.core.model import Tenant, TenantSettings
from otp_service.devredis import PrivateRedis
from otp_service.errors import OtpError, RateLimited
from otp_service.hashing_pool import HashingPool
from otp_service.metrics import Metrics
from otp_service.runtime import tenants_over, use_cases_over
from otp_service.settings import load_settings
from otp_service.usecases.verifications import StartRequest, Verifications

SECOND: Final = 1000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

MAX_SMS_BEFORE_BLOCK: Final = 30
MAIN, NEW = "main", "new"

# ---------------------------------------------------------------------------------------
# The traffic model (pure: a seeded random.Random and libphonenumber's metadata)


@dataclass(frozen=True)
class Country:
    """A destination country of the established tenant: its share, time zone and ranges."""

    region: str
    weight: float
    utc_offset_hours: float
    ranges: int


COUNTRIES: Final = (
    Country("GB", 14, 0, 70),
    Country("DE", 12, 1, 60),
    Country("FR", 10, 1, 50),
    Country("BR", 10, -3, 50),
    Country("IN", 10, 5.5, 50),
    Country("ES", 8, 1, 40),
    Country("IT", 8, 1, 40),
    Country("MX", 6, -6, 30),
    Country("NL", 5, 1, 25),
    Country("PL", 5, 1, 25),
    Country("SE", 4, 1, 20),
    Country("ID", 4, 7, 20),
    Country("PH", 2, 8, 12),
    Country("TR", 2, 3, 12),
)

SURGE_REGION: Final = "DE"
SURGE_START: Final = 18 * HOUR
SURGE_FACTOR: Final = 5
NEW_TENANT_AT: Final = 17 * HOUR
NEW_TENANT_FLOWS: Final = 600
NEW_TENANT_REGIONS: Final = ("ES", "MX")
NEW_TENANT_SHARES: Final = (0.6, 0.4)
MISTYPED: Final = 0.05
MOBILE_TYPES: Final = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


@dataclass(frozen=True, kw_only=True)
class AttackSpec:
    """An attack as the model describes it; ``generate`` picks its range and numbers."""

    name: str
    tenant: str
    region: str
    spread: bool
    """Over the sub-ranges of a 4-digit prefix; else one prefix of 6 national digits."""
    in_legitimate_range: bool = False
    start: int
    duration: int
    interval: tuple[int, int]
    rate: str


ATTACKS: Final = (
    AttackSpec(
        name="narrow fast, in a live range",
        tenant=MAIN,
        region="GB",
        spread=False,
        in_legitimate_range=True,
        start=9 * HOUR + 10 * MINUTE,
        duration=20 * MINUTE,
        interval=(250, 420),
        rate="3/s",
    ),
    AttackSpec(
        name="narrow slow",
        tenant=MAIN,
        region="NG",
        spread=False,
        start=2 * HOUR,
        duration=4 * HOUR,
        interval=(60 * SECOND, 120 * SECOND),
        rate="1 per 1-2 min",
    ),
    AttackSpec(
        name="spread fast",
        tenant=MAIN,
        region="ID",
        spread=True,
        start=15 * HOUR + 30 * MINUTE,
        duration=5 * MINUTE,
        interval=(150, 250),
        rate="5/s",
    ),
    AttackSpec(
        name="spread medium",
        tenant=MAIN,
        region="PH",
        spread=True,
        start=11 * HOUR,
        duration=HOUR,
        interval=(10 * SECOND, 20 * SECOND),
        rate="1 per 10-20 s",
    ),
    AttackSpec(
        name="spread slow",
        tenant=MAIN,
        region="FR",
        spread=True,
        start=20 * HOUR,
        duration=4 * HOUR,
        interval=(60 * SECOND, 120 * SECOND),
        rate="1 per 1-2 min",
    ),
    AttackSpec(
        name="new tenant: spread fast",
        tenant=NEW,
        region="MX",
        spread=True,
        start=NEW_TENANT_AT + 8 * MINUTE,
        duration=10 * MINUTE,
        interval=(400, 600),
        rate="2/s",
    ),
    AttackSpec(
        name="new tenant: narrow slow",
        tenant=NEW,
        region="KE",
        spread=False,
        start=NEW_TENANT_AT + 3 * MINUTE,
        duration=HOUR,
        interval=(60 * SECOND, 120 * SECOND),
        rate="1 per 1-2 min",
    ),
)


@dataclass(frozen=True)
class Range:
    """A mobile number range (``+`` country code and 4 national digits) and its conversion."""

    prefix: str
    region: str
    conversion: float


@dataclass(frozen=True)
class Flow:
    """A legitimate user: a start, then the codes typed (when, right?); none if not converting."""

    tenant: str
    number: str
    range: str
    at: int
    checks: tuple[tuple[int, bool], ...]
    surge: bool = False


@dataclass(frozen=True)
class Attack:
    """An attack with its target: one prefix, or the sub-ranges it is spread over."""

    spec: AttackSpec
    target: str
    sub_ranges: tuple[str, ...]
    numbers: tuple[tuple[int, str], ...]
    """When each start is asked, and for which number."""


@dataclass(frozen=True, order=True)
class Event:
    """One request, at ``at`` ms after the simulated day's start.

    ``kind`` is ``start`` or ``check`` of flow ``index``, or ``attack`` (a start of attack
    ``index`` to ``number``); ``right`` says whether a check types the right code.
    """

    at: int
    order: int
    kind: str = field(compare=False)
    index: int = field(compare=False)
    number: str = field(compare=False, default="")
    right: bool = field(compare=False, default=True)


@dataclass(frozen=True)
class Traffic:
    """A day of traffic, its requests in time order."""

    ranges: tuple[Range, ...]
    flows: tuple[Flow, ...]
    attacks: tuple[Attack, ...]
    events: tuple[Event, ...]
    new_tenant_at: int


def activity(local_hour: float) -> float:
    """How busy a country is at a local hour, 1 at the peak (16:00), 0.2 at 04:00."""
    return 0.2 + 0.8 * (1 - math.cos(2 * math.pi * (local_hour - 4) / 24)) / 2


def _local_activity(country: Country, at: int) -> float:
    return activity((at / HOUR + country.utc_offset_hours) % 24)


def _share_of_day(country: Country, start: int, end: int) -> float:
    """The part of a country's day of traffic that falls between ``start`` and ``end``."""
    minutes = range(0, DAY, MINUTE)
    total = sum(_local_activity(country, at) for at in minutes)
    part = sum(_local_activity(country, at) for at in minutes if start <= at < end)
    return part / total


class Numbers:
    """Valid mobile numbers of given prefixes, each handed out once."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def mobile(self, region: str, prefix: str, *, tries: int = 400) -> str | None:
        """A valid mobile number starting with ``prefix`` (E.164) not handed out yet."""
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        lengths = metadata.mobile.possible_length if metadata and metadata.mobile else ()
        calling = f"+{phonenumbers.country_code_for_region(region)}"
        head = prefix.removeprefix(calling)
        for _ in range(tries):
            fill = self._rng.choice(lengths) - len(head) if lengths else 0
            if fill <= 0:
                return None
            candidate = prefix + "".join(str(self._rng.randrange(10)) for _ in range(fill))
            if candidate in self._used:
                continue
            parsed = phonenumbers.parse(candidate, None)
            if (
                phonenumbers.is_valid_number(parsed)
                and phonenumbers.number_type(parsed) in MOBILE_TYPES
            ):
                self._used.add(candidate)
                return candidate
        return None

    def take(self, region: str, prefix: str) -> str:
        """Like ``mobile``, for a prefix known to hold numbers."""
        number = self.mobile(region, prefix, tries=10_000)
        if number is None:
            raise LookupError(f"no valid mobile number left in {prefix}")
        return number

    def range_prefix(self, region: str, rng: random.Random) -> str:
        """A random real mobile range of a country: ``+`` country code and 4 national digits."""
        calling = f"+{phonenumbers.country_code_for_region(region)}"
        while True:
            number = self.mobile(region, calling + str(rng.randrange(1, 10)), tries=50)
            if number is not None:
                self._used.discard(number)
                return number[: len(calling) + 4]


def _ranges(rng: random.Random, numbers: Numbers) -> list[Range]:
    found: list[Range] = []
    for country in COUNTRIES:
        prefixes: set[str] = set()
        while len(prefixes) < country.ranges:
            prefixes.add(numbers.range_prefix(country.region, rng))
        found += [
            Range(prefix, country.region, round(rng.uniform(0.6, 0.9), 3))
            for prefix in sorted(prefixes)
        ]
    return found


def _checks(rng: random.Random, sent_at: int, conversion: float) -> tuple[tuple[int, bool], ...]:
    """When a user types the code (never, when they do not convert); a mistype first, at times."""
    if rng.random() >= conversion:
        return ()
    typed = sent_at + int(min(max(rng.lognormvariate(math.log(25), 0.8), 4), 150) * SECOND)
    if rng.random() < MISTYPED:
        return ((typed, False), (typed + rng.randrange(5 * SECOND, 20 * SECOND), True))
    return ((typed, True),)


class _Picker:
    """Ranges of a country drawn by size: a few busy ranges, many quiet ones (Zipf-like)."""

    def __init__(self, ranges: list[Range]) -> None:
        self.ranges = ranges
        weights = [1 / (rank + 1) ** 0.5 for rank in range(len(ranges))]
        self._cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]

    def pick(self, rng: random.Random) -> Range:
        point = rng.random() * self._cumulative[-1]
        return self.ranges[bisect.bisect_left(self._cumulative, point)]


def _legitimate(
    rng: random.Random, ranges: list[Range], numbers: Numbers, total: int
) -> list[Flow]:
    """The established tenant's day (with the surge) and the new tenant's first hour."""
    pickers: dict[str, _Picker] = {}
    for country in COUNTRIES:
        in_country = [item for item in ranges if item.region == country.region]
        rng.shuffle(in_country)
        pickers[country.region] = _Picker(in_country)
    surging = next(country for country in COUNTRIES if country.region == SURGE_REGION)
    new_flows = min(NEW_TENANT_FLOWS, total // 10)
    # The surge adds (factor - 1) times the country's usual hour: solve for the extra flows.
    usual = (
        surging.weight
        / sum(country.weight for country in COUNTRIES)
        * _share_of_day(surging, SURGE_START, SURGE_START + HOUR)
    )
    more = SURGE_FACTOR - 1
    extra = round(more * usual * (total - new_flows) / (1 + more * usual))

    def flow(tenant: str, region: str, at: int, *, surge: bool = False) -> Flow:
        where = pickers[region].pick(rng)
        number = numbers.take(region, where.prefix)
        return Flow(tenant, number, where.prefix, at, _checks(rng, at, where.conversion), surge)

    flows: list[Flow] = []
    weights = [country.weight for country in COUNTRIES]
    for _ in range(total - new_flows - extra):
        country = rng.choices(COUNTRIES, weights)[0]
        at = rng.randrange(DAY)
        while rng.random() >= _local_activity(country, at):
            at = rng.randrange(DAY)
        flows.append(flow(MAIN, country.region, at))
    flows += [
        flow(MAIN, SURGE_REGION, SURGE_START + rng.randrange(HOUR), surge=True)
        for _ in range(extra)
    ]
    for _ in range(new_flows):
        # A launch: most sign-ups in the first minutes after the announcement, then a tail.
        offset = int(rng.expovariate(1 / (12 * MINUTE))) if rng.random() < 0.7 else HOUR
        offset = offset if offset < HOUR else rng.randrange(HOUR)
        flows.append(
            flow(NEW, rng.choices(NEW_TENANT_REGIONS, NEW_TENANT_SHARES)[0], NEW_TENANT_AT + offset)
        )
    return flows


def _attack(
    spec: AttackSpec, rng: random.Random, legit: dict[str, str], numbers: Numbers
) -> Attack:
    """Pick the attack's range (real, valid numbers) and the numbers it asks codes for."""
    while True:
        four = (
            rng.choice(sorted(p for p, region in legit.items() if region == spec.region))
            if spec.in_legitimate_range
            else numbers.range_prefix(spec.region, rng)
        )
        if spec.in_legitimate_range or four not in legit:
            break
    if spec.spread:
        subs = tuple(
            four + str(digit)
            for digit in range(10)
            if numbers.mobile(spec.region, four + str(digit), tries=200) is not None
        )
        target = four
    else:
        while True:
            target = four + f"{rng.randrange(100):02d}"
            if numbers.mobile(spec.region, target, tries=200) is not None:
                break
        subs = (target,)
    asked: list[tuple[int, str]] = []
    at = spec.start
    while at < spec.start + spec.duration:
        asked.append((at, numbers.take(spec.region, rng.choice(subs))))
        at += rng.randrange(*spec.interval)
    return Attack(spec, target, subs, tuple(asked))


def generate(seed: int, legit_flows: int = 10_000) -> Traffic:
    """The day of traffic for a seed: legitimate flows and attacks, requests sorted by time."""
    rng = random.Random(seed)
    numbers = Numbers(rng)
    ranges = _ranges(rng, numbers)
    flows = _legitimate(rng, ranges, numbers, legit_flows)
    regions = {item.prefix: item.region for item in ranges}
    legit = {flow.range: regions[flow.range] for flow in flows}
    attacks = [_attack(spec, rng, legit, numbers) for spec in ATTACKS]
    events: list[Event] = []
    for index, flow in enumerate(flows):
        events.append(Event(flow.at, len(events), "start", index))
        events += [Event(at, len(events), "check", index, right=right) for at, right in flow.checks]
    for index, attack in enumerate(attacks):
        events += [Event(at, len(events), "attack", index, number) for at, number in attack.numbers]
    events.sort()
    return Traffic(tuple(ranges), tuple(flows), tuple(attacks), tuple(events), NEW_TENANT_AT)


# ---------------------------------------------------------------------------------------
# The run: the real use cases over a private Redis, on a virtual clock


class VirtualClock:
    """The service's clock, moved by the simulation from one event to the next."""

    def __init__(self, now: int) -> None:
        self.now = now

    def now_ms(self) -> int:
        """The simulated time."""
        return self.now


class TelnyxStandIn:
    """Answers sends like Telnyx does and keeps the last SMS to each number (the user's phone)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._paths = {f"/v2{path}" for path in ENDPOINTS.values()}
        self.inbox: dict[str, str] = {}
        self.sent = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Accept a send to one of the send endpoints (Telnyx's answer, the fields it gives)."""
        if request.method != "POST" or request.url.path not in self._paths:
            return httpx.Response(404, json={"errors": [{"code": "10005", "title": "Not found"}]})
        body = msgspec.json.decode(request.content, type=dict[str, str])
        self.inbox[body["to"]] = body["text"]
        self.sent += 1
        return httpx.Response(
            200,
            json={
                "data": {
                    "record_type": "message",
                    "direction": "outbound",
                    "id": f"40318d{self._rng.getrandbits(96):024x}",
                    "type": "SMS",
                    "from": {"phone_number": body.get("from"), "carrier": "TELNYX LLC"},
                    "to": [{"phone_number": body["to"], "status": "queued"}],
                    "text": body["text"],
                    "errors": [],
                }
            },
        )

    def code_for(self, number: str) -> str:
        """The code in the last SMS to ``number``, as its owner reads it."""
        found = re.search(r"\b(\d{4,10})\b", self.inbox[number])
        if found is None:
            raise LookupError(f"no code in the SMS to {number}")
        return found.group(1)


@dataclass
class AttackResult:
    """What an attack got: SMS before and after its first refusal by the fraud guard."""

    before_block: int = 0
    sent: int = 0
    attempts: int = 0
    blocked_at: int | None = None
    blocked_range: str = ""
    other_refusals: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Refusal:
    """A legitimate flow refused: its start or check, and why."""

    flow: Flow
    what: str
    cause: str


@dataclass
class Outcome:
    """Everything the report prints."""

    attacks: list[AttackResult]
    refused: list[Refusal]
    converted: int
    blocks: dict[str, tuple[str, Block]]
    sms: int


class Simulation:
    """Drives the events through the use cases, in time order, on the virtual clock."""

    def __init__(
        self,
        traffic: Traffic,
        *,
        epoch: int,
        redis: Redis,
        verifications: Verifications,
        telnyx: TelnyxStandIn,
        clock: VirtualClock,
    ) -> None:
        self._traffic = traffic
        self._epoch = epoch
        self._redis = redis
        self._verifications = verifications
        self._telnyx = telnyx
        self._clock = clock
        self.tenants: dict[str, Tenant] = {}
        self._started: dict[int, tuple[str, str]] = {}
        self._failed: set[int] = set()
        self._next_sweep = 0
        self.outcome = Outcome(
            attacks=[AttackResult() for _ in traffic.attacks],
            refused=[],
            converted=0,
            blocks={},
            sms=0,
        )

    async def run(self, launch: Callable[[], Awaitable[Tenant]]) -> Outcome:
        """Play every event; ``launch`` creates the new tenant when the clock reaches it."""
        for event in self._traffic.events:
            if NEW not in self.tenants and event.at >= self._traffic.new_tenant_at:
                self._clock.now = self._epoch + self._traffic.new_tenant_at
                self.tenants[NEW] = await launch()
            self._clock.now = self._epoch + event.at
            if self._clock.now >= self._next_sweep:
                await self._sweep_blocks()
            if event.kind == "attack":
                await self._attack(event)
            elif event.kind == "start":
                await self._start(event.index)
            else:
                await self._check(event.index, right=event.right)
        await self._sweep_blocks()
        self.outcome.sms = self._telnyx.sent
        return self.outcome

    async def _refuse(self, index: int, what: str, exc: Exception) -> None:
        """Note a legitimate flow refused, and the block that refused it if one did."""
        flow = self._traffic.flows[index]
        self._failed.add(index)
        cause = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, RateLimited):
            cause = f"429 limit {exc.limit}"
            if exc.limit == "prefix":
                block = await self._block_over(flow.tenant, flow.number)
                cause += f", block of {block.value} ({block.reason})" if block else ""
        self.outcome.refused.append(Refusal(flow, what, cause))

    async def _block_over(self, tenant: str, number: str) -> Block | None:
        """The block in force now over ``number``, if any."""
        await self._sweep_blocks()
        now = self._clock.now
        return next(
            (
                block
                for owner, block in self.outcome.blocks.values()
                if owner == tenant
                and number.startswith(block.value)
                and block.created_at <= now < block.expires_at
            ),
            None,
        )

    async def _start(self, index: int) -> None:
        flow = self._traffic.flows[index]
        try:
            verification, _ = await self._verifications.start(
                self.tenants[flow.tenant],
                StartRequest(phone_number=flow.number, rate_limit_keys={"ip": _user_ip(index)}),
            )
        except OtpError as exc:
            await self._refuse(index, "start", exc)
            return
        self._started[index] = (verification.id, self._telnyx.code_for(flow.number))

    async def _check(self, index: int, *, right: bool) -> None:
        if index in self._failed:
            return
        verification_id, code = self._started[index]
        typed = code if right else code[:-1] + str((int(code[-1]) + 1) % 10)
        flow = self._traffic.flows[index]
        try:
            result = await self._verifications.check(
                self.tenants[flow.tenant], verification_id, typed, {"ip": _user_ip(index)}
            )
        except OtpError as exc:
            await self._refuse(index, "check", exc)
            return
        if result.valid != right:
            self._failed.add(index)
            self.outcome.refused.append(Refusal(flow, "check", f"judged valid={result.valid}"))
        elif right:
            self.outcome.converted += 1

    async def _attack(self, event: Event) -> None:
        attack = self._traffic.attacks[event.index]
        result = self.outcome.attacks[event.index]
        result.attempts += 1
        try:
            await self._verifications.start(
                self.tenants[attack.spec.tenant],
                StartRequest(
                    phone_number=event.number,
                    rate_limit_keys={"ip": _proxy_ip(event.index, result.attempts)},
                ),
            )
        except RateLimited as exc:
            if exc.limit != "prefix":
                result.other_refusals[exc.limit] += 1
            elif result.blocked_at is None:
                result.blocked_at = event.at
                block = await self._block_over(attack.spec.tenant, event.number)
                result.blocked_range = block.value if block else "?"
            return
        except OtpError as exc:
            result.other_refusals[type(exc).__name__] += 1
            return
        result.sent += 1
        if result.blocked_at is None:
            result.before_block += 1

    async def _sweep_blocks(self) -> None:
        """Note the blocks written (every virtual minute: they last 15 min at least).

        Blocks end by the service's clock (the virtual one here), which the start script
        compares with the block's end; nothing needs ending by hand.
        """
        self._next_sweep = self._clock.now + MINUTE
        for name, tenant in self.tenants.items():
            for raw in await self._redis.hvals(keys.blocks(tenant.id)):
                block = msgspec.json.decode(raw, type=Block)
                if block.id not in self.outcome.blocks:
                    self.outcome.blocks[block.id] = (name, block)


def _user_ip(index: int) -> str:
    return f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"


def _proxy_ip(attack: int, attempt: int) -> str:
    return f"100.{64 + attack}.{attempt >> 8 & 255}.{attempt & 255}"


def _clock_time(at: int) -> str:
    day, rest = divmod(at, DAY)
    clock = time.strftime("%H:%M:%S", time.gmtime(rest / 1000))
    return f"+{day}d {clock}" if day else clock


# ---------------------------------------------------------------------------------------
# Wiring and report


def _settings_env(redis_url: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "OTP_ADMIN_TOKEN": "pumping-admin-token-0123456789",
        "OTP_SECRET_KEY": "pumping-secret-0123456789-0123456789-0123456789",
        "TELNYX_API_KEY": "KEYpumping",
        "TELNYX_PUBLIC_KEY": "Bx6tQAnl1NPgU4mmUmaS3B7E2G7NldWNYD8DzOZ4hw0=",
    }


TENANT_SETTINGS: Final = {"senders": {"default": [{"type": "long_code", "from": "+13125550100"}]}}
"""One sender for every country; every protection setting is the service's default."""


async def simulate(traffic: Traffic, seed: int) -> Outcome:
    """Run the traffic through the real use cases; return what happened."""
    with PrivateRedis() as server:
        settings = load_settings(_settings_env(server.url))
        redis = open_redis(server.url, timeout_seconds=10)
        rng = random.Random(seed)
        telnyx = TelnyxStandIn(rng)
        http = httpx.AsyncClient(
            base_url="https://api.telnyx.invalid/v2", transport=httpx.MockTransport(telnyx.handle)
        )
        hashing = HashingPool(CodeHasher(b"p" * 32, Argon2Parameters(1, 1024, 1)), 1)
        # The day starts at the next UTC midnight: Redis expires keys at absolute times the
        # scripts compute from the clock, which must not lie in Redis's past.
        epoch = (time.time_ns() // 1_000_000 // DAY + 1) * DAY
        clock = VirtualClock(epoch)
        cases = use_cases_over(
            redis,
            TelnyxClient(http, api_key="KEYpumping"),
            hashing,
            settings,
            clock=clock,
            rng=rng,
            metrics=Metrics(),
            webhook_url=None,
        )
        tenants = tenants_over(redis, settings, clock=clock, rng=rng)
        tenant_settings = msgspec.convert(TENANT_SETTINGS, TenantSettings)
        simulation = Simulation(
            traffic,
            epoch=epoch,
            redis=redis,
            verifications=cases.verifications,
            telnyx=telnyx,
            clock=clock,
        )
        try:
            simulation.tenants[MAIN] = await tenants.create("established", tenant_settings)
            return await simulation.run(lambda: tenants.create("launching", tenant_settings))
        finally:
            hashing.close()
            await http.aclose()
            await redis.aclose()


def report(traffic: Traffic, outcome: Outcome, elapsed: float, *, reasons: bool) -> bool:
    """Print the results; return whether both targets are met."""
    flows = traffic.flows
    countries = {item.region for item in traffic.ranges}
    surge = sum(flow.surge for flow in flows)
    new = sum(flow.tenant == NEW for flow in flows)
    print(
        f"legitimate: {len(flows)} flows over {len({f.range for f in flows})} ranges in "
        f"{len(countries)} countries; established tenant {len(flows) - new} (with a "
        f"{SURGE_FACTOR}x surge in {SURGE_REGION}, {_clock_time(SURGE_START)}-"
        f"{_clock_time(SURGE_START + HOUR)} UTC: +{surge}), new tenant {new} in its first hour "
        f"(from {_clock_time(traffic.new_tenant_at)} UTC); {outcome.converted} codes typed "
        f"({outcome.converted / len(flows):.1%})"
    )
    header = (
        f"{'attack':30} {'tenant':11} {'range':13} {'rate':14} {'from':>8} "
        f"{'SMS before block':>16}  {'blocked':8} {'block':10} {'SMS total':>9} {'tries':>6}"
    )
    print(header)
    print("-" * len(header))
    met = True
    for attack, result in zip(traffic.attacks, outcome.attacks, strict=True):
        spec = attack.spec
        where = f"{attack.target}x" if spec.spread else attack.target
        in_time = result.blocked_at is not None and result.before_block <= MAX_SMS_BEFORE_BLOCK
        met = met and in_time
        blocked = f"{result.blocked_at - spec.start} ms" if result.blocked_at is not None else "NO"
        line = (
            f"{spec.name:30} {spec.tenant:11} {where:13} {spec.rate:14} "
            f"{_clock_time(spec.start):>8} {result.before_block:>16}  "
            f"{'yes' if result.blocked_at is not None else 'NO':8} {result.blocked_range:10} "
            f"{result.sent:>9} {result.attempts:>6}"
        )
        print(line + ("" if in_time else f"   <- target missed ({blocked})"))
        ranges = Counter(
            block.value
            for tenant, block in outcome.blocks.values()
            if tenant == spec.tenant
            and (block.value.startswith(attack.target) or attack.target.startswith(block.value))
        )
        print(f"{'':4}blocks: " + ", ".join(f"{v} x{n}" for v, n in sorted(ranges.items())))
        for tenant, block in outcome.blocks.values() if reasons else ():
            if tenant == spec.tenant and block.value in ranges:
                when = _clock_time(block.created_at % DAY)
                print(f"{'':8}{when} {block.value}: {block.reason}")
        if result.other_refusals:
            print(f"{'':4}other refusals: {dict(result.other_refusals)}")
    attacked = {attack.target for attack in traffic.attacks}
    stray = [
        (tenant, block)
        for tenant, block in outcome.blocks.values()
        if not any(t.startswith(block.value) or block.value.startswith(t) for t in attacked)
    ]
    print(f"blocks written: {len(outcome.blocks)}, of ranges nobody attacked: {len(stray)}")
    for tenant, block in stray:
        when = _clock_time(block.created_at % DAY)
        print(f"  {tenant} tenant {block.value} at {when}: {block.reason}")
    print(f"legitimate flows refused: {len(outcome.refused)} of {len(flows)}")
    causes = Counter(f"{r.flow.tenant} tenant, {r.what}: {r.cause}" for r in outcome.refused)
    for cause, count in causes.most_common():
        first = next(r.flow for r in outcome.refused if cause.endswith(r.cause))
        print(f"  {count} x {cause}; first {first.number} at {_clock_time(first.at)}")
    met = met and not outcome.refused
    print(f"SMS sent: {outcome.sms}; elapsed: {elapsed:.1f} s")
    print(
        f"targets (every attack blocked within {MAX_SMS_BEFORE_BLOCK} SMS, "
        f"no legitimate flow refused): {'met' if met else 'MISSED'}"
    )
    return met


def main() -> None:
    """Parse the arguments, generate the traffic, run it and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=8, help="seed of the traffic and the run")
    parser.add_argument("--legit-flows", type=int, default=10_000, help="legitimate flows")
    parser.add_argument("--reasons", action="store_true", help="print each block's reason")
    arguments = parser.parse_args()
    # The guard logs each block; the report lists them.
    logging.getLogger("otp_service").setLevel(logging.ERROR)
    print("command: " + " ".join(["python", *sys.argv]))
    began = time.perf_counter()
    traffic = generate(arguments.seed, arguments.legit_flows)
    outcome = asyncio.run(simulate(traffic, arguments.seed))
    if not report(traffic, outcome, time.perf_counter() - began, reasons=arguments.reasons):
        sys.exit(1)


if __name__ == "__main__":
    main()
