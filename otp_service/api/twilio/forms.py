"""Twilio's form parameters, read into the requests of the ``/v1`` use cases.

A start's parameters become a ``/v1`` start body (``StartVerificationBody``) and are
validated by it, so both surfaces accept exactly the same values: ``To`` is
``phone_number``, ``Locale`` is ``locale``, ``Tags`` (a JSON object) is ``metadata``,
``RateLimits`` (a JSON object of Twilio's rate-limit unique names and values) is
``rate_limit_keys``, and ``DeviceIp`` is the rate-limit key ``ip`` unless ``RateLimits``
names one. ``CustomFriendlyName`` replaces the tenant's brand in this verification's SMS.
``Channel`` must be ``sms``, the one channel served. Any other parameter, Twilio's or not,
is 60200 naming it: a feature the caller relies on (a custom code, a template, PSD2
amounts...) is refused rather than silently ignored.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

from otp_service.api.schemas import StartVerificationBody
from otp_service.api.twilio.errors import CONTENT_TYPE, TwilioError, invalid_parameter
from otp_service.errors import split_validation_message
from otp_service.usecases.verifications import StartRequest

FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
"""The body encodings Twilio's API accepts (and its SDKs send the first)."""

START_PARAMETERS: Final = frozenset(
    {"To", "Channel", "Locale", "CustomFriendlyName", "RateLimits", "DeviceIp", "Tags"}
)
CHECK_PARAMETERS: Final = frozenset({"To", "VerificationSid", "Code"})
UPDATE_PARAMETERS: Final = frozenset({"Status"})
MAX_FRIENDLY_NAME: Final = 40
"""As long as a tenant's ``brand`` may be."""

_TWILIO_NAMES: Final = {
    "phone_number": "To",
    "locale": "Locale",
    "metadata": "Tags",
    "rate_limit_keys": "RateLimits",
}


async def read_form(request: Request[Any, Any, Any], allowed: frozenset[str]) -> dict[str, str]:
    """The request's form parameters, each given at most once and each one of ``allowed``.

    Raises:
        TwilioError: 19056 (415) for a body that is not a form; 60200 naming a parameter
            that is not served, repeated, or a file.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in FORM_TYPES:
        raise TwilioError(
            HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            CONTENT_TYPE,
            "Input request content type is invalid: send application/x-www-form-urlencoded",
        )
    found: dict[str, str] = {}
    for name, value in (await request.form()).multi_items():
        if name not in allowed:
            raise invalid_parameter(name, "this parameter is not supported by this service")
        if name in found:
            raise invalid_parameter(name, "given more than once")
        if isinstance(value, UploadFile):
            raise invalid_parameter(name, "must be a string, not a file")
        found[name] = value
    return found


def required(form: dict[str, str], name: str) -> str:
    """A parameter that must be given and not empty.

    Raises:
        TwilioError: 60200 naming it.
    """
    value = form.get(name, "")
    if not value:
        raise invalid_parameter(name, f"missing required parameter {name}")
    return value


def _json_object(form: dict[str, str], name: str) -> dict[str, str]:
    """A parameter holding a JSON object of strings (numbers are taken as their text)."""
    if name not in form:
        return {}
    try:
        value = msgspec.json.decode(form[name].encode(), type=dict[str, str | int])
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
        raise invalid_parameter(name, "must be a JSON object of strings") from exc
    return {key: str(item) for key, item in value.items()}


def start_request(form: dict[str, str]) -> StartRequest:
    """The ``/v1`` start a Twilio ``Verifications`` create stands for.

    Raises:
        TwilioError: 60200 naming the parameter that is missing or invalid.
    """
    to = required(form, "To")
    channel = required(form, "Channel")
    if channel != "sms":
        raise invalid_parameter("Channel", f"{channel!r} is not served; only 'sms' is")
    keys = _json_object(form, "RateLimits")
    if "DeviceIp" in form:
        try:
            device_ip = str(ipaddress.ip_address(form["DeviceIp"]))
        except ValueError as exc:
            raise invalid_parameter("DeviceIp", "must be an IPv4 or IPv6 address") from exc
        keys.setdefault("ip", device_ip)
    brand = form.get("CustomFriendlyName")
    if brand is not None and not 1 <= len(brand) <= MAX_FRIENDLY_NAME:
        why = f"must be 1 to {MAX_FRIENDLY_NAME} characters"
        raise invalid_parameter("CustomFriendlyName", why)
    body: dict[str, object] = {
        "phone_number": to,
        "locale": form.get("Locale"),
        "metadata": _json_object(form, "Tags"),
        "rate_limit_keys": keys,
    }
    try:
        data = msgspec.convert(body, StartVerificationBody, strict=True)
    except msgspec.ValidationError as exc:
        path, what = split_validation_message(str(exc))
        top = path.split(".")[0].split("[")[0]
        raise invalid_parameter(_TWILIO_NAMES.get(top, top or "body"), what) from exc
    return StartRequest(
        phone_number=data.phone_number,
        locale=data.locale,
        metadata=dict(data.metadata),
        rate_limit_keys=dict(data.rate_limit_keys),
        brand=brand,
    )
