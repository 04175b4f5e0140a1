"""End-to-end throughput of the API: starts and checks per second, with their latency.

Runs ``otp-service dev`` (private Redis, Telnyx simulator, API) as a child process and
drives it over HTTP from this process: ``--verifications`` verifications, ``--concurrency``
at a time, each started, its code read from the simulator's inbox, and checked. Both sides
share this machine, so the figures are a floor for the service, not a ceiling.

    .venv/bin/python bench/api_throughput.py --verifications 200 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _wait_for_key(log: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"tenant API key\s+(\S+)", log.read_text())
        if found:
            return found.group(1)
        if process.poll() is not None:
            sys.exit(f"otp-service dev stopped:\n{log.read_text()}")
        time.sleep(0.1)
    sys.exit("otp-service dev did not start")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def _drive(api: str, sim: str, key: str, total: int, concurrency: int) -> None:
    starts: list[float] = []
    checks: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * 2)
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=api, headers=headers, limits=limits, timeout=30) as client,
        httpx.AsyncClient(base_url=sim, limits=limits, timeout=30) as inbox,
    ):

        async def one(index: int) -> None:
            nonlocal failures
            number = f"+1415555{index:04d}"
            async with gate:
                began = time.perf_counter()
                started = await client.post("/v1/verifications", json={"phone_number": number})
                starts.append(time.perf_counter() - began)
                if started.status_code != 201:
                    failures += 1
                    return
                messages = (await inbox.get("/_sim/messages", params={"to": number})).json()
                code = messages[-1]["text"].split(" ", 1)[0]
                began = time.perf_counter()
                checked = await client.post(
                    f"/v1/verifications/{started.json()['id']}/check", json={"code": code}
                )
                checks.append(time.perf_counter() - began)
                if checked.json().get("status") != "approved":
                    failures += 1

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(total)))
        elapsed = time.perf_counter() - began

    print(f"verifications {total}  concurrency {concurrency}  failures {failures}")
    print(f"wall time {elapsed:.2f} s  ->  {total / elapsed:.1f} verifications/s (start + check)")
    for name, values in (("start", starts), ("check", checks)):
        mean = statistics.mean(values) * 1000
        p50, p99 = _percentile(values, 0.5), _percentile(values, 0.99)
        print(f"{name:5}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  mean {mean:7.1f} ms")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verifications", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    api_port, sim_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "dev.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603  (our own module)
                [
                    sys.executable,
                    "-m",
                    "otp_service",
                    "dev",
                    "--port",
                    str(api_port),
                    "--simulator-port",
                    str(sim_port),
                    "--env-file",
                    str(Path(folder) / "dev.env"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ | {"OTP_LOG_LEVEL": "WARNING"},
            )
            try:
                key = _wait_for_key(log, process)
                asyncio.run(
                    _drive(
                        f"http://127.0.0.1:{api_port}",
                        f"http://127.0.0.1:{sim_port}",
                        key,
                        args.verifications,
                        args.concurrency,
                    )
                )
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
