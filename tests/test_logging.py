"""`otp-service serve`'s log as a log pipeline reads it: one JSON object a line, one line per
request carrying the id the client was answered, events with real keys, nothing secret."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from otp_service.core.phone import mask
from tests.conftest import (
    ADMIN_TOKEN,
    DEFAULT_SETTINGS,
    SECRET_KEY,
    TELNYX_KEY,
    Simulator,
    fresh_number,
    service_environ,
)

STARTUP_SECONDS = 30
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def serving(env: dict[str, str], stderr: Path) -> Iterator[str]:
    """Run `otp-service serve` with its stderr in a file; stop it with SIGTERM (as Docker does).

    It is ready when it prints "listening on" (stdout): no request of the test's own is made.
    """
    port = free_port()
    stdout = stderr.with_suffix(".out")
    with stderr.open("wb") as err, stdout.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603  (our own module, fixed arguments)
            [sys.executable, "-m", "otp_service", "serve", "--port", str(port)],
            env=os.environ | env,
            stdout=out,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while "listening on" not in stdout.read_text():
                assert process.poll() is None, stderr.read_text()
                assert time.monotonic() < deadline, stderr.read_text()
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def json_lines(stderr: Path) -> list[dict[str, Any]]:
    """Every line of stderr, each of which must be one JSON object with the envelope keys."""
    lines = []
    for text in stderr.read_text().splitlines():
        line = json.loads(text)
        assert isinstance(line, dict), text
        assert {"ts", "level", "logger", "msg"} <= line.keys(), text
        assert datetime.fromisoformat(line["ts"]).utcoffset() is not None, text
        assert line["ts"].endswith("Z"), text
        lines.append(line)
    return lines


def test_serve_logs_json_lines_with_request_ids_and_nothing_secret(
    tmp_path: Path, redis_url: str, simulator: Simulator
) -> None:
    """A start and a check: each request one access line with the ``X-Request-Id`` answered;
    a client's own id is echoed and marks the lines it caused; the send line has the masked
    number; no line holds the code, a key, the admin token or the number."""
    stderr = tmp_path / "serve.err"
    number = fresh_number()
    answered: list[httpx.Response] = []
    with serving(service_environ(redis_url, simulator), stderr) as base:
        client = httpx.Client(
            base_url=base, timeout=15, event_hooks={"response": [answered.append]}
        )
        with client:
            tenant = client.post(
                "/admin/tenants",
                json={"name": "Logged", "settings": DEFAULT_SETTINGS},
                headers=ADMIN,
            ).json()
            key = client.post(f"/admin/tenants/{tenant['id']}/api-keys", headers=ADMIN).json()[
                "key"
            ]
            auth = {"Authorization": f"Bearer {key}"}
            started = client.post(
                "/v1/verifications",
                json={"phone_number": number},
                headers=auth | {"X-Request-Id": "trace-2f8a.start:1"},
            )
            assert started.status_code == 201, started.text
            assert started.headers["x-request-id"] == "trace-2f8a.start:1"
            inbox = httpx.get(f"{simulator.url}/_sim/messages", params={"to": number}).json()
            code = inbox[-1]["text"].split(" ", 1)[0]
            checked = client.post(
                f"/v1/verifications/{started.json()['id']}/check",
                json={"code": code},
                headers=auth | {"X-Request-Id": 'bad id "with" spaces'},
            )
            assert checked.json()["status"] == "approved", checked.text
            forged = checked.headers["x-request-id"]
            assert forged != 'bad id "with" spaces'
            too_long = client.get("/health/live", headers={"X-Request-Id": "a" * 129})
            assert too_long.headers["x-request-id"] != "a" * 129
    lines = json_lines(stderr)

    access = [line for line in lines if line["logger"] == "otp_service.access"]
    ids = [response.headers["x-request-id"] for response in answered]
    assert len(set(ids)) == len(ids) == 5, ids
    assert sorted(line["request_id"] for line in access) == sorted(ids), access
    by_id = {line["request_id"]: line for line in access}
    for response in answered:
        line = by_id[response.headers["x-request-id"]]
        assert line["msg"] == "request"
        assert line["method"] == response.request.method
        assert line["path"] == response.request.url.path
        assert line["status"] == response.status_code
        assert line["duration_ms"] >= 0
    assert by_id["trace-2f8a.start:1"]["tenant"] == tenant["id"]
    assert by_id[forged]["tenant"] == tenant["id"]
    assert "tenant" not in by_id[too_long.headers["x-request-id"]]

    [send] = [line for line in lines if line["msg"] == "send"]
    assert send["request_id"] == "trace-2f8a.start:1"
    assert send["to"] == mask(number)
    assert send["verification"] == started.json()["id"]
    assert send["tenant"] == tenant["id"]
    assert send["outcome"] == "sent"

    for text in stderr.read_text().splitlines():
        for secret in (code, key, ADMIN_TOKEN, SECRET_KEY, TELNYX_KEY, number, number[1:]):
            assert secret not in text, (secret, text)


@pytest.mark.parametrize(("level", "shown"), [("WARNING", False), ("INFO", True)])
def test_the_level_setting_filters_lines(
    tmp_path: Path, redis_url: str, simulator: Simulator, level: str, shown: bool
) -> None:
    """At WARNING a request writes no access line (nor any INFO line); at INFO it does."""
    stderr = tmp_path / "serve.err"
    with serving(service_environ(redis_url, simulator) | {"OTP_LOG_LEVEL": level}, stderr) as base:
        assert httpx.get(f"{base}/health/live").status_code == 200
    lines = json_lines(stderr)
    assert any(line["msg"] == "request" for line in lines) is shown, lines
    if not shown:
        assert all(line["level"] in {"WARNING", "ERROR", "CRITICAL"} for line in lines), lines
