"""Tenant data survives: the refusal of an evicting Redis, and ``export`` / ``import``."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import redis as sync_redis

from otp_service.clock import SystemClock
from otp_service.core.eviction import eviction_problem, masked_url
from otp_service.devredis import PrivateRedis
from otp_service.metrics import Metrics
from otp_service.runtime import open_services
from otp_service.usecases.redis_safety import UnsafeRedis
from tests.conftest import Simulator, service_environ, service_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "policy",
    ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"],
)
def test_every_evicting_policy_is_refused_with_the_fix(policy: str) -> None:
    problem = eviction_problem(policy)
    assert problem is not None
    assert policy in problem
    assert "set it to noeviction" in problem


def test_noeviction_is_the_one_safe_policy() -> None:
    assert eviction_problem("noeviction") is None


def test_a_redis_url_is_shown_without_its_password() -> None:
    assert masked_url("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    assert masked_url("rediss://app:hunter2@db/1") == "rediss://app:***@db/1"
    assert masked_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_serve_refuses_an_evicting_redis_in_one_line(tmp_path: Path, simulator: Simulator) -> None:
    """serve exits 2 with one line naming the policy and the fix; the password is masked."""
    with PrivateRedis(options=["--maxmemory-policy", "allkeys-lru"]) as server:
        client = sync_redis.Redis(port=server.port)
        client.config_set("requirepass", "hunter2-secret")
        client.close()
        port = server.port
        url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
        result = subprocess.run(
            [sys.executable, "-m", "otp_service", "serve", "--port", "0"],
            env=os.environ | service_environ(url, simulator) | {"PYTHONPATH": str(REPO)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout
    lines = result.stderr.strip().splitlines()
    expected = (
        f"otp-service: Redis at redis://:***@127.0.0.1:{port}/0 has maxmemory-policy"
        " allkeys-lru, which can evict tenant keys or live verifications; set it to noeviction"
    )
    assert lines == [expected], result.stderr
    assert "hunter2" not in result.stderr + result.stdout


async def test_the_lifespan_refuses_too_when_config_is_renamed(simulator: Simulator) -> None:
    """A managed Redis without CONFIG is still read (INFO), by any way of running the app."""
    options = ["--maxmemory-policy", "volatile-lru", "--rename-command", "CONFIG", ""]
    with PrivateRedis(options=options) as server:
        settings = service_settings(server.url, simulator, OTP_RUN_WORKERS="0")
        with pytest.raises(UnsafeRedis, match="maxmemory-policy volatile-lru"):
            async with open_services(
                settings, clock=SystemClock(), rng=secrets.SystemRandom(), metrics=Metrics()
            ):
                pass


def test_the_test_and_dev_redis_never_evicts(redis_url: str) -> None:
    client = sync_redis.Redis.from_url(redis_url)
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    client.close()
