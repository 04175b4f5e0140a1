"""A Python client of otp-service: the tenant API, sync and async, and tenant events.

Import this package alone: it needs only httpx, msgspec and PyNaCl, never the service's
own modules, so an app that calls the service carries none of the server::

    from otp_service.client import OtpClient, RateLimited

    with OtpClient("http://127.0.0.1:8000", api_key) as otp:
        verification = otp.start("+447400123456")
        result = otp.check(verification.id, "123456")
"""

from otp_service.client.async_ import AsyncOtpClient
from otp_service.client.errors import (
    AuthenticationError,
    Conflict,
    DestinationNotAllowed,
    ExpiredSignature,
    Forbidden,
    IdempotencyConflict,
    IdempotencyInFlight,
    InvalidCodeFormat,
    InvalidPhoneNumber,
    InvalidSignature,
    NetworkError,
    NotFound,
    OtpError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RecipientOptedOut,
    ServerError,
    ServiceUnavailable,
    UnsupportedNumberType,
    ValidationError,
    VerificationNotPending,
)
from otp_service.client.events import verify_event
from otp_service.client.models import (
    Block,
    CheckResult,
    Event,
    Message,
    OptOut,
    Problem,
    Stats,
    StatsRow,
    Verification,
)
from otp_service.client.sync import OtpClient

__all__ = [
    "AsyncOtpClient",
    "AuthenticationError",
    "Block",
    "CheckResult",
    "Conflict",
    "DestinationNotAllowed",
    "Event",
    "ExpiredSignature",
    "Forbidden",
    "IdempotencyConflict",
    "IdempotencyInFlight",
    "InvalidCodeFormat",
    "InvalidPhoneNumber",
    "InvalidSignature",
    "Message",
    "NetworkError",
    "NotFound",
    "OptOut",
    "OtpClient",
    "OtpError",
    "Problem",
    "ProviderError",
    "ProviderUnavailable",
    "RateLimited",
    "RecipientOptedOut",
    "ServerError",
    "ServiceUnavailable",
    "Stats",
    "StatsRow",
    "UnsupportedNumberType",
    "ValidationError",
    "Verification",
    "VerificationNotPending",
    "verify_event",
]
