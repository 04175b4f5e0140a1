"""Telnyx Messaging API v2 client: one SMS per call, refusals told apart from outages.

A send is not idempotent (Telnyx documents no idempotency key for messaging), so a retry after
the request may have reached Telnyx could deliver a second code. The client therefore retries
only where the request provably never left (``never_sent``) or where Telnyx said it did nothing
(HTTP 429 with code 10011), and at most once.

The message text holds the code: it is never logged, and never put in an exception.

Reading Telnyx's opt-out list (``GET /messaging_optouts``) changes nothing at Telnyx, so it is
retried once after any transport error.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import httpx
import msgspec

from otp_service.core.model import Sender, SenderType
from otp_service.errors import ProviderError, ProviderUnavailable

_log = logging.getLogger(__name__)

ENDPOINTS: Final = {
    SenderType.LONG_CODE: "/messages/long_code",
    SenderType.SHORT_CODE: "/messages/short_code",
    SenderType.ALPHANUMERIC_SENDER_ID: "/messages/alphanumeric_sender_id",
    SenderType.NUMBER_POOL: "/messages/number_pool",
}
"""The send endpoint of each sender type, relative to the base URL (``.../v2``)."""

_OPT_OUTS_ENDPOINT: Final = "/messaging_optouts"

_TOO_MANY_REQUESTS = "10011"
_MAX_RETRY_AFTER_SECONDS = 1.0
_DEFAULT_RETRY_DELAY_SECONDS = 0.2
_HTTP_TOO_MANY_REQUESTS = 429
_HTTP_CLIENT_ERROR = range(400, 500)
_HTTP_SUCCESS = range(200, 300)


class OutboundSms(msgspec.Struct, frozen=True, kw_only=True):
    """One SMS to send: who sends it, to whom, and where Telnyx should report on it."""

    sender: Sender
    to: str
    text: str
    messaging_profile_id: str | None
    webhook_url: str | None


class SentMessage(msgspec.Struct, frozen=True, kw_only=True):
    """What Telnyx answered to an accepted send: its message id and first status."""

    id: str
    status: str


class ListedOptOut(msgspec.Struct, frozen=True, kw_only=True):
    """One of Telnyx's block rules: ``to`` opted out of the profile's messages."""

    to: str
    messaging_profile_id: str | None = None
    keyword: str | None = None
    created_at: str | None = None


class OptOutPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of Telnyx's opt-out list, and how many pages there are."""

    items: list[ListedOptOut]
    page_number: int
    total_pages: int


class _OptOutMetaView(msgspec.Struct):
    page_number: int
    total_pages: int


class _OptOutListView(msgspec.Struct):
    data: list[ListedOptOut]
    meta: _OptOutMetaView


class _ToView(msgspec.Struct):
    status: str | None = None


class _PayloadView(msgspec.Struct):
    id: str
    to: list[_ToView] = msgspec.field(default_factory=list)


class _SentView(msgspec.Struct):
    data: _PayloadView


class _ErrorView(msgspec.Struct):
    code: str | int | None = None
    title: str | None = None
    detail: str | None = None


class _ErrorsView(msgspec.Struct):
    """Both error shapes Telnyx uses: ``{"errors": [...]}`` and a bare error object."""

    errors: list[_ErrorView] | None = None
    code: str | int | None = None
    title: str | None = None
    detail: str | None = None


_sent_decoder: Final = msgspec.json.Decoder(_SentView)
_opt_outs_decoder: Final = msgspec.json.Decoder(_OptOutListView)
_errors_decoder: Final = msgspec.json.Decoder(_ErrorsView)


def never_sent(exc: httpx.TransportError) -> bool:
    """Whether the request provably never reached Telnyx, so a retry cannot send a second SMS.

    A connection that could not be made (refused, DNS failure, connect timeout) or a
    connection that could not be taken from the pool carried no bytes of the request.
    A read or write error, a read timeout or a dropped keep-alive connection may come after
    Telnyx accepted the message: retrying those could deliver the code twice.
    """
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _request_body(sms: OutboundSms) -> dict[str, str]:
    """Build the JSON body of the sender type's endpoint, with only the fields it accepts.

    Long and short codes send from a number and take no profile; an alphanumeric sender
    needs both a sender ID and a profile; a number pool picks the number itself, so it takes
    only the profile. A field the endpoint requires but the sender lacks is left out, and
    Telnyx's own refusal (10004) says so.
    """
    body = {"to": sms.to, "text": sms.text}
    if sms.sender.type is not SenderType.NUMBER_POOL and sms.sender.from_ is not None:
        body["from"] = sms.sender.from_
    if (
        sms.sender.type in {SenderType.ALPHANUMERIC_SENDER_ID, SenderType.NUMBER_POOL}
        and sms.messaging_profile_id is not None
    ):
        body["messaging_profile_id"] = sms.messaging_profile_id
    if sms.webhook_url is not None:
        body["webhook_url"] = sms.webhook_url
    return body


class TelnyxClient:
    """Sends SMS through Telnyx over an injected ``httpx.AsyncClient``.

    The composition root owns the client: its ``base_url`` (``https://api.telnyx.com/v2`` or
    the simulator's) and its timeout, which bounds every attempt.
    """

    def __init__(self, http: httpx.AsyncClient, *, api_key: str) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    async def send(self, sms: OutboundSms) -> SentMessage:
        """Send one SMS through the endpoint of its sender type.

        Raises:
            ProviderError: Telnyx refused the message (a 4xx other than 429); ``error_codes``
                holds Telnyx's codes.
            ProviderUnavailable: Telnyx could not be reached, timed out, failed (5xx), kept
                rate-limiting (429) or answered with something unreadable.
        """
        endpoint = ENDPOINTS[sms.sender.type]
        body = _request_body(sms)
        try:
            response = await self._http.post(endpoint, json=body, headers=self._headers)
        except httpx.TransportError as exc:
            if not never_sent(exc):
                raise _unreachable(exc) from exc
            unreachable = {"error": type(exc).__name__, "retry": "once"}
            _log.warning("telnyx unreachable", extra={"fields": unreachable})
            response = await self._last_attempt(endpoint, body)
        else:
            delay = _rate_limit_retry_delay(response)
            if delay is not None:
                limited = {"retry_in_s": round(delay, 2)}
                _log.warning("telnyx rate-limited a send", extra={"fields": limited})
                await asyncio.sleep(delay)
                response = await self._last_attempt(endpoint, body)
        return _sent_or_raise(response, sms.text)

    async def list_opt_outs(
        self, *, page: int, size: int, messaging_profile_id: str | None
    ) -> OptOutPage:
        """Read one page (1-based, ``size`` 1..250) of the account's opt-outs.

        ``messaging_profile_id`` narrows the list to one profile's block rules.

        Raises:
            ProviderError: Telnyx refused the request (a 4xx other than 429).
            ProviderUnavailable: Telnyx could not be reached twice, failed (5xx),
                rate-limited the request (429) or answered with something unreadable.
        """
        params = {"page[number]": str(page), "page[size]": str(size)}
        if messaging_profile_id is not None:
            params["filter[messaging_profile_id]"] = messaging_profile_id
        try:
            response = await self._http.get(
                _OPT_OUTS_ENDPOINT, params=params, headers=self._headers
            )
        except httpx.TransportError as exc:
            unreachable = {"error": type(exc).__name__, "retry": "read once"}
            _log.warning("telnyx unreachable", extra={"fields": unreachable})
            try:
                response = await self._http.get(
                    _OPT_OUTS_ENDPOINT, params=params, headers=self._headers
                )
            except httpx.TransportError as again:
                detail = f"Telnyx could not be reached: {type(again).__name__}"
                raise ProviderUnavailable(detail) from again
        return _opt_out_page_or_raise(response)

    async def _last_attempt(self, endpoint: str, body: dict[str, str]) -> httpx.Response:
        """Make the one retry a send gets: whatever it meets is final."""
        try:
            return await self._http.post(endpoint, json=body, headers=self._headers)
        except httpx.TransportError as exc:
            raise _unreachable(exc) from exc


def _unreachable(exc: httpx.TransportError) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"Telnyx could not be reached: {type(exc).__name__}", maybe_sent=not never_sent(exc)
    )


def _rate_limit_retry_delay(response: httpx.Response) -> float | None:
    """Return the delay before retrying a 429, or ``None`` when it must not be retried now.

    Only Telnyx's own "too many requests" (10011) proves nothing was sent. A ``Retry-After``
    longer than a second is not waited for: the caller has a deadline to answer by.
    """
    if response.status_code != _HTTP_TOO_MANY_REQUESTS:
        return None
    if _TOO_MANY_REQUESTS not in _error_codes(response.content):
        return None
    retry_after = response.headers.get("Retry-After")
    if retry_after is None:
        return _DEFAULT_RETRY_DELAY_SECONDS
    try:
        delay = float(retry_after)
    except ValueError:
        return None
    return delay if 0 <= delay <= _MAX_RETRY_AFTER_SECONDS else None


def _sent_or_raise(response: httpx.Response, text: str) -> SentMessage:
    status = response.status_code
    if status in _HTTP_SUCCESS:
        try:
            payload = _sent_decoder.decode(response.content).data
        except msgspec.DecodeError as exc:
            raise ProviderUnavailable(
                f"Telnyx answered {status} with an unreadable body", maybe_sent=True
            ) from exc
        first_status = payload.to[0].status if payload.to else None
        return SentMessage(id=payload.id, status=first_status or "queued")
    if status == _HTTP_TOO_MANY_REQUESTS:
        raise ProviderUnavailable("Telnyx is rate-limiting sends (HTTP 429)")
    if status in _HTTP_CLIENT_ERROR:
        codes = _error_codes(response.content)
        summary = _summary(response.content)
        if text:
            summary = summary.replace(text, "[message text]")
        raise ProviderError(
            f"Telnyx refused the message (HTTP {status}): {summary}", error_codes=codes
        )
    raise ProviderUnavailable(f"Telnyx failed to answer (HTTP {status})")


def _opt_out_page_or_raise(response: httpx.Response) -> OptOutPage:
    status = response.status_code
    if status in _HTTP_SUCCESS:
        try:
            view = _opt_outs_decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise ProviderUnavailable(
                f"Telnyx answered {status} to the opt-out list with an unreadable body"
            ) from exc
        return OptOutPage(
            items=view.data,
            page_number=view.meta.page_number,
            total_pages=view.meta.total_pages,
        )
    if status == _HTTP_TOO_MANY_REQUESTS:
        raise ProviderUnavailable("Telnyx is rate-limiting requests (HTTP 429)")
    if status in _HTTP_CLIENT_ERROR:
        raise ProviderError(
            f"Telnyx refused to list opt-outs (HTTP {status}): {_summary(response.content)}",
            error_codes=_error_codes(response.content),
        )
    raise ProviderUnavailable(f"Telnyx failed to answer (HTTP {status})")


def _errors(content: bytes) -> list[_ErrorView]:
    try:
        view = _errors_decoder.decode(content)
    except msgspec.DecodeError:
        return []
    if view.errors is not None:
        return view.errors
    if view.code is None:
        return []
    return [_ErrorView(code=view.code, title=view.title, detail=view.detail)]


def _error_codes(content: bytes) -> tuple[str, ...]:
    return tuple(str(error.code) for error in _errors(content) if error.code is not None)


def _summary(content: bytes) -> str:
    """Join Telnyx's titles and details: what the refusal says, for logs and operators."""
    parts = [
        ": ".join(part for part in (error.title, error.detail) if part)
        for error in _errors(content)
    ]
    return "; ".join(part for part in parts if part) or "no error details"
