"""Logging for the processes the CLI runs: one line per request or event, to stderr.

``serve`` writes one JSON object a line (``OTP_LOG_FORMAT=json``) so a log pipeline reads
real keys instead of parsing prose; ``dev`` keeps text for the human at the terminal. Both
formats carry the same record: an event name as the message and its fields in
``extra={"fields": {...}}``, which the JSON format writes as keys and the text format as
``key=value`` after the name. Lines written while a request is served carry its
``request_id`` (set by ``serving.AccessLog``) so one request's lines can be found together.

Nothing the service logs carries a code or a full phone number (numbers go through
``core.phone.mask``), nor a tenant's event URL whole: httpx logs every request's URL at INFO,
credentials and query included, and a tenant's URL may carry ``user:password@`` or a token.
So httpx's (and httpcore's) per-request lines are kept off (WARNING and above still show),
and the service logs its own lines instead: the Telnyx client's sends
(``usecases.delivery``) and the event poster's deliveries, which name only the receiver's
origin. They were also a line per outbound request on the hot path, for nothing.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Literal

import msgspec

LogFormat = Literal["json", "text"]


class RequestContext:
    """What the lines of one request share: its id and, once authenticated, its tenant.

    Mutable on purpose: Litestar may resolve dependencies in child tasks, which see the
    context variable's value (this object) but cannot set it for the request's own task.
    """

    __slots__ = ("request_id", "tenant_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.tenant_id: str | None = None


current_request: Final[ContextVar[RequestContext | None]] = ContextVar(
    "current_request", default=None
)
"""The request being served (set by ``serving.AccessLog``), for every line logged meanwhile."""


def note_tenant(tenant_id: str) -> None:
    """Record the tenant the request being served authenticated as, for its access line."""
    context = current_request.get()
    if context is not None:
        context.tenant_id = tenant_id


_encoder: Final = msgspec.json.Encoder(enc_hook=str)
"""``str`` for what JSON has no type for, so a stray object never loses the line."""

_RESERVED: Final = frozenset({"ts", "level", "logger", "msg", "request_id", "exc"})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] | None = getattr(record, "fields", None)
    return fields if fields is not None else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``msg``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Encode the record; a field never overwrites the envelope's keys."""
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line[key if key not in _RESERVED else f"field_{key}"] = value
        context = current_request.get()
        if context is not None:
            line["request_id"] = context.request_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger event key=value ... request_id=...``, for a human at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  (stdlib's name)
        """The usual line, then the record's fields (the traceback, if any, follows)."""
        parts = [super().formatMessage(record)]
        parts.extend(f"{key}={value}" for key, value in _fields(record).items())
        context = current_request.get()
        if context is not None:
            parts.append(f"request_id={context.request_id}")
        return " ".join(parts)


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Send the service's logs to stderr at ``level`` in ``log_format``; httpx's lines stay off."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
