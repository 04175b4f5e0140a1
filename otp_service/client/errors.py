"""The exceptions the client raises: one per family of answer a caller branches on.

Every error of the service is an RFC 9457 problem with a stable ``code`` (API.md); the
client raises the class of that code, so ``except RateLimited`` reads like the contract::

    OtpError                      anything the client raises
    ├── NetworkError              no answer: connection refused, reset, timed out
    ├── InvalidSignature          verify_event: the event is not the service's
    │   └── ExpiredSignature      ... or signed too long ago (a replay)
    ├── AuthenticationError       401 unauthorized: missing, unknown or revoked API key
    ├── Forbidden                 403
    │   └── DestinationNotAllowed     destination_not_allowed
    ├── NotFound                  404 verification_not_found (or another tenant's)
    ├── Conflict                  409
    │   ├── VerificationNotPending    verification_not_pending (``verification_status``)
    │   ├── RecipientOptedOut         recipient_opted_out
    │   └── IdempotencyInFlight       idempotency_in_flight
    ├── ValidationError           400 / 413 / 415 / 422 (``errors``: one entry per field)
    │   ├── InvalidPhoneNumber        invalid_phone_number
    │   ├── UnsupportedNumberType     unsupported_number_type
    │   ├── InvalidCodeFormat         invalid_code_format
    │   └── IdempotencyConflict       idempotency_conflict
    ├── RateLimited               429 rate_limited (``retry_after``, ``limit``)
    ├── ProviderError             502 provider_error: Telnyx refused every sender
    └── ServerError               other 5xx, or an answer the client cannot read
        └── ServiceUnavailable        503 service_unavailable (the service's Redis)
            └── ProviderUnavailable   503 provider_unavailable (Telnyx unreachable)

A code this client does not know yet falls back on its HTTP status's family, so a newer
service's new code still lands in the right ``except``. A 502 without the ``provider_error``
code (a proxy's) is a ``ServerError``: Telnyx was not necessarily involved.
"""

from __future__ import annotations

from typing import ClassVar

from otp_service.client.models import Problem


class OtpError(Exception):
    """Base of every client error; the members of the problem document, typed.

    ``status`` is the HTTP status (``None`` when there was no answer or no request: network
    errors, event signatures); ``code`` the problem's stable name; ``retry_after`` the
    seconds to wait, from the problem or the ``Retry-After`` header; ``limit`` which limit
    a ``rate_limited`` hit; ``problem`` the whole document, extension members included.
    """

    default_code: ClassVar[str] = "error"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str = "",
        retry_after: int | None = None,
        problem: Problem | None = None,
    ) -> None:
        super().__init__(f"{status} {code or self.default_code}: {detail}" if status else detail)
        self.detail = detail
        self.status = status
        self.code = code or self.default_code
        self.title = title
        self.retry_after = retry_after
        self.problem = problem
        self.limit = problem.limit if problem else None


class NetworkError(OtpError):
    """No answer from the service: the connection failed, was cut, or timed out.

    The original ``httpx`` exception is the ``__cause__``. After a timeout the request may
    have been carried out (a start may have sent its SMS): repeat a start with the same
    ``idempotency_key`` to get its answer without sending twice.
    """

    default_code = "network_error"


class InvalidSignature(OtpError):
    """A tenant event whose signature does not verify with the service's key: ignore it."""

    default_code = "invalid_signature"


class ExpiredSignature(InvalidSignature):
    """A correctly signed event whose timestamp is outside the tolerance: a replay."""


class AuthenticationError(OtpError):
    """401: the API key is missing, unknown or revoked."""

    default_code = "unauthorized"


class Forbidden(OtpError):
    """403: the tenant may not do this."""

    default_code = "forbidden"


class DestinationNotAllowed(Forbidden):
    """403: the tenant's settings allow no sending to the number's country."""

    default_code = "destination_not_allowed"


class NotFound(OtpError):
    """404: no such verification for this tenant (or none pending for the number)."""

    default_code = "verification_not_found"


class Conflict(OtpError):
    """409: the request cannot be carried out in the resource's present state."""

    default_code = "conflict"


class VerificationNotPending(Conflict):
    """409: the verification has ended; ``verification_status`` says how."""

    default_code = "verification_not_pending"

    @property
    def verification_status(self) -> str | None:
        """The ended verification's status (``approved``, ``expired``, ...)."""
        return self.problem.verification_status if self.problem else None


class RecipientOptedOut(Conflict):
    """409: the recipient opted out (replied STOP, or the carrier reported it)."""

    default_code = "recipient_opted_out"


class IdempotencyInFlight(Conflict):
    """409: a request with the same ``Idempotency-Key`` is still being answered."""

    default_code = "idempotency_in_flight"


class ValidationError(OtpError):
    """400, 413, 415 or 422: the request is not acceptable; ``detail`` says why."""

    default_code = "validation_error"

    @property
    def errors(self) -> list[dict[str, str]]:
        """One ``{"field", "message"}`` entry per bad field, when the service lists them."""
        return list(self.problem.errors or []) if self.problem else []


class InvalidPhoneNumber(ValidationError):
    """422: not an E.164 number, or not a valid one by libphonenumber's metadata."""

    default_code = "invalid_phone_number"


class UnsupportedNumberType(ValidationError):
    """422: a number that must not receive codes (landline, premium rate, ...)."""

    default_code = "unsupported_number_type"


class InvalidCodeFormat(ValidationError):
    """422: not exactly the verification's number of ASCII digits (uses no attempt)."""

    default_code = "invalid_code_format"


class IdempotencyConflict(ValidationError):
    """422: an ``Idempotency-Key`` reused with another request body."""

    default_code = "idempotency_conflict"


class RateLimited(OtpError):
    """429: a limit was hit and nothing was sent.

    ``retry_after`` is the seconds until it clears; ``limit`` names it: ``resend_cooldown``,
    ``max_sends``, ``phone_number``, ``tenant``, ``country``, ``prefix`` or ``key:<name>``.
    """

    default_code = "rate_limited"


class ProviderError(OtpError):
    """502: Telnyx refused the send for every sender; the verification is ``failed``."""

    default_code = "provider_error"

    @property
    def verification_id(self) -> str | None:
        """The failed verification, readable with ``get``."""
        return self.problem.verification_id if self.problem else None

    @property
    def error_codes(self) -> list[str]:
        """Telnyx's error codes."""
        return list(self.problem.error_codes or []) if self.problem else []


class ServerError(OtpError):
    """5xx, or an answer the client cannot read: the service failed; try again later."""

    default_code = "internal_error"


class ServiceUnavailable(ServerError):
    """503: the service cannot work right now (its Redis, or Telnyx); try again later."""

    default_code = "service_unavailable"


class ProviderUnavailable(ServiceUnavailable):
    """503: Telnyx could not be reached; the SMS may or may not have left."""

    default_code = "provider_unavailable"

    @property
    def verification_id(self) -> str | None:
        """The verification the start created, when it got that far."""
        return self.problem.verification_id if self.problem else None


_BY_CODE: dict[str, type[OtpError]] = {
    cls.default_code: cls
    for cls in (
        AuthenticationError,
        DestinationNotAllowed,
        VerificationNotPending,
        RecipientOptedOut,
        IdempotencyInFlight,
        ValidationError,
        InvalidPhoneNumber,
        UnsupportedNumberType,
        InvalidCodeFormat,
        IdempotencyConflict,
        RateLimited,
        ProviderError,
        ServiceUnavailable,
        ProviderUnavailable,
    )
}

_BY_STATUS: dict[int, type[OtpError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: ValidationError,
    415: ValidationError,
    422: ValidationError,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_class(status: int, code: str | None) -> type[OtpError]:
    """The exception for a problem: by its ``code``, else by its status's family."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else OtpError  # noqa: PLR2004
