"""RFC 9457 problem documents: the only place that knows which error is which HTTP status.

Every error leaves the service as ``application/problem+json`` with a stable ``code``:
the service's own ``OtpError`` tree (malformed bodies included, see ``api.bodies``),
Litestar's request errors (invalid fields, oversized bodies, unknown routes and methods)
and, as a last resort, anything unexpected, which is logged with its traceback and answered
500 without one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any, Final, get_args

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_405_METHOD_NOT_ALLOWED,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_502_BAD_GATEWAY,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from otp_service import errors

log = logging.getLogger("otp_service.problems")

PROBLEM_JSON: Final = "application/problem+json"
TYPE_BASE: Final = "https://otp-service.dev/problems/"

_STATUS: Final[dict[type[errors.OtpError], int]] = {
    errors.MalformedBody: HTTP_400_BAD_REQUEST,
    errors.UnsupportedMediaType: HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    errors.InvalidInput: HTTP_422_UNPROCESSABLE_ENTITY,
    errors.Unauthorized: HTTP_401_UNAUTHORIZED,
    errors.InvalidSignature: HTTP_401_UNAUTHORIZED,
    errors.DestinationNotAllowed: HTTP_403_FORBIDDEN,
    errors.NotFound: HTTP_404_NOT_FOUND,
    errors.VerificationNotPending: HTTP_409_CONFLICT,
    errors.RecipientOptedOut: HTTP_409_CONFLICT,
    errors.IdempotencyInFlight: HTTP_409_CONFLICT,
    errors.RateLimited: HTTP_429_TOO_MANY_REQUESTS,
    errors.ProviderError: HTTP_502_BAD_GATEWAY,
    errors.ProviderUnavailable: HTTP_503_SERVICE_UNAVAILABLE,
    errors.StoreUnavailable: HTTP_503_SERVICE_UNAVAILABLE,
}

_GENERIC_CODES: Final = {
    HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    HTTP_413_REQUEST_ENTITY_TOO_LARGE: "payload_too_large",
    HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
}

_BAD_REQUEST: Final = "bad_request"
"""The code of any other 4xx the framework raises."""
_INTERNAL_ERROR: Final = "internal_error"
"""The code of a 5xx that is not the service's own: a bug or a crash, never bad input."""


def _subclasses(cls: type[errors.OtpError]) -> Iterator[type[errors.OtpError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _subclasses(sub)


PROBLEM_CODES: Final = tuple(
    sorted(
        {cls.code for cls in _subclasses(errors.OtpError)}
        | set(get_args(errors.NotFoundCode))
        | set(_GENERIC_CODES.values())
        | {_BAD_REQUEST, _INTERNAL_ERROR}
    )
)
"""Every ``code`` the service can answer with: the ``enum`` of ``Problem.code``.

Built from the code base itself (the error classes, the 404 codes, the framework's errors),
so the OpenAPI document lists a new code as soon as the service can answer it, and the
contract fuzzing holds every answer to the list.
"""

_FIELD_CODES: Final = {
    "phone_number": errors.InvalidPhoneNumber,
    "code": errors.InvalidCodeFormat,
}


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document with the service's extension members."""

    type: str
    title: str
    status: int
    detail: str
    code: Annotated[
        str,
        msgspec.Meta(
            description="Stable machine-readable name of the error (docs/api.md says what each "
            "means)",
            extra_json_schema={"enum": list(PROBLEM_CODES)},
        ),
    ]
    errors: list[dict[str, str]] | None = None
    retry_after: int | None = None
    limit: str | None = None
    verification_status: str | None = None
    verification_id: str | None = None
    error_codes: list[str] | None = None


def status_of(exc: errors.OtpError) -> int:
    """Return the HTTP status of a service error."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return HTTP_500_INTERNAL_SERVER_ERROR


def problem_of(exc: errors.OtpError) -> tuple[Problem, dict[str, str]]:
    """Return the problem document of a service error and the headers that go with it."""
    status = status_of(exc)
    problem = Problem(
        type=TYPE_BASE + exc.code,
        title=exc.code.replace("_", " ").capitalize(),
        status=status,
        detail=exc.detail,
        code=exc.code,
    )
    headers: dict[str, str] = {}
    if isinstance(exc, errors.InvalidInput) and exc.errors:
        problem.errors = [dict(entry) for entry in exc.errors]
    if isinstance(exc, errors.RateLimited):
        problem.retry_after, problem.limit = exc.retry_after, exc.limit
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, errors.VerificationNotPending):
        problem.verification_status = exc.status
    if isinstance(exc, errors.ProviderError):
        problem.verification_id = exc.verification_id
        problem.error_codes = list(exc.error_codes)
    if isinstance(exc, errors.ProviderUnavailable):
        problem.verification_id = exc.verification_id
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return problem, headers


def problem_response(exc: errors.OtpError) -> Response[Problem]:
    """Render a service error as a problem+json response."""
    problem, headers = problem_of(exc)
    return Response(problem, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(exc: ValidationException) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    extra: Any = exc.extra
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict) and "field" in item:  # a body's errors (``api.bodies``)
            entries.append({"field": str(item["field"]) or "body", "message": item["message"]})
            continue
        message = str(item.get("message", "invalid value")) if isinstance(item, dict) else str(item)
        path, what = errors.split_validation_message(message)
        key = str(item.get("key", "")) if isinstance(item, dict) else ""
        field = path or key
        field = "body" if field in {"", "data"} else field
        entries.append({"field": field, "message": what})
    return entries or [{"field": "body", "message": exc.detail}]


def _from_http_exception(exc: HTTPException) -> errors.OtpError | None:
    if isinstance(exc, ValidationException):
        fields = _field_errors(exc)
        top = fields[0]["field"].split(".")[0].split("[")[0]
        error_type = _FIELD_CODES.get(top, errors.InvalidInput)
        return error_type(f"{fields[0]['field']}: {fields[0]['message']}", fields)
    if isinstance(exc, NotAuthorizedException):
        return errors.Unauthorized(exc.detail)
    if isinstance(exc, NotFoundException):
        return errors.NotFound("no such resource", "not_found")
    return None


def _generic(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response[Problem]:
    problem = Problem(
        type=TYPE_BASE + code,
        title=code.replace("_", " ").capitalize(),
        status=status,
        detail=detail,
        code=code,
    )
    return Response(problem, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def handle_otp_error(_: Request[Any, Any, Any], exc: errors.OtpError) -> Response[Problem]:
    """Exception handler for the service's own errors."""
    return problem_response(exc)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Exception handler for Litestar's errors: always a problem document, never HTML."""
    mapped = _from_http_exception(exc)
    if mapped is not None:
        return problem_response(mapped)
    if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        # The path is on the request's access line, its numbers masked.
        failed = {"status": exc.status_code, "method": request.method}
        log.error("http error", extra={"fields": failed})
        return _generic(exc.status_code, _INTERNAL_ERROR, "the service failed; try again")
    code = _GENERIC_CODES.get(exc.status_code, _BAD_REQUEST)
    # Litestar's headers say how to do better: a 405's ``Allow`` lists the path's methods.
    return _generic(exc.status_code, code, exc.detail, dict(exc.headers or {}))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Last resort: log the traceback, answer 500 without it."""
    log.error("unhandled error", extra={"fields": {"method": request.method}}, exc_info=exc)
    return _generic(HTTP_500_INTERNAL_SERVER_ERROR, _INTERNAL_ERROR, "the service failed")


EXCEPTION_HANDLERS: Final = {
    errors.OtpError: handle_otp_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}

_DESCRIPTIONS: Final = {
    400: "`malformed_json`: the body is not JSON (syntax, UTF-8 or nesting too deep)",
    401: "`unauthorized` or `invalid_signature`",
    403: "`destination_not_allowed`",
    404: "Not found (`verification_not_found`, `tenant_not_found`, `api_key_not_found`, "
    "`block_not_found`)",
    409: "`verification_not_pending`, `recipient_opted_out` or `idempotency_in_flight`",
    413: "`payload_too_large`",
    415: "`unsupported_media_type`: the body is not declared `application/json` "
    "(charset, if any, `utf-8`) or `application/*+json`",
    422: "Invalid input (`validation_error`, `invalid_phone_number`, "
    "`unsupported_number_type`, `invalid_code_format`, `idempotency_conflict`)",
    429: "`rate_limited`, with `Retry-After`, `retry_after` and `limit`",
    502: "`provider_error`: Telnyx refused to send",
    503: "`provider_unavailable` (Telnyx) or `service_unavailable` (Redis)",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries documenting the problem documents a route can answer with."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS[status],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }
