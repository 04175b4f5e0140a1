"""How big should the argon2 thread pool be? Throughput and latency per pool size.

Runs ``CodeHasher.hash`` the way the service does (``loop.run_in_executor`` on a
``ThreadPoolExecutor``) with ``--concurrency`` requests in flight, for pools of 1, one per
core, two per core, 8 and 32 threads. Latency is per request, queueing included, which is
what a caller waits. ``loop lag`` is how late a 10 ms timer fires meanwhile: argon2 releases
the GIL, so it should stay small whatever the pool size.

    .venv/bin/python bench/hash_pool.py --hashes 200 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from otp_service.core.hashing import Argon2Parameters, CodeHasher

_TICK_SECONDS = 0.01


@dataclass(frozen=True)
class Result:
    threads: int
    hashes_per_second: float
    p50_ms: float
    p99_ms: float
    max_loop_lag_ms: float


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def _watch_loop(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(_TICK_SECONDS)
        lags.append(time.perf_counter() - start - _TICK_SECONDS)


async def _timed_hash(
    hasher: CodeHasher, pool: ThreadPoolExecutor, gate: asyncio.Semaphore, number: int
) -> float:
    async with gate:
        start = time.perf_counter()
        await asyncio.get_running_loop().run_in_executor(
            pool, hasher.hash, f"ver_{number}", "123456"
        )
        return time.perf_counter() - start


async def run_pool(hasher: CodeHasher, threads: int, hashes: int, concurrency: int) -> Result:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    lags: list[float] = []
    stop = asyncio.Event()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2") as pool:
        # Start every worker thread before timing, as a long-running service would have.
        await asyncio.gather(*(loop.run_in_executor(pool, time.sleep, 0) for _ in range(threads)))
        watcher = asyncio.create_task(_watch_loop(lags, stop))
        start = time.perf_counter()
        latencies = await asyncio.gather(
            *(_timed_hash(hasher, pool, gate, number) for number in range(hashes))
        )
        elapsed = time.perf_counter() - start
        stop.set()
        await watcher
    latencies = sorted(latencies)
    return Result(
        threads=threads,
        hashes_per_second=hashes / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        max_loop_lag_ms=max(lags, default=0.0) * 1000,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hashes", type=int, default=200, help="hashes per pool size")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--time-cost", type=int, default=2)
    parser.add_argument("--memory-kib", type=int, default=19456)
    parser.add_argument("--parallelism", type=int, default=1)
    args = parser.parse_args()

    params = Argon2Parameters(args.time_cost, args.memory_kib, args.parallelism)
    hasher = CodeHasher(os.urandom(32), params)
    cores = os.cpu_count() or 1
    sizes = list(dict.fromkeys((1, cores, 2 * cores, 8, 32)))

    hasher.hash("ver_warmup", "000000")
    print(
        f"argon2id t={params.time_cost} m={params.memory_kib} KiB p={params.parallelism}; "
        f"{cores} cores; {args.hashes} hashes per pool, {args.concurrency} in flight"
    )
    print(f"{'threads':>7} {'hashes/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'loop lag ms':>11}")
    for threads in sizes:
        result = await run_pool(hasher, threads, args.hashes, args.concurrency)
        print(
            f"{result.threads:>7} {result.hashes_per_second:>9.1f} {result.p50_ms:>8.1f} "
            f"{result.p99_ms:>8.1f} {result.max_loop_lag_ms:>11.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
