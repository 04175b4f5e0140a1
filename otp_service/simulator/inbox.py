"""The inbox page: what the simulator "sent", live, with buttons that answer as a phone would.

``GET /`` serves the page; its stylesheet and script come from the package
(``simulator/static``), never from a CDN, so it works offline. The page follows
``GET /_sim/stream``, a server-sent event stream of the inbox's changes, and answers through
the JSON endpoints the tests use too (``/_sim/inbound``, ``/_sim/messages/{id}/report``,
``/_sim/hold``).

Each stream ends after ``STREAM_SECONDS`` and the browser reconnects at once, sending the
id of the last event it saw (``<epoch>.<version>``), so nothing is missed or sent twice.
The streams are short because a server stopping gracefully (uvicorn, ``otp-service dev``)
waits for every open response to end: a stream held open forever would hold Ctrl-C too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import cache
from importlib import resources
from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from otp_service.simulator.state import SimulatorState

STREAM_SECONDS: Final = 2.0
"""How long one event stream stays open before the browser reconnects."""

_RETRY_MS: Final = 200
_STATIC: Final = {"inbox.css": "text/css", "inbox.js": "text/javascript"}
_SECURITY_HEADERS: Final = {
    # Everything is served from here: no CDN, no inline script, no framing by other sites.
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",
}


@cache
def _asset(name: str) -> str:
    """The text of a file in ``simulator/static`` (read once per process)."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def snapshot(state: SimulatorState) -> dict[str, Any]:
    """Everything the page shows, oldest first: the start of a stream, or a new epoch."""
    return {
        "hold": state.hold,
        "messages": [m.inbox_entry() for m in state.messages.values()],
        "replies": [r.inbox_entry() for r in state.replies.values()],
    }


def changes_since(state: SimulatorState, version: int) -> dict[str, Any]:
    """The messages and replies changed after ``version``, and the hold switch."""
    return {
        "hold": state.hold,
        "messages": [m.inbox_entry() for m in state.messages.values() if m.version > version],
        "replies": [r.inbox_entry() for r in state.replies.values() if r.version > version],
    }


def _seen(last_event_id: str | None, state: SimulatorState) -> int | None:
    """The version a reconnecting browser has seen, if it is of this inbox's epoch."""
    epoch, _, version = (last_event_id or "").partition(".")
    if epoch != state.epoch or not version.isdigit():
        return None
    return int(version)


async def events(
    state: SimulatorState, last_event_id: str | None, seconds: float = STREAM_SECONDS
) -> AsyncIterator[ServerSentEventMessage]:
    """The inbox's changes for ``seconds``: a snapshot when needed, then each change."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    seen = _seen(last_event_id, state)
    epoch = state.epoch
    while True:
        changed = state.next_change()
        if seen is None or state.epoch != epoch:
            kind, data, epoch = "snapshot", snapshot(state), state.epoch
        elif state.version > seen:
            kind, data = "update", changes_since(state, seen)
        else:
            kind = ""
        if kind:
            seen = state.version
            text = msgspec.json.encode(data).decode()
            yield ServerSentEventMessage(data=text, event=kind, id=f"{epoch}.{seen}")
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            async with asyncio.timeout(remaining):
                await changed.wait()
        except TimeoutError:
            return


@get("/", sync_to_thread=False, include_in_schema=False)
def page() -> Response[str]:
    """The inbox page (its data comes from the event stream)."""
    return Response(_asset("inbox.html"), media_type="text/html", headers=_SECURITY_HEADERS)


@get("/_sim/static/{name:str}", sync_to_thread=False, include_in_schema=False)
def static(name: FromPath[str]) -> Response[str]:
    """The page's stylesheet and script, from the package."""
    if name not in _STATIC:
        raise NotFoundException(f"no static file {name}")
    return Response(_asset(name), media_type=_STATIC[name], headers=_SECURITY_HEADERS)


@get("/_sim/stream", sync_to_thread=False)
def stream(
    inbox: NamedDependency[SimulatorState],
    last_event_id: Annotated[str | None, HeaderParameter(name="last-event-id")] = None,
) -> ServerSentEvent:
    """Server-sent events: ``snapshot`` (everything) then ``update`` (what changed)."""
    return ServerSentEvent(events(inbox, last_event_id), retry_duration=_RETRY_MS)


HANDLERS: Final[tuple[HTTPRouteHandler, ...]] = (page, static, stream)
