"""The ``otp-service`` processes as a user runs them: ``dev``, ``serve`` and ``simulator``."""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from otp_service.devredis import PrivateRedis
from tests.conftest import ADMIN_TOKEN, DEFAULT_SETTINGS, Simulator, fresh_number, service_environ
from tests.servers import serve

STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m otp_service ARGS`` with output to ``log``; interrupt it afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603  (our own module, fixed arguments)
            [sys.executable, "-m", "otp_service", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(url: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not come up")


def test_dev_serves_a_working_api_with_a_ready_key(tmp_path: Path) -> None:
    """`otp-service dev` prints a key that starts and approves a verification, then stops clean."""
    api, sim = free_port(), free_port()
    log = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "TELNYX_", "REDIS_"))}
    with running(["dev", "--port", str(api), "--simulator-port", str(sim)], env, log) as process:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "tenant API key" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        banner = log.read_text()
        key = re.search(r"tenant API key\s+(\S+)", banner)
        assert key is not None, banner
        redis = re.search(r"redis://127\.0\.0\.1:(\d+)/0", banner)
        assert redis is not None, banner
        assert redis.group(1) != "6379"
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        number = fresh_number()
        started = httpx.post(
            f"http://127.0.0.1:{api}/v1/verifications",
            json={"phone_number": number},
            headers=headers,
            timeout=10,
        )
        assert started.status_code == 201, started.text
        inbox = httpx.get(f"http://127.0.0.1:{sim}/_sim/messages", params={"to": number}).json()
        code = inbox[0]["text"].split(" ", 1)[0]
        checked = httpx.post(
            f"http://127.0.0.1:{api}/v1/verifications/{started.json()['id']}/check",
            json={"code": code},
            headers=headers,
            timeout=10,
        )
        assert checked.json()["status"] == "approved"
    assert process.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(redis.group(1)))) != 0, "Redis outlived dev"


def test_serve_runs_the_api_from_the_environment(
    tmp_path: Path, redis_url: str, simulator: Simulator
) -> None:
    """`otp-service serve` answers ready and the admin API with the configured token."""
    port = free_port()
    env = os.environ | service_environ(redis_url, simulator)
    with running(["serve", "--port", str(port)], env, tmp_path / "serve.log"):
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/health/live")
        assert httpx.get(f"{base}/health/ready").status_code == 200
        tenants = httpx.post(
            f"{base}/admin/tenants",
            json={"name": "Served"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert tenants.status_code == 201


def test_serve_reports_every_missing_or_malformed_setting_at_once(tmp_path: Path) -> None:
    """With four required variables missing and one malformed, `serve` names all five in one
    run, one line each, and exits 2 without a traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "TELNYX_"))}
    env["OTP_LOG_LEVEL"] = "LOUD"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "otp_service", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    header, *lines = result.stderr.strip().splitlines()
    assert header == "otp-service: 5 settings are missing or invalid:"
    named = [line.split()[0] for line in lines]
    assert named == [
        "OTP_ADMIN_TOKEN",
        "OTP_SECRET_KEY",
        "TELNYX_API_KEY",
        "TELNYX_PUBLIC_KEY",
        "OTP_LOG_LEVEL",
    ]
    assert "LOUD" not in result.stderr


def test_the_simulator_runs_alone_with_a_given_key(tmp_path: Path) -> None:
    """`otp-service simulator` serves the Telnyx API and publishes the key it signs with."""
    port = free_port()
    seed = bytes(range(32))
    env = os.environ | {"SIMULATOR_SIGNING_SEED": base64.b64encode(seed).decode()}
    with running(["simulator", "--port", str(port)], env, tmp_path / "sim.log"):
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/_sim/messages")
        expected = base64.b64encode(bytes(SigningKey(seed).verify_key)).decode()
        assert httpx.get(f"{base}/_sim/public-key").json() == {"public_key": expected}
        sent = httpx.post(
            f"{base}/v2/messages/long_code",
            json={"from": "+13125550100", "to": "+14155552671", "text": "hello"},
            headers={"Authorization": "Bearer anything"},
        )
        assert sent.status_code == 200


def test_serve_never_logs_an_event_urls_credentials_or_query(
    tmp_path: Path, simulator: Simulator
) -> None:
    """At DEBUG, a delivered event leaves the receiver's origin in the log, and no secret.

    The process has a Redis of its own: the session's service would otherwise be as likely
    to deliver the event from the shared outbox, and log elsewhere.
    """
    posted: list[str] = []

    async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        posted.append(scope["query_string"].decode())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    port = free_port()
    log = tmp_path / "serve.log"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with (
        PrivateRedis() as redis,
        serve(receiver) as receiver_url,
        running(
            ["serve", "--port", str(port)],
            os.environ | service_environ(redis.url, simulator) | {"OTP_LOG_LEVEL": "DEBUG"},
            log,
        ),
    ):
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/health/live")
        hook = receiver_url.replace("http://", "http://hook-user:hunter2@")
        tenant = httpx.post(
            f"{base}/admin/tenants",
            json={
                "name": "Logged",
                "settings": DEFAULT_SETTINGS
                | {"events_webhook_url": f"{hook}/p4th-s3cret?token=sekrit"},
            },
            headers=admin,
        ).json()
        key = httpx.post(f"{base}/admin/tenants/{tenant['id']}/api-keys", headers=admin).json()
        started = httpx.post(
            f"{base}/v1/verifications",
            json={"phone_number": fresh_number()},
            headers={"Authorization": f"Bearer {key['key']}"},
            timeout=15,
        )
        assert started.status_code == 201, started.text
        deadline = time.monotonic() + 15
        while not posted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert posted == ["token=sekrit"]
        line = f"event posted to {receiver_url}: 204"
        while line not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # the line is written once the answer is read
    logged = log.read_text()
    assert line in logged, logged
    for secret in ("hook-user", "hunter2", "sekrit", "p4th-s3cret"):
        assert secret not in logged, logged
