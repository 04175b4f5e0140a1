"""Twilio's error body and codes: the service's errors as Twilio Verify reports them.

Twilio's SDKs raise ``TwilioRestException`` from ``{"code", "message", "more_info",
"status"}`` and their users branch on ``code``, so each service error maps to the Twilio
code with the same meaning. Two have no exact Twilio twin, and are chosen so that code
written for Twilio does the right thing:

- Telnyx unreachable (``provider_unavailable``) or Redis down (``service_unavailable``):
  503 with 20503, Twilio's "Service unavailable", which its users already retry later.
- Telnyx refused every sender (``provider_error``): 502 with 30008, Twilio's "Unknown
  error" of a message that could not be delivered; the message names Telnyx's own codes.
  Twilio's Verify-specific delivery codes (e.g. 60220, a channel awaiting approval) would
  claim a cause we do not know.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_502_BAD_GATEWAY,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from otp_service import errors

log = logging.getLogger("otp_service.api.twilio")

INVALID_PARAMETER: Final = 60200
MAX_CHECK_ATTEMPTS: Final = 60202
MAX_SEND_ATTEMPTS: Final = 60203
LANDLINE: Final = 60205
FRAUD_BLOCKED: Final = 60410
GEO_PERMISSION: Final = 60605
AUTHENTICATE: Final = 20003
NOT_FOUND: Final = 20404
TOO_MANY_REQUESTS: Final = 20429
INTERNAL_ERROR: Final = 20500
SERVICE_UNAVAILABLE: Final = 20503
OPTED_OUT: Final = 21610
UNKNOWN_DELIVERY_ERROR: Final = 30008
CONTENT_TYPE: Final = 19056

MORE_INFO: Final = "https://www.twilio.com/docs/errors/"


class TwilioErrorBody(msgspec.Struct, kw_only=True):
    """Twilio's error body (what ``TwilioRestException`` is made from)."""

    code: int
    message: str
    more_info: str
    status: int


class TwilioError(Exception):
    """An error of the Twilio surface, with Twilio's code and the HTTP status it goes with."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def invalid_parameter(name: str, why: str) -> TwilioError:
    """60200 naming the form parameter, as Twilio words it."""
    message = f"Invalid parameter `{name}`: {why}"
    return TwilioError(HTTP_400_BAD_REQUEST, INVALID_PARAMETER, message)


def not_found(path: str) -> TwilioError:
    """20404, Twilio's answer for a resource that is not (or no longer) there."""
    return TwilioError(
        HTTP_404_NOT_FOUND, NOT_FOUND, f"The requested resource {path} was not found"
    )


_LIMIT_CODES: Final = {
    "max_sends": (HTTP_429_TOO_MANY_REQUESTS, MAX_SEND_ATTEMPTS, "Max send attempts reached"),
    "prefix": (
        HTTP_403_FORBIDDEN,
        FRAUD_BLOCKED,
        "Verification delivery attempt blocked: the fraud guard blocked this number range",
    ),
}
"""Limits with a Twilio code of their own; every other limit is 20429 Too Many Requests."""

_INVALID_FIELDS: Final[dict[type[errors.OtpError], str]] = {
    errors.InvalidPhoneNumber: "To",
    errors.InvalidCodeFormat: "Code",
}

_PLAIN: Final[dict[type[errors.OtpError], tuple[int, int, str]]] = {
    errors.UnsupportedNumberType: (HTTP_400_BAD_REQUEST, LANDLINE, "Invalid parameter `To`"),
    errors.DestinationNotAllowed: (
        HTTP_403_FORBIDDEN,
        GEO_PERMISSION,
        "Verification delivery attempt blocked: geo permission",
    ),
    errors.RecipientOptedOut: (
        HTTP_400_BAD_REQUEST,
        OPTED_OUT,
        "Attempt to send to unsubscribed recipient",
    ),
    errors.ProviderUnavailable: (
        HTTP_503_SERVICE_UNAVAILABLE,
        SERVICE_UNAVAILABLE,
        "Service unavailable",
    ),
    errors.StoreUnavailable: (
        HTTP_503_SERVICE_UNAVAILABLE,
        SERVICE_UNAVAILABLE,
        "Service unavailable",
    ),
}
"""Errors that map one to one: status, Twilio code, and the message before our detail."""


def twilio_error_of(exc: errors.OtpError, path: str) -> TwilioError:  # noqa: PLR0911  (a map)
    """The Twilio error for a service error raised while answering ``path``.

    A verification that ended (approved, canceled, expired, failed) is 20404: Twilio's rule
    is that such a verification is no longer there. The check route reports the end by
    attempts itself (60202), see ``controller``.
    """
    if type(exc) in _PLAIN:
        status, code, message = _PLAIN[type(exc)]
        return TwilioError(status, code, f"{message}: {exc.detail}")
    if isinstance(exc, errors.RateLimited):
        status, code, message = _LIMIT_CODES.get(
            exc.limit, (HTTP_429_TOO_MANY_REQUESTS, TOO_MANY_REQUESTS, "Too many requests")
        )
        return TwilioError(
            status, code, f"{message} ({exc.detail})", {"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, errors.InvalidInput | errors.MalformedBody | errors.UnsupportedMediaType):
        return invalid_parameter(_INVALID_FIELDS.get(type(exc), "body"), exc.detail)
    if isinstance(exc, errors.Unauthorized):
        return unauthorized()
    if isinstance(exc, errors.NotFound | errors.VerificationNotPending):
        return not_found(path)
    if isinstance(exc, errors.ProviderError):
        codes = ", ".join(exc.error_codes) or "none"
        return TwilioError(
            HTTP_502_BAD_GATEWAY,
            UNKNOWN_DELIVERY_ERROR,
            f"The SMS could not be sent: {exc.detail} (Telnyx error codes: {codes})",
        )
    return internal_error()


def unauthorized() -> TwilioError:
    """20003, with the challenge Twilio's API sends."""
    return TwilioError(
        HTTP_401_UNAUTHORIZED,
        AUTHENTICATE,
        "Authenticate",
        {"WWW-Authenticate": 'Basic realm="Twilio API"'},
    )


def internal_error() -> TwilioError:
    """20500: a bug or a crash, never bad input."""
    return TwilioError(HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR, "Internal server error")


def twilio_response(error: TwilioError) -> Response[TwilioErrorBody]:
    """Render a Twilio error as Twilio does: JSON, the status in the body too."""
    body = TwilioErrorBody(
        code=error.code,
        message=error.message,
        more_info=f"{MORE_INFO}{error.code}",
        status=error.status,
    )
    return Response(
        body, status_code=error.status, media_type="application/json", headers=error.headers
    )


def _handle_twilio(_: Request[Any, Any, Any], exc: TwilioError) -> Response[TwilioErrorBody]:
    return twilio_response(exc)


def _handle_otp(request: Request[Any, Any, Any], exc: errors.OtpError) -> Response[TwilioErrorBody]:
    return twilio_response(twilio_error_of(exc, _resource(request)))


def _handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[TwilioErrorBody]:
    """Litestar's own errors inside these routes (a body over ``OTP_MAX_BODY_BYTES``...).

    Unknown paths and methods are answered before any route is chosen, so by the app's
    handlers, as problem documents like everywhere else.
    """
    if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        # The path is on the request's access line, its numbers masked.
        failed = {"status": exc.status_code, "method": request.method}
        log.error("http error", extra={"fields": failed})
        return twilio_response(internal_error())
    return twilio_response(TwilioError(exc.status_code, INVALID_PARAMETER, exc.detail))


def _handle_unexpected(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[TwilioErrorBody]:
    log.error("unhandled error", extra={"fields": {"method": request.method}}, exc_info=exc)
    return twilio_response(internal_error())


def _resource(request: Request[Any, Any, Any]) -> str:
    """The path Twilio names in a 20404: the resource's, without the ``/twilio`` mount."""
    return request.url.path.removeprefix("/twilio")


EXCEPTION_HANDLERS: Final = {
    TwilioError: _handle_twilio,
    errors.OtpError: _handle_otp,
    HTTPException: _handle_http,
    Exception: _handle_unexpected,
}
"""The Twilio surface's handlers: every error on it leaves in Twilio's body, never a problem."""
