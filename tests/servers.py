"""Run any ASGI app under uvicorn on a free loopback port, in a background thread.

Each server has its own thread and event loop, so apps are tested over real HTTP exactly as
they run, and their resources (clients opened in a lifespan) never cross into the test's loop.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class Factory:
    """Marks a callable that builds the app once its base URL is known."""

    def __init__(self, build: Callable[[str], ASGIApp]) -> None:
        self._build = build

    def __call__(self, base_url: str) -> ASGIApp:
        """Build the app for ``base_url``."""
        return self._build(base_url)


_STARTUP_TIMEOUT_SECONDS = 10.0
_SHUTDOWN_TIMEOUT_SECONDS = 10.0


@contextmanager
def serve(app: ASGIApp | Factory, *, graceful_shutdown_seconds: int = 2) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL (``http://127.0.0.1:<port>``).

    ``app`` may also be a ``Factory`` taking the base URL, for an app that must know its
    own address (the service asks Telnyx to post webhooks back to it).

    The socket is bound before the server starts, so the port cannot be taken in between;
    the URL is yielded only once the app's lifespan has started and it accepts connections.
    On exit the server stops, cancelling requests still running after
    ``graceful_shutdown_seconds``, and its lifespan shutdown runs.
    """
    # The protocol must be named: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets whose proto is IPPROTO_TCP, and without it every response waits ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    try:
        app = app(base_url) if isinstance(app, Factory) else app
    except BaseException:
        sock.close()
        raise
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=graceful_shutdown_seconds,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start serving on port {port}")
            time.sleep(0.01)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(_SHUTDOWN_TIMEOUT_SECONDS)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"the server on port {port} did not stop")
