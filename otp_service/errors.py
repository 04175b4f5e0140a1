"""The one exception tree of the service.

Nothing here knows HTTP: ``problems.py`` maps each class to a status and a stable ``code``.
Adapters translate library errors at their boundary (``raise StoreUnavailable(...) from exc``)::

    OtpError
    ├── MalformedBody                     400 malformed_json (not JSON, not UTF-8, nested too deep)
    ├── UnsupportedMediaType              415 unsupported_media_type (a body that is not JSON)
    ├── InvalidInput                      422, field-level validation of a request body
    │   ├── InvalidPhoneNumber            422 invalid_phone_number
    │   ├── UnsupportedNumberType         422 unsupported_number_type
    │   ├── InvalidCodeFormat             422 invalid_code_format
    │   └── IdempotencyConflict           422 idempotency_conflict
    ├── Unauthorized                      401 unauthorized
    ├── InvalidSignature                  401 invalid_signature
    ├── DestinationNotAllowed             403 destination_not_allowed
    ├── NotFound                          404 (NotFoundCode: verification_not_found, ...)
    ├── VerificationNotPending            409 verification_not_pending
    ├── RecipientOptedOut                 409 recipient_opted_out
    ├── IdempotencyInFlight               409 idempotency_in_flight
    ├── RateLimited                       429 rate_limited
    ├── ProviderError                     502 provider_error (Telnyx refused every sender)
    ├── ProviderUnavailable               503 provider_unavailable (Telnyx could not be reached)
    └── StoreUnavailable                  503 service_unavailable (Redis could not be reached)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

_AT_PATH = re.compile(r" - at (?:`key` in )?`\$\.?([^`]*)`$")


def split_validation_message(message: str) -> tuple[str, str]:
    """Split msgspec's ``"<what is wrong> - at `$.a.b`"`` into ``("a.b", what is wrong)``.

    A bad dict key reads ``"... - at `key` in `$.a.b`"``: the path is then the dict's. The
    path is empty when the message names none (the whole document is wrong).
    """
    match = _AT_PATH.search(message)
    return (match.group(1) if match else ""), _AT_PATH.sub("", message)


class OtpError(Exception):
    """Base of every error the service answers with a problem document."""

    code: str = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedBody(OtpError):
    """A body that cannot be read as JSON at all: a syntax error, invalid UTF-8, deep nesting."""

    code = "malformed_json"


class UnsupportedMediaType(OtpError):
    """A request body declared as something other than JSON (or with no ``Content-Type``)."""

    code = "unsupported_media_type"


class InvalidInput(OtpError):
    """A request body that does not satisfy its schema; ``errors`` has one entry per field."""

    code = "validation_error"

    def __init__(self, detail: str, errors: Sequence[Mapping[str, str]] = ()) -> None:
        super().__init__(detail)
        self.errors = list(errors)


class InvalidPhoneNumber(InvalidInput):
    """The number is not E.164 or not a valid number by libphonenumber's metadata."""

    code = "invalid_phone_number"


class UnsupportedNumberType(InvalidInput):
    """The number is of a type that cannot or must not receive codes (landline, premium rate)."""

    code = "unsupported_number_type"


class InvalidCodeFormat(InvalidInput):
    """The submitted code is not exactly the verification's number of ASCII digits."""

    code = "invalid_code_format"


class IdempotencyConflict(InvalidInput):
    """An ``Idempotency-Key`` was reused with a different request body."""

    code = "idempotency_conflict"


class Unauthorized(OtpError):
    """Missing, unknown or revoked credentials."""

    code = "unauthorized"


class InvalidSignature(OtpError):
    """A webhook whose Ed25519 signature or timestamp does not verify."""

    code = "invalid_signature"


class DestinationNotAllowed(OtpError):
    """The tenant's settings do not allow sending to this destination country."""

    code = "destination_not_allowed"


NotFoundCode = Literal[
    "not_found",
    "verification_not_found",
    "tenant_not_found",
    "api_key_not_found",
    "block_not_found",
]
"""Every ``code`` of a 404: the OpenAPI document lists them, so a new one is added here."""


class NotFound(OtpError):
    """Something that does not exist, or belongs to another tenant (the two look the same)."""

    def __init__(self, detail: str, code: NotFoundCode) -> None:
        super().__init__(detail)
        self.code = code


class VerificationNotPending(OtpError):
    """The verification has ended; ``status`` says how."""

    code = "verification_not_pending"

    def __init__(self, detail: str, status: str) -> None:
        super().__init__(detail)
        self.status = status


class RecipientOptedOut(OtpError):
    """The recipient replied STOP (or the carrier reports an opt-out) on the sending profile."""

    code = "recipient_opted_out"


class IdempotencyInFlight(OtpError):
    """A request with the same ``Idempotency-Key`` is still being answered."""

    code = "idempotency_in_flight"


class RateLimited(OtpError):
    """A limit was hit; ``retry_after`` seconds until it clears, ``limit`` names which one."""

    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int, limit: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.limit = limit


class ProviderError(OtpError):
    """Telnyx refused the send; ``error_codes`` are Telnyx's own (strings)."""

    code = "provider_error"

    def __init__(
        self,
        detail: str,
        *,
        error_codes: Sequence[str] = (),
        verification_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.error_codes = tuple(error_codes)
        self.verification_id = verification_id


class ProviderUnavailable(OtpError):
    """Telnyx could not be reached, timed out or failed on its side.

    ``maybe_sent`` is true when the SMS may have left anyway (a timeout after the request
    was written, a 2xx we could not read): then no other sender is tried, since the user
    could receive two codes.
    """

    code = "provider_unavailable"

    def __init__(
        self, detail: str, *, maybe_sent: bool = False, verification_id: str | None = None
    ) -> None:
        super().__init__(detail)
        self.maybe_sent = maybe_sent
        self.verification_id = verification_id


class StoreUnavailable(OtpError):
    """Redis could not be reached or did not answer in time."""

    code = "service_unavailable"
