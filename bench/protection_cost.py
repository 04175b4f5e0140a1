"""What abuse protection costs a start: CPU per start and Redis round trips, on and off.

Runs the real start use case (``Verifications.start``: parsing, argon2, the start script,
the fraud guard's judgement, the send through a Telnyx stand-in, the record of the send)
against a private Redis, in one process, alternating batches with protection on and off:

- on: every limit (asker keys ``ip`` and ``user_id``, the number, the country's budget, the
  tenant) and the fraud guard in ``block`` mode; thresholds are raised so that nothing is
  refused, since a refusal would skip the work being measured;
- off: the same starts with no limit rule and the guard off (the start script gets empty
  rule and prefix lists, which is what protection adds, and nothing else changes).

CPU is this process's (all threads: argon2 runs in the pool) plus the Redis server's, from
its ``INFO cpu``. argon2 runs with the cheapest parameters (8 KiB) so that its cost, the
same on both sides, does not drown the difference in its noise. Batches alternate, the
side that goes first alternating too, and the cost is the median of the batch pairs'
differences, so a neighbour's load on this shared machine skews one pair, not the result.
Round trips are Redis commands sent by the client (a script is one).

    .venv/bin/python bench/protection_cost.py --starts 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import zlib
from collections.abc import Awaitable, Callable

import httpx
import msgspec
import phonenumbers
from redis.asyncio import Redis

from otp_service.adapters.redis_client import open_redis
from otp_service.adapters.redis_verifications import Guard
from otp_service.adapters.telnyx import TelnyxClient
from otp_service.core.hashing import Argon2Parameters, CodeHasher
from otp_service.core.model import Tenant, TenantSettings
from otp_service.core.phone import PhoneNumber
from otp_service.devredis import PrivateRedis
from otp_service.hashing_pool import HashingPool
from otp_service.metrics import Metrics
from otp_service.runtime import tenants_over, use_cases_over
from otp_service.settings import load_settings
from otp_service.usecases.verifications import StartRequest, Verifications

_RANGES = ("+447400", "+447911", "+33612", "+49151", "+4670", "+3465", "+39347", "+31612")


class WallClock:
    """The real clock (protection's windows see real time pass)."""

    def now_ms(self) -> int:
        """Now, in ms."""
        return time.time_ns() // 1_000_000


def _telnyx(request: httpx.Request) -> httpx.Response:
    """Answer a send like Telnyx does (the fields the client reads)."""
    body = json.loads(request.content)
    return httpx.Response(
        200,
        json={
            "data": {
                "id": f"msg-{random.getrandbits(64):016x}",
                "to": [{"phone_number": body["to"], "status": "queued"}],
                "errors": [],
            }
        },
    )


def _numbers(count: int, rng: random.Random) -> list[str]:
    """Distinct valid numbers spread over several countries' ranges."""
    found: set[str] = set()
    while len(found) < count:
        head = rng.choice(_RANGES)
        candidate = head + "".join(str(rng.randrange(10)) for _ in range(12 - len(head) + 1))
        parsed = phonenumbers.parse(candidate, None)
        if phonenumbers.is_valid_number(parsed):
            found.add(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


def _unprotected(verifications: Verifications) -> None:
    """Make ``verifications`` start with protection off: no rule, no prefix, guard off."""
    protected = verifications._guard_for  # noqa: SLF001  (the one seam protection has)

    def bare(
        tenant: Tenant,
        request: StartRequest,
        number: PhoneNumber,
        *,
        first_sender: str,
        event_id: str,
        now: int,
    ) -> Guard:
        guard = protected(
            tenant, request, number, first_sender=first_sender, event_id=event_id, now=now
        )
        return msgspec.structs.replace(guard, rules=[], asker="", mode="off", prefixes=[])

    verifications._guard_for = bare  # type: ignore[method-assign]  # noqa: SLF001


async def _redis_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _batch(
    start: Callable[[str, dict[str, str]], Awaitable[object]],
    numbers: list[str],
    redis: Redis,
    trips: list[int],
) -> tuple[float, float, int]:
    """Run starts one after another; return CPU seconds (ours, Redis's) and round trips."""
    trips_before, redis_before, cpu_before = trips[0], await _redis_cpu(redis), time.process_time()
    for number in numbers:
        ip = zlib.crc32(number.encode()) % 65536  # spread over many askers, as in real traffic
        await start(number, {"ip": f"198.18.{ip >> 8}.{ip & 255}", "user_id": number})
    cpu = time.process_time() - cpu_before
    redis_cpu = await _redis_cpu(redis) - redis_before
    return cpu, redis_cpu, trips[0] - trips_before


async def _run(starts: int, batches: int) -> None:
    with PrivateRedis() as server:
        settings = load_settings(
            {
                "REDIS_URL": server.url,
                "OTP_ADMIN_TOKEN": "bench-admin-token-0123456789",
                "OTP_SECRET_KEY": "bench-secret-0123456789-0123456789-0123456789",
                "TELNYX_API_KEY": "KEYbench",
                "TELNYX_PUBLIC_KEY": "Bx6tQAnl1NPgU4mmUmaS3B7E2G7NldWNYD8DzOZ4hw0=",
            }
        )
        redis = open_redis(server.url, timeout_seconds=5)
        trips = [0]
        send: Callable[..., Awaitable[object]] = redis.execute_command

        async def counted(*args: object, **options: object) -> object:
            trips[0] += 1
            return await send(*args, **options)

        redis.execute_command = counted  # type: ignore[method-assign]
        http = httpx.AsyncClient(
            base_url="https://telnyx.invalid/v2", transport=httpx.MockTransport(_telnyx)
        )
        hashing = HashingPool(CodeHasher(b"k" * 32, Argon2Parameters(1, 8, 1)), 1)
        clock, rng, metrics = WallClock(), random.Random(7), Metrics()
        tenants = tenants_over(redis, settings, clock=clock, rng=rng)

        def compose() -> Verifications:
            cases = use_cases_over(
                redis,
                TelnyxClient(http, api_key="KEYbench"),
                hashing,
                settings,
                clock=clock,
                rng=rng,
                metrics=metrics,
                webhook_url=None,
            )
            return cases.verifications

        protected, bare = compose(), compose()
        _unprotected(bare)
        roomy = {
            "senders": {"default": [{"type": "long_code", "from": "+13125550100"}]},
            "limits": {
                "tenant": {"max": 1_000_000, "interval_seconds": 1},
                "country_daily_sends": {"default": 100_000_000},
            },
            "fraud": {"velocity_floors": [1_000_000] * 5, "min_unconverted": 10_000},
        }
        tenant_settings = msgspec.convert(roomy, TenantSettings)
        tenant_on: Tenant = await tenants.create("bench-on", tenant_settings)
        tenant_off: Tenant = await tenants.create("bench-off", tenant_settings)
        numbers = _numbers(starts * 2, random.Random(11))
        on_numbers, off_numbers = numbers[::2], numbers[1::2]

        def starter(cases: Verifications, tenant: Tenant) -> Callable[..., Awaitable[object]]:
            async def start(number: str, keys: dict[str, str]) -> object:
                return await cases.start(
                    tenant, StartRequest(phone_number=number, rate_limit_keys=keys)
                )

            return start

        # Warm up both paths (script loading, connections, imports).
        await starter(protected, tenant_on)(on_numbers[0], {"ip": "198.51.100.1"})
        await starter(bare, tenant_off)(off_numbers[0], {"ip": "198.51.100.1"})
        totals = {"on": [0.0, 0.0, 0.0], "off": [0.0, 0.0, 0.0]}
        differences: list[float] = []
        size = (starts - 1) // batches
        for index in range(batches):
            part = slice(1 + index * size, 1 + (index + 1) * size)
            sides = [
                ("off", bare, tenant_off, off_numbers),
                ("on", protected, tenant_on, on_numbers),
            ]
            per_start: dict[str, float] = {}
            for name, cases, tenant, pool in sides if index % 2 else sides[::-1]:
                measured = await _batch(starter(cases, tenant), pool[part], redis, trips)
                for slot, value in enumerate(measured):
                    totals[name][slot] += value
                per_start[name] = (measured[0] + measured[1]) / size
            differences.append(per_start["on"] - per_start["off"])
        count = size * batches
        print(f"starts per side: {count}, in {batches} alternating batches of {size}")
        for name in ("off", "on"):
            cpu, redis_cpu, rts = totals[name]
            print(
                f"protection {name:3}: {(cpu + redis_cpu) / count * 1000:.3f} ms CPU per start"
                f" ({cpu / count * 1000:.3f} this process, {redis_cpu / count * 1000:.3f} Redis),"
                f" {rts / count:.2f} Redis round trips per start"
            )
        extra = (totals["on"][2] - totals["off"][2]) / count
        print(
            f"protection costs {statistics.median(differences) * 1000:.3f} ms CPU per start"
            f" (median of {batches} batch pairs; mean {statistics.mean(differences) * 1000:.3f})"
            f" and {extra:+.2f} Redis round trips"
        )
        hashing.close()
        await http.aclose()
        await redis.aclose()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--starts", type=int, default=2000, help="starts per side")
    parser.add_argument("--batches", type=int, default=20, help="alternations of on and off")
    arguments = parser.parse_args()
    asyncio.run(_run(arguments.starts, arguments.batches))


if __name__ == "__main__":
    main()
