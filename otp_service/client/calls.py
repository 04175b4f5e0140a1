"""What each client method sends and how its answer is read, for both clients.

``OtpClient`` and ``AsyncOtpClient`` differ only in how they wait for the answer; each of
their methods is ``send(calls.<method>(...))``. Building the request and turning the answer
into a struct or an exception happens here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from otp_service import __version__
from otp_service.client.errors import NetworkError, OtpError, ServerError, error_class
from otp_service.client.models import (
    CheckResult,
    OptOut,
    Problem,
    PublicKey,
    Stats,
    Verification,
)

T = TypeVar("T")

USER_AGENT = f"otp-service-python/{__version__}"
DEFAULT_TIMEOUT_SECONDS = 15.0
"""A little over the service's own bound (no request waits longer than 10 s for an answer)."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and the struct its success answer decodes into."""

    method: str
    path: str
    result: type[T]
    body: Mapping[str, object] | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


def _segment(value: str) -> str:
    """A path segment: ``+`` of a phone number, ``/`` of a bad id stay inside it."""
    return quote(value, safe="")


def _present(**members: object) -> dict[str, object]:
    """The members given: left out, the service applies its defaults."""
    return {name: value for name, value in members.items() if value is not None}


def start(
    phone_number: str,
    *,
    locale: str | None,
    code_length: int | None,
    metadata: Mapping[str, str] | None,
    rate_limit_keys: Mapping[str, str] | None,
    idempotency_key: str | None,
) -> Call[Verification]:
    """``POST /v1/verifications``."""
    body = _present(
        phone_number=phone_number,
        locale=locale,
        code_length=code_length,
        metadata=dict(metadata) if metadata else None,
        rate_limit_keys=dict(rate_limit_keys) if rate_limit_keys else None,
    )
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
    return Call("POST", "/v1/verifications", Verification, body=body, headers=headers)


def check(
    verification_id: str, code: str, *, rate_limit_keys: Mapping[str, str] | None
) -> Call[CheckResult]:
    """``POST /v1/verifications/{id}/check``."""
    body = _present(code=code, rate_limit_keys=dict(rate_limit_keys) if rate_limit_keys else None)
    path = f"/v1/verifications/{_segment(verification_id)}/check"
    return Call("POST", path, CheckResult, body=body)


def check_phone_number(
    phone_number: str, code: str, *, rate_limit_keys: Mapping[str, str] | None
) -> Call[CheckResult]:
    """``POST /v1/verifications/check``."""
    body = _present(
        phone_number=phone_number,
        code=code,
        rate_limit_keys=dict(rate_limit_keys) if rate_limit_keys else None,
    )
    return Call("POST", "/v1/verifications/check", CheckResult, body=body)


def get(verification_id: str) -> Call[Verification]:
    """``GET /v1/verifications/{id}``."""
    return Call("GET", f"/v1/verifications/{_segment(verification_id)}", Verification)


def cancel(verification_id: str) -> Call[Verification]:
    """``POST /v1/verifications/{id}/cancel``."""
    path = f"/v1/verifications/{_segment(verification_id)}/cancel"
    return Call("POST", path, Verification)


def opt_out(phone_number: str) -> Call[OptOut]:
    """``GET /v1/opt-outs/{phone_number}``."""
    return Call("GET", f"/v1/opt-outs/{_segment(phone_number)}", OptOut)


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone: give an aware datetime (e.g. UTC)")
    return moment.isoformat()


def stats(from_: datetime | None, to: datetime | None) -> Call[Stats]:
    """``GET /v1/stats?from=&to=``."""
    params = {name: _rfc3339(moment) for name, moment in (("from", from_), ("to", to)) if moment}
    return Call("GET", "/v1/stats", Stats, params=params)


def webhook_public_key() -> Call[PublicKey]:
    """``GET /v1/webhook-public-key``."""
    return Call("GET", "/v1/webhook-public-key", PublicKey)


def accepted_keys(answer: PublicKey) -> list[str]:
    """The keys to accept events from (``public_key`` alone from a server without ``keys``)."""
    return [entry.public_key for entry in answer.keys] or [answer.public_key]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the service is and who is asking: what every request of a client carries."""

    base_url: str
    api_key: str

    def request(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        """The HTTP request of ``call`` (built by ``http``, so its own headers apply too)."""
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        content = None
        if call.body is not None:
            content = msgspec.json.encode(call.body)
            headers["Content-Type"] = "application/json"
        return http.build_request(
            call.method,
            self.base_url.rstrip("/") + call.path,
            params=dict(call.params) or None,
            headers=headers | dict(call.headers),
            content=content,
        )


def answer(call: Call[T], response: httpx.Response) -> T:
    """The struct of a success answer; the typed exception of any other."""
    if not response.is_success:
        raise error_of(response)
    try:
        return msgspec.json.decode(response.content, type=call.result)
    except msgspec.DecodeError as exc:
        raise ServerError(
            f"{call.method} {call.path} answered {response.status_code} with a body the "
            f"client cannot read: {exc}",
            status=response.status_code,
            code="unreadable_response",
        ) from exc


def error_of(response: httpx.Response) -> OtpError:
    """The exception of an error answer, from its problem document when it has one."""
    problem: Problem | None
    try:
        problem = msgspec.json.decode(response.content, type=Problem)
    except msgspec.DecodeError:
        problem = None  # not a problem document: a proxy's page, say; its status still tells
    status = response.status_code
    code = problem.code if problem else None
    detail = (problem.detail if problem else "") or response.reason_phrase
    retry_after = problem.retry_after if problem else None
    if retry_after is None:
        retry_after = _seconds(response.headers.get("Retry-After"))
    return error_class(status, code)(
        detail,
        status=status,
        code=code,
        title=problem.title if problem else response.reason_phrase,
        retry_after=retry_after,
        problem=problem,
    )


def _seconds(header: str | None) -> int | None:
    """``Retry-After`` as delay-seconds (the service never sends the HTTP-date form)."""
    return int(header) if header is not None and header.strip().isdigit() else None


def network_error(request: httpx.Request, exc: httpx.TransportError) -> NetworkError:
    """The exception for a request that got no answer."""
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "got no answer"
    return NetworkError(f"{request.method} {request.url} {what}: {type(exc).__name__}: {exc}")
