"""The ``otp-service`` processes as a user runs them: ``dev``, ``serve`` and ``simulator``."""

from __future__ import annotations

import base64
import json
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


REPO = Path(__file__).resolve().parent.parent


@contextmanager
def running(
    args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m otp_service ARGS`` with output to ``log``; interrupt it afterwards.

    With ``cwd`` (where ``dev`` writes its environment file) the package still comes from
    this checkout.
    """
    if cwd is not None:
        env = env | {"PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603  (our own module, fixed arguments)
            [sys.executable, "-m", "otp_service", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
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


def wait_for_line(process: subprocess.Popen[bytes], log: Path, text: str) -> str:
    """Wait until ``text`` is in the process's log; return the log."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while text not in log.read_text() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    logged = log.read_text()
    assert text in logged, logged
    return logged


def without_service_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "TELNYX_", "REDIS_"))}


def test_dev_serves_a_working_api_with_a_ready_key(tmp_path: Path) -> None:
    """`otp-service dev` prints a key that starts and approves a verification, then stops clean."""
    api, sim = free_port(), free_port()
    log = tmp_path / "dev.log"
    env = without_service_environment()
    with running(
        ["dev", "--port", str(api), "--simulator-port", str(sim)], env, log, cwd=tmp_path
    ) as process:
        banner = wait_for_line(process, log, "tenant API key")
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


def test_dev_prints_the_inbox_first_and_lets_the_cli_join_it(tmp_path: Path) -> None:
    """The inbox URL is dev's first line; with the environment file dev writes (owner-only),
    the CLI issues a key that the dev API accepts; the file is gone when dev stops."""
    api, sim = free_port(), free_port()
    log = tmp_path / "dev.log"
    env_file = tmp_path / ".otp-service" / "dev.env"
    with running(
        ["dev", "--port", str(api), "--simulator-port", str(sim)],
        without_service_environment(),
        log,
        cwd=tmp_path,
    ) as process:
        banner = wait_for_line(process, log, "tenant API key")
        assert banner.splitlines()[0] == f"SMS inbox  http://127.0.0.1:{sim}/"
        assert "set -a; . .otp-service/dev.env; set +a" in banner
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert env_file.parent.stat().st_mode & 0o777 == 0o700
        loaded = subprocess.run(
            ["/bin/sh", "-c", "set -a; . .otp-service/dev.env; set +a; env"],
            cwd=tmp_path,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        environment = dict(line.split("=", 1) for line in loaded.splitlines() if "=" in line)
        tenant_id = environment["OTP_DEV_TENANT_ID"]
        assert f"tenant              {tenant_id}" in banner
        cli = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "otp_service", "keys", "create", tenant_id],
            env=environment | {"PYTHONPATH": str(REPO)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        key = json.loads(cli.stdout)["key"]
        answer = httpx.get(
            f"{environment['OTP_DEV_API_URL']}/v1/opt-outs/+14155552671",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text
    assert process.returncode == 0, log.read_text()
    assert not env_file.exists()


@pytest.mark.parametrize("command", ["serve", "dev", "simulator"])
def test_a_port_in_use_ends_in_one_line(
    tmp_path: Path, redis_url: str, simulator: Simulator, command: str
) -> None:
    """A taken port stops serve, dev and the simulator with one line naming it, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "otp_service", command, "--port", str(port)],
            env=os.environ | service_environ(redis_url, simulator) | {"PYTHONPATH": str(REPO)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"otp-service: port {port} on 127.0.0.1 is already in use (choose another with --port)"
    ]
    assert not (tmp_path / ".otp-service").exists()


def test_serve_says_where_it_listens_and_logs_each_request(
    tmp_path: Path, redis_url: str, simulator: Simulator
) -> None:
    """`serve` prints "listening on" once up, then one access line per request: method, path
    (number masked, no query), status and duration (here as text; tests/test_logging.py reads
    the JSON lines)."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = os.environ | service_environ(redis_url, simulator) | {"OTP_LOG_FORMAT": "text"}
    number = fresh_number()
    with running(["serve", "--port", str(port)], env, log) as process:
        wait_for_line(process, log, f"otp-service listening on http://127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health/live", params={"token": "sekrit"}).status_code == 200
        looked_up = httpx.get(
            f"{base}/v1/opt-outs/{number}", headers={"Authorization": "Bearer otpk_nope"}
        )
        assert looked_up.status_code == 401
        assert httpx.delete(f"{base}/health/live").status_code == 405
        logged = wait_for_line(process, log, "method=DELETE path=/health/live status=405")
    access = [line for line in logged.splitlines() if "otp_service.access" in line]
    fields = r" duration_ms=[0-9.]+ request_id=[0-9a-f]{16}$"
    assert re.search(r" request method=GET path=/health/live status=200" + fields, access[0])
    masked = rf" request method=GET path=/v1/opt-outs/\{number[:8]}\*+ status=401"
    assert re.search(masked + fields, access[1]), access
    assert "sekrit" not in logged
    assert number not in logged


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
            os.environ
            | service_environ(redis.url, simulator)
            | {"OTP_LOG_LEVEL": "DEBUG", "OTP_LOG_FORMAT": "text"},
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
        line = f"event posted origin={receiver_url} status=204"
        while line not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # the line is written once the answer is read
    logged = log.read_text()
    assert line in logged, logged
    for secret in ("hook-user", "hunter2", "sekrit", "p4th-s3cret"):
        assert secret not in logged, logged
