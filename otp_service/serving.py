"""How the CLI's processes listen: sockets bound first, a "listening on" line, an access log.

``serve``, ``dev`` and ``simulator`` bind their sockets before anything else starts (a
private Redis, the app's lifespan, the worker), so a port already in use ends the command
with one line naming the port (``CannotListen``) and nothing to undo, instead of uvicorn's
error after start-up, or a traceback through asyncio when ``dev`` runs two servers.

uvicorn's own access log is off: it logs the query string, where a careless client may put a
secret, and no duration. ``AccessLog`` writes one line per request instead: method, path
(phone numbers masked, no query), status, duration, tenant once authenticated and request
id; never another header or a body. The request id is the client's ``X-Request-Id`` when it
is a plain token of sane length (so a caller's tracing id links its logs to ours), a new one
otherwise, and it is answered in ``X-Request-Id`` and carried by every line the request logs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import secrets
import socket
import sys
import time
from collections.abc import Generator
from typing import Final

import uvicorn
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from otp_service.core.phone import mask
from otp_service.log import RequestContext, current_request

log = logging.getLogger("otp_service.access")

_NUMBER_IN_PATH: Final = re.compile(r"(?:\+|%2[Bb])([0-9]+)")
"""A phone number in a path (``/v1/opt-outs/+447400123456``), plus sign raw or encoded."""

_MAX_LOGGED_PATH: Final = 200
"""A longer path is cut: a scanner's 8 KiB path is not worth 8 KiB of log per request."""


_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
"""An incoming ``X-Request-Id`` kept as it is: no spaces, quotes or controls to forge lines."""

_HEADER: Final = b"x-request-id"


class CannotListen(Exception):
    """A socket could not be bound; the message is the one line the CLI prints."""


def url_of(sock: socket.socket) -> str:
    """The ``http://host:port`` a bound socket answers at (an IPv6 host in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listen(host: str, port: int, option: str = "--port") -> socket.socket:
    """Bind a TCP socket for ``host:port`` (uvicorn listens on it when it starts).

    Raises:
        CannotListen: the port is in use (naming ``option``, the flag that picks another
            one), the address is not this machine's, or the port needs privileges.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} on {host} is already in use (choose another with {option})"
        else:
            message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise CannotListen(message) from exc
    return sock


def _loggable(raw_path: bytes) -> str:
    """The path as received (still percent-encoded), printable, with phone numbers masked."""
    path = raw_path.decode("latin-1")
    path = "".join(c if c.isprintable() and c != " " else f"%{ord(c):02X}" for c in path)
    path = _NUMBER_IN_PATH.sub(lambda m: mask("+" + m.group(1)), path)
    return path if len(path) <= _MAX_LOGGED_PATH else path[:_MAX_LOGGED_PATH] + "..."


class AccessLog:
    """ASGI wrapper giving each HTTP request an id, and logging it once when answered.

    It wraps the whole app, so requests the router answers itself (404, 405) are logged
    too. The path is ``raw_path`` (or the decoded path re-encoded), never the query string.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through with its id; log it when the app is done with it."""
        if scope["type"] != ScopeType.HTTP:  # lifespan and websockets pass as they are
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers for an app that fails before answering
        raw_id = _request_id(scope)
        context = RequestContext(raw_id.decode("ascii"))
        token = current_request.set(context)

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (_HEADER, raw_id)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._app(scope, receive, send_logged)
        finally:
            if log.isEnabledFor(logging.INFO):
                raw = scope.get("raw_path") or scope["path"].encode("utf-8", "backslashreplace")
                fields = {
                    "method": scope["method"],
                    "path": _loggable(raw.split(b"?", 1)[0]),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                }
                if context.tenant_id is not None:
                    fields["tenant"] = context.tenant_id
                log.info("request", extra={"fields": fields})
            current_request.reset(token)


def _request_id(scope: Scope) -> bytes:
    """The client's ``X-Request-Id`` if it is a plain token, else a new random one."""
    for name, value in scope["headers"]:
        if name == _HEADER:
            return value if _REQUEST_ID.fullmatch(value) else secrets.token_hex(8).encode()
    return secrets.token_hex(8).encode()


class Server(uvicorn.Server):
    """A uvicorn server for a socket bound beforehand, announcing where it listens.

    ``own_signals=False`` leaves Ctrl-C to the caller, which then stops several servers
    at once (``dev``).
    """

    def __init__(
        self, config: uvicorn.Config, *, announce: str | None = None, own_signals: bool = True
    ) -> None:
        super().__init__(config)
        self._announce = announce
        self._own_signals = own_signals

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start, then print the announcement once the app's lifespan is up and listening."""
        await super().startup(sockets)
        if self.started and self._announce is not None:
            sys.stdout.write(self._announce + "\n")
            sys.stdout.flush()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Let uvicorn handle SIGINT and SIGTERM, unless the caller owns the signals."""
        if self._own_signals:
            with super().capture_signals():
                yield
        else:
            yield


def config_for(app: ASGIApp) -> uvicorn.Config:
    """The uvicorn settings for the CLI's servers: warnings only, our access log instead.

    ``log_config=None`` leaves uvicorn's loggers to ours, so its warnings come out in
    ``OTP_LOG_FORMAT`` too instead of a text line among the JSON ones.
    """
    return uvicorn.Config(AccessLog(app), log_level="warning", access_log=False, log_config=None)


def serve(app: ASGIApp, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM, after a "listening on" line."""
    server = Server(config_for(app), announce=f"otp-service listening on {url_of(sock)}")
    server.run(sockets=[sock])
